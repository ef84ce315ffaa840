"""Replicas on one database: runs and background responses are driven under leases (orchestrator.services.leases).

The sweep's compare-and-set on both engines (SQLite in a temp dir, a real PostgreSQL from tests/postgres_server.py),
then two real `toolshed serve` replicas on one PostgreSQL, driven by the official openai client, with the model
scripted over HTTP (tests/scripted_model.py): a run made through A is completed and seen through B; B starting
does not fail the run A drives; a cancel through B stops A's driver; `kill -9` of A mid-run or mid-response has B
end it `failed` within 60 s.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from orchestrator.assistants.store import ObjectStore
from orchestrator.db import Database, open_database
from orchestrator.errors import Unavailable
from orchestrator.services.leases import Leases
from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 - the fixture
from tests.replicas import LEASE, client_of, model_asked, replica, until
from tests.run_helpers import ask
from tests.scripted_model import ScriptedModel, Turn

DRIVEN = ("queued", "in_progress", "cancelling")


# ---- the sweep, on each engine ---------------------------------------------------------------------------------


def live_run(db: Database, status: str = "in_progress", age: float = 0.0) -> str:
    """A run of its own thread in `status`, created `age` seconds ago, with no lease yet."""
    objects = ObjectStore(db)
    thread = objects.insert("threads", {"id": f"thread_{uuid.uuid4().hex[:8]}"})
    run = {"id": f"run_{uuid.uuid4().hex[:8]}", "status": status, "created_at": int(time.time() - age)}
    objects.insert("runs", run, thread_id=thread["id"], status=status)
    return str(run["id"])


def expire(db: Database, run_id: str) -> None:
    db.execute("UPDATE runs SET lease_expires_at = ? WHERE id = ?", (time.time() - 1, run_id))


def holder(db: Database, run_id: str) -> str | None:
    row = db.one("SELECT lease_holder FROM runs WHERE id = ?", (run_id,))
    return row[0] if row else None


def test_of_two_sweepers_only_one_takes_an_expired_lease(db: Database) -> None:
    a, b, c = (Leases(db, "runs", DRIVEN, 30, replica=name) for name in "abc")
    run = live_run(db)
    a.claim(run)
    assert b.orphans() == [] and holder(db, run) == "a"
    expire(db, run)  # a stopped renewing: it died
    assert b.orphans() == [run]
    assert c.orphans() == []  # b's compare-and-set got there first
    assert holder(db, run) == "b"
    assert a.renew() == {run}  # a, were it alive, would stop driving it


def test_a_lease_renewed_in_time_is_never_swept_and_renewing_is_one_update(db: Database) -> None:
    a, b = Leases(db, "runs", DRIVEN, 30, replica="a"), Leases(db, "runs", DRIVEN, 30, replica="b")
    runs = [live_run(db) for _ in range(3)]
    for run in runs:
        a.claim(run)
    expire(db, runs[0])
    assert a.renew() == set()  # renewed before anyone swept
    assert b.orphans() == []
    assert {holder(db, run) for run in runs} == {"a"}


def test_a_run_with_no_lease_is_an_orphan_only_once_older_than_a_lease(db: Database) -> None:
    sweeper = Leases(db, "runs", DRIVEN, 30, replica="s")
    newborn, old = live_run(db), live_run(db, age=120)  # old: from before leases existed
    assert sweeper.orphans() == [old]
    assert holder(db, newborn) is None


def test_the_sweep_leaves_runs_waiting_for_tool_outputs_and_ended_runs_alone(db: Database) -> None:
    sweeper = Leases(db, "runs", DRIVEN, 30, replica="s")
    waiting, done = live_run(db, "requires_action", age=120), live_run(db, "completed", age=120)
    assert sweeper.orphans() == [] and sweeper.orphans(restarted=True) == []
    assert holder(db, waiting) is None and holder(db, done) is None


def test_a_restart_takes_every_live_run_an_earlier_life_held(db: Database) -> None:
    before, now = (Leases(db, "runs", DRIVEN, 30, replica=f"ns-1/{life}") for life in ("before", "now"))
    other = Leases(db, "runs", DRIVEN, 30, replica="ns-2/alive")
    held, elsewhere = live_run(db), live_run(db)
    before.claim(held)
    other.claim(elsewhere)
    assert now.orphans() == []  # its lease is still good...
    # ...but one server runs per namespace: its earlier life is dead. Another namespace's replica may be alive,
    # unless the database is a SQLite file, which one server alone opens.
    taken = now.orphans(restarted=True)
    assert taken == ([held, elsewhere] if now.alone else [held])
    assert now.orphans(restarted=True) == []


def test_renewing_lets_go_of_a_run_another_replica_ended(db: Database) -> None:
    a = Leases(db, "runs", DRIVEN, 30, replica="a")
    run = live_run(db)
    a.claim(run)
    ObjectStore(db).transition(run, DRIVEN, {"status": "cancelled"})  # a cancel through another replica
    assert a.renew() == {run}
    assert a.renew() == set()


@pytest.mark.postgres
def test_one_live_server_per_namespace_on_a_shared_database(postgres_server: PostgresServer) -> None:  # noqa: F811
    url = postgres_server.new_database(f"t_{uuid.uuid4().hex[:12]}")
    first, second = open_database(url), open_database(url)
    try:
        first.hold_name("ns-1")
        with pytest.raises(Unavailable, match="TOOLSHED_NAMESPACE='ns-1'"):
            second.hold_name("ns-1")  # it would end the first one's runs as its own earlier life's
        second.hold_name("ns-2")
        first.close()  # the first server stopped: its namespace is free again
        second.hold_name("ns-1")
    finally:
        second.close()


# ---- two real replicas on one PostgreSQL -------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_run_made_through_a_is_seen_and_completed_through_b(model: ScriptedModel, pg_url: str,
                                                               tmp_path: Path) -> None:
    model.say(Turn(text="done through A"))
    with replica(tmp_path / "a", pg_url, model) as a, replica(tmp_path / "b", pg_url, model) as b:
        assistant, thread = ask(client_of(a), "hello")
        run = client_of(a).beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
        through_b = client_of(b)
        until(lambda: through_b.beta.threads.runs.retrieve(run.id, thread_id=thread).status == "completed", 60,
              "the run never completed as B sees it")
        assert through_b.beta.assistants.retrieve(assistant).id == assistant
        texts = [m.content[0].text.value  # type: ignore[union-attr]
                 for m in through_b.beta.threads.messages.list(thread, order="asc").data]
        assert texts == ["hello", "done through A"]


@pytest.mark.postgres
def test_b_starting_does_not_fail_the_run_a_drives(model: ScriptedModel, pg_url: str, tmp_path: Path) -> None:
    model.turns.clear()
    model.say(Turn(text="slow but done", delay=LEASE * 2))
    with replica(tmp_path / "a", pg_url, model) as a:
        assistant, thread = ask(client_of(a), "take your time")
        asked = len(model.requests)
        run = client_of(a).beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
        model_asked(model, asked)
        with replica(tmp_path / "b", pg_url, model) as b:
            assert client_of(b).beta.threads.runs.retrieve(run.id, thread_id=thread).status == "in_progress"
            until(lambda: client_of(b).beta.threads.runs.retrieve(run.id, thread_id=thread).status != "in_progress",
                  90, "the run never ended")
            after = client_of(b).beta.threads.runs.retrieve(run.id, thread_id=thread)
    assert after.status == "completed", after.last_error


@pytest.mark.postgres
def test_a_cancel_through_b_stops_the_run_a_drives(model: ScriptedModel, pg_url: str, tmp_path: Path) -> None:
    model.turns.clear()
    late = LEASE * 2.0  # past several lease renewals (every third of a lease)
    model.say(Turn(text="too late", delay=late))
    with replica(tmp_path / "a", pg_url, model) as a, replica(tmp_path / "b", pg_url, model) as b:
        assistant, thread = ask(client_of(a), "slowly")
        asked = len(model.requests)
        run = client_of(a).beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
        model_asked(model, asked)
        cancelled = client_of(b).beta.threads.runs.cancel(run.id, thread_id=thread)
        assert cancelled.status == "cancelled"
        time.sleep(late + 5)  # the model has answered by now: a driver still running would write it down
        assert client_of(a).beta.threads.runs.retrieve(run.id, thread_id=thread).status == "cancelled"
        roles = [m.role for m in client_of(a).beta.threads.messages.list(thread).data]
    assert roles == ["user"]


@pytest.mark.postgres
def test_a_cancel_through_b_stops_the_response_a_drives(model: ScriptedModel, pg_url: str, tmp_path: Path) -> None:
    model.turns.clear()
    late = LEASE * 2.0
    model.say(Turn(text="too late", delay=late))
    with replica(tmp_path / "a", pg_url, model) as a, replica(tmp_path / "b", pg_url, model) as b:
        asked = len(model.requests)
        response = client_of(a).responses.create(model="m", input="Slowly.", background=True)
        model_asked(model, asked)
        assert client_of(b).responses.cancel(response.id).status == "cancelled"
        time.sleep(late + 3)  # the model has answered by now: a driver still running would have saved it
        after = client_of(a).responses.retrieve(response.id)
    assert after.status == "cancelled" and after.output == []


@pytest.mark.postgres
def test_kill_9_of_a_mid_run_has_b_end_the_run_within_60_s(model: ScriptedModel, pg_url: str,
                                                           tmp_path: Path) -> None:
    model.turns.clear()
    model.say(Turn(text="never", delay=120))
    with replica(tmp_path / "a", pg_url, model) as a, replica(tmp_path / "b", pg_url, model) as b:
        assistant, thread = ask(client_of(a), "stay a while")
        asked = len(model.requests)
        run = client_of(a).beta.threads.runs.create(thread_id=thread, assistant_id=assistant)
        model_asked(model, asked)
        a.stop(kill=True)
        through_b = client_of(b)
        took = until(lambda: through_b.beta.threads.runs.retrieve(run.id, thread_id=thread).status == "failed", 60,
                     "B never ended the run of the killed replica")
        print(f"B ended the killed replica's run {took:.1f} s after kill -9 (TOOLSHED_LEASE_SECONDS={LEASE})")
        ended = through_b.beta.threads.runs.retrieve(run.id, thread_id=thread)
        assert ended.last_error is not None and ended.last_error.code == "server_error"
        assert ended.last_error.message == "The server driving this run stopped."
        model.say(Turn(text="again"))  # the thread takes a new run at once
        again = through_b.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
        assert again.status == "completed"


@pytest.mark.postgres
def test_kill_9_of_a_mid_response_has_b_end_it_within_60_s(model: ScriptedModel, pg_url: str,
                                                           tmp_path: Path) -> None:
    model.turns.clear()
    model.say(Turn(text="never", delay=120))
    with replica(tmp_path / "a", pg_url, model) as a, replica(tmp_path / "b", pg_url, model) as b:
        asked = len(model.requests)
        response = client_of(a).responses.create(model="m", input="Wait.", background=True)
        model_asked(model, asked)
        a.stop(kill=True)
        through_b = client_of(b)
        took = until(lambda: through_b.responses.retrieve(response.id).status == "failed", 60,
                     "B never ended the response of the killed replica")
        print(f"B ended the killed replica's response {took:.1f} s after kill -9 (TOOLSHED_LEASE_SECONDS={LEASE})")
        ended = through_b.responses.retrieve(response.id)
        assert ended.error is not None and ended.error.message == "The server driving this response stopped."


@pytest.mark.postgres
def test_a_run_waiting_for_tool_outputs_expires_on_b_after_a_is_killed(model: ScriptedModel, pg_url: str,
                                                                      tmp_path: Path) -> None:
    model.turns.clear()
    model.say(Turn(tool_calls=[("lookup", "{}")]))
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    expiry = {"TOOLSHED_RUN_EXPIRY_SECONDS": "8"}
    with replica(tmp_path / "a", pg_url, model, **expiry) as a, replica(tmp_path / "b", pg_url, model, **expiry) as b:
        assistant, thread = ask(client_of(a), "look it up", tools=[lookup])
        run = client_of(a).beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
        assert run.status == "requires_action"
        a.stop(kill=True)  # its expiry timer goes with it; B never had one for this run
        through_b = client_of(b)
        until(lambda: through_b.beta.threads.runs.retrieve(run.id, thread_id=thread).status == "expired", 60,
              "the unanswered run never expired once the replica that made it was gone")
