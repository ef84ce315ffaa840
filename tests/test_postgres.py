"""The metadata database on a real PostgreSQL (tests/postgres_server.py): the database layer, the stores on it,
its migrations (the same tables and columns as SQLite's; safe to run twice and from two replicas at once), and a
server that keeps its objects there across a restart."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from orchestrator.assistants.store import ObjectStore
from orchestrator.db import Database, IntegrityError, PageRequest, open_database
from orchestrator.db.migrations import MIGRATIONS
from orchestrator.db.pg_migrations import PG_MIGRATIONS
from orchestrator.db.postgres import PostgresDatabase
from orchestrator.errors import InvalidRequest, Unavailable
from orchestrator.responses.store import ResponseStore
from orchestrator.sandbox.safefs import FileStat
from orchestrator.services.container_files import ContainerFileStore
from orchestrator.services.keys import KeyRing
from orchestrator.services.librechat_files import LibreChatFiles
from orchestrator.services.projects import Owners
from orchestrator.services.storage import FileStore
from orchestrator.tools.citations import CitationStore
from orchestrator.web.errors import envelope
from retrieval.postgres import translate
from tests.conftest import running_server, sdk_client
from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.postgres

LIVE = ("queued", "in_progress", "requires_action", "cancelling")


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:  # noqa: F811 - the fixture above
    """A fresh, empty database for one test."""
    return postgres_server.new_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def pg(pg_url: str) -> Any:
    db = open_database(pg_url)
    yield db
    db.close()


def test_placeholders_become_psycopgs_outside_quotes() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c LIKE '%?%' AND \"d?\" = ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE '%%?%%' AND \"d?\" = %s")


def _sqlite_schema(db: Database) -> dict[str, list[str]]:
    tables = [row[0] for row in db.all("SELECT name FROM sqlite_master WHERE type = 'table' "
                                       "AND name NOT LIKE 'sqlite_%'")]
    return {table: [row[1] for row in db.all(f"PRAGMA table_info({table})")] for table in tables}


def _postgres_schema(db: Database) -> dict[str, list[str]]:
    rows = db.all("SELECT table_name, column_name FROM information_schema.columns "
                  "WHERE table_schema = current_schema() AND table_name <> 'schema_version' "
                  "ORDER BY table_name, ordinal_position")
    schema: dict[str, list[str]] = {}
    for table, column in rows:
        schema.setdefault(table, []).append(column)
    return schema


def test_both_engines_migrate_to_the_same_tables_and_columns(pg: Database, tmp_path: Path) -> None:
    lite = open_database("", tmp_path)
    assert len(PG_MIGRATIONS) == len(MIGRATIONS) == lite.version == pg.version
    assert _postgres_schema(pg) == _sqlite_schema(lite)
    assert "files" in _postgres_schema(pg) and "runs" in _postgres_schema(pg)
    lite.close()


def test_migrations_run_once_when_two_replicas_open_at_once_and_never_again(pg_url: str) -> None:
    opened: list[Database] = []
    failures: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(open_database(pg_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    both = [threading.Thread(target=open_one) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(120)
    assert failures == [] and len(opened) == 2
    opened[0].execute("INSERT INTO owners (id, project) VALUES (?, ?)", ("file-kept", "p"))
    again = open_database(pg_url)  # a third start changes nothing
    assert [row[0] for row in again.all("SELECT version FROM schema_version ORDER BY version")] == list(
        range(1, len(PG_MIGRATIONS) + 1))
    assert again.one("SELECT project FROM owners WHERE id = ?", ("file-kept",)) == ("p",)
    for db in (*opened, again):
        db.close()


def test_files_keys_and_owners_on_postgres(pg: Database, tmp_path: Path) -> None:
    files = FileStore(pg, tmp_path)
    first = files.write([b"ab", b"cd"], "a.txt", "assistants", project="p")
    second = files.write([b"x"], "b.txt", "assistants_output", project="q")
    assert [f.id for f in files.page(PageRequest(), scope=None)[0]] == [second.id, first.id]
    assert [f.id for f in files.page(PageRequest(), scope="p")[0]] == [first.id]
    assert [f.id for f in files.page(PageRequest(order="asc", after=first.id), scope=None)[0]] == [second.id]
    assert [f.id for f in files.page(PageRequest(before=second.id), scope=None)[0]] == []
    assert files.page(PageRequest(limit=1), scope=None)[1] is True
    owners = Owners(pg)
    assert owners.owner(first.id) == "p" and owners.ids("q", "file-") == {second.id}
    owners.claim("r", first.id)
    assert owners.owner(first.id) == "r" and owners.adopt([first.id, "asst_old"]) == 1
    files.delete(first.id)
    assert owners.owner(first.id) is None  # the trigger forgot its owner with it
    ring = KeyRing(pg, [], [])
    stored, key = ring.create("p")
    assert ring.caller(key) is not None and ring.caller(key).project == "p"  # type: ignore[union-attr]
    assert [k.id for k in ring.list()] == [stored.id]
    assert ring.revoke(stored.id) and not ring.revoke(stored.id) and ring.caller(key) is None


def test_assistants_threads_messages_and_runs_on_postgres(pg: Database) -> None:
    objects = ObjectStore(pg)
    objects.insert("assistants", {"id": "asst_1", "name": "a"}, project="p")
    objects.insert("threads", {"id": "thread_1"}, project="p")
    for n in range(3):
        objects.insert("messages", {"id": f"msg_{n}", "n": n}, thread_id="thread_1")
    page, more = objects.page("messages", PageRequest(limit=2, order="asc"), thread_id="thread_1")
    assert [m["n"] for m in page] == [0, 1] and more
    objects.insert("runs", {"id": "run_1", "status": "queued"}, thread_id="thread_1", status="queued")
    with pytest.raises(sqlite3.IntegrityError):  # one live run per thread, as on SQLite
        objects.insert("runs", {"id": "run_2", "status": "queued"}, thread_id="thread_1", status="queued")
    assert objects.live_run("thread_1", LIVE) == "run_1"
    assert objects.transition("run_1", ("queued",), {"status": "in_progress"})["status"] == "in_progress"  # type: ignore[index]
    assert objects.transition("run_1", ("queued",), {"status": "cancelled"}) is None
    objects.insert("run_steps", {"id": "step_1", "status": "in_progress"}, run_id="run_1")
    objects.insert("run_steps", {"id": "step_2", "status": "completed"}, run_id="run_1")
    # A cell that printed a NUL: json.dumps writes \u0000, which PostgreSQL's jsonb refuses.
    objects.insert("run_steps", {"id": "step_3", "status": "in_progress", "logs": "a\x00b"}, run_id="run_1")
    assert [s["id"] for s in objects.open_steps("run_1")] == ["step_1", "step_3"]
    objects.delete("threads", "thread_1")
    assert pg.all("SELECT id FROM messages") == [] and pg.all("SELECT id FROM runs") == []


def test_responses_conversations_and_citations_on_postgres(pg: Database) -> None:
    responses = ResponseStore(pg)
    body = {"id": "resp_1", "status": "in_progress", "store": True}
    responses.insert(body, [{"id": "in_1"}, {"id": "in_2"}], "p")
    assert responses.save({**body, "status": "completed"}, allowed=("in_progress",))
    assert not responses.save({**body, "status": "cancelled"}, allowed=("in_progress",))
    assert responses.get("resp_1")["status"] == "completed"
    assert responses.input_page("resp_1", PageRequest(order="asc", after="in_1"))[0] == [{"id": "in_2"}]
    responses.insert_conversation({"id": "conv_1"}, [{"id": "it_1"}], "p")
    responses.add_items("conv_1", [{"id": "it_2"}])
    assert [item["id"] for item in responses.items("conv_1")] == ["it_1", "it_2"]
    citations = CitationStore(pg)
    first = citations.remember("s", "k", [("file-a", "a.txt", 1, "quote")])
    second = citations.remember("s", "k", [("file-b", "b.txt", None, "other")])
    assert (first[0].search, second[0].search) == (0, 1)


def test_container_files_and_librechat_files_on_postgres(pg: Database, tmp_path: Path) -> None:
    stored = FileStore(pg, tmp_path).write([b"x"], "a.txt", "assistants", project="p")
    store = ContainerFileStore(pg)
    big = FileStat(size=3, mtime_ns=1_700_000_000_123_456_789, inode=2**40)  # past 32 bits, as real ones are
    first = store.put("cntr_1", "a.txt", big, "user", stored.id)
    again = store.put("cntr_1", "a.txt", FileStat(4, big.mtime_ns + 1, big.inode), "assistant", None)
    store.put("cntr_1", "b.txt", big, "assistant", None)
    assert (again.id, again.bytes, again.mtime_ns) == (first.id, 4, big.mtime_ns + 1)
    assert [f.path for f in store.all("cntr_1")] == ["a.txt", "b.txt"]  # no limit: every one
    assert [f.path for f in store.all("cntr_1", limit=1)] == ["a.txt"]
    assert [f.path for f in store.page("cntr_1", PageRequest(order="asc", after=first.id))[0]] == ["b.txt"]
    sessions = LibreChatFiles(pg)
    sessions.record("s1", stored.id, "old.txt")
    sessions.record("s1", stored.id, "new.txt")  # the same file again: renamed, not duplicated
    assert [f.name for f in sessions.of_session("s1")] == ["new.txt"]


def test_concurrent_writers_get_distinct_list_positions(pg: Database, tmp_path: Path) -> None:
    """`MAX(seq) + 1` stays a counter with writers on many connections (as two replicas would be): writers take
    turns, so no two files share a position and a page never skips or repeats one."""
    files = FileStore(pg, tmp_path)
    writers = [threading.Thread(target=lambda: [files.write([b"x"], "f.txt", "assistants", project="p")
                                                for _ in range(5)]) for _ in range(6)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    seqs = [row[0] for row in pg.all("SELECT seq FROM files")]
    assert len(seqs) == 30 and len(set(seqs)) == 30


def test_a_nul_that_postgres_cannot_hold_is_a_bad_request_not_a_crash(pg: Database) -> None:
    # SQLite keeps a NUL in a text (a list cursor of `%00` finds no row there); PostgreSQL's text cannot hold it.
    with pytest.raises(InvalidRequest, match="cannot be stored or looked up"):
        pg.all("SELECT id FROM files WHERE id = ?", ("file-\x00",))


def test_a_constraint_error_from_postgres_is_the_stores_integrity_error(pg: Database) -> None:
    pg.execute("INSERT INTO owners (id, project) VALUES (?, ?)", ("x", "p"))
    with pytest.raises(IntegrityError):
        pg.execute("INSERT INTO owners (id, project) VALUES (?, ?)", ("x", "q"))
    with pytest.raises(IntegrityError), pg.transaction() as conn:
        conn.execute("INSERT INTO owners (id, project) VALUES (?, ?)", ("y", "p"))
        conn.execute("INSERT INTO owners (id, project) VALUES (?, ?)", ("x", "q"))
    assert pg.one("SELECT project FROM owners WHERE id = ?", ("y",)) is None  # rolled back whole
    assert isinstance(pg, PostgresDatabase)


def test_a_database_that_stops_answering_is_a_503_and_then_answers_again(
        pg: Database, postgres_server: PostgresServer) -> None:  # noqa: F811 - the fixture above
    name = pg.one("SELECT current_database()")[0]  # type: ignore[index]
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    with pytest.raises(Unavailable) as caught:
        pg.one("SELECT 1")
    assert envelope(caught.value)[0] == 503
    deadline = time.monotonic() + 30
    while True:  # the pool replaces the broken connection by itself
        with contextlib.suppress(Unavailable):
            if pg.one("SELECT 1") == (1,):
                break
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _keys_cli(data_dir: Path, url: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "keys", *args], capture_output=True, text=True,
                          check=True, timeout=120, env={**os.environ, "TOOLSHED_DATA_DIR": str(data_dir),
                                                        "TOOLSHED_DATABASE_URL": url})
    return done.stdout


def test_a_server_on_postgres_keeps_its_objects_across_a_restart(pg_url: str, tmp_path: Path) -> None:
    """Objects made through the openai client are still there after a restart; the key made by `toolshed keys`
    on the same database lets the client in; no SQLite file appears in the data dir."""
    key = _keys_cli(tmp_path, pg_url, "create", "--project", "p").strip().splitlines()[-1]
    env = {"TOOLSHED_DATABASE_URL": pg_url, "TOOLSHED_API_KEYS": "[]", "TOOLSHED_POOL_SIZE": "0"}
    with running_server(tmp_path, **env) as srv:
        client = sdk_client(srv).with_options(api_key=key)
        uploaded = client.files.create(file=("notes.txt", io.BytesIO(b"kept in postgres")), purpose="assistants")
        assistant = client.beta.assistants.create(model="m", name="kept")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
        assert httpx.get(f"{srv.base_url}/v1/files", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with running_server(tmp_path, **env) as srv:
        client = sdk_client(srv).with_options(api_key=key)
        assert client.files.retrieve(uploaded.id).filename == "notes.txt"
        assert client.files.content(uploaded.id).read() == b"kept in postgres"
        assert client.beta.assistants.retrieve(assistant.id).name == "kept"
        [message] = client.beta.threads.messages.list(thread.id).data
        assert message.content[0].text.value == "hello"  # type: ignore[union-attr]
        assert [f.id for f in client.files.list().data] == [uploaded.id]
    assert not (tmp_path / "toolshed.db").exists()
