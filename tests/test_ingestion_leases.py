"""Ingestion jobs under leases (orchestrator.services.ingestion_leases): the compare-and-set on each engine (SQLite in
a temp dir, a real PostgreSQL), then two real replicas on one PostgreSQL and one S3 bucket: `kill -9` of the replica
indexing a file has the other index it, never leaving it `in_progress`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from orchestrator.db import Database
from orchestrator.services.ingestion_leases import IngestionLeases
from retrieval.models import StoreFile
from tests.replicas import client_of, replica, until
from tests.s3_server import S3Server, new_bucket_name


def pending(file_id: str, age: float = 0.0, store_id: str = "vs_1") -> StoreFile:
    return StoreFile(store_id, file_id, f"{file_id}.txt", "in_progress", int(time.time() - age), 0, {},
                     {"type": "auto"})  # type: ignore[arg-type]


def holder(db: Database, file_id: str) -> str | None:
    row = db.one("SELECT holder FROM ingestion_leases WHERE file_id = ?", (file_id,))
    return row[0] if row else None


def test_a_held_lease_is_left_alone_until_it_runs_out_and_then_one_sweeper_takes_it(db: Database) -> None:
    a, b, c = (IngestionLeases(db, 30, replica=f"{name}/1") for name in "abc")
    a.claim([("vs_1", "file_1")])
    assert b.take([pending("file_1", age=120)]) == []
    db.execute("UPDATE ingestion_leases SET expires_at = ?", (time.time() - 1,))
    assert b.take([pending("file_1", age=120)]) == [("vs_1", "file_1")]
    assert c.take([pending("file_1", age=120)]) == []
    assert holder(db, "file_1") == "b/1"


def test_renewing_keeps_a_lease_and_a_released_one_is_gone(db: Database) -> None:
    a, b = IngestionLeases(db, 30, replica="a/1"), IngestionLeases(db, 30, replica="b/1")
    a.claim([("vs_1", "file_1"), ("vs_1", "file_2")])
    db.execute("UPDATE ingestion_leases SET expires_at = ?", (time.time() + 1,))
    a.renew()
    assert db.one("SELECT MIN(expires_at) FROM ingestion_leases", ())[0] > time.time() + 20
    a.release([("vs_1", "file_1")])
    assert holder(db, "file_1") is None and holder(db, "file_2") == "a/1"
    assert b.take([pending("file_2", age=120)]) == []


def test_a_file_attached_again_while_another_replica_indexes_it_stays_that_replicas(db: Database) -> None:
    a, b = IngestionLeases(db, 30, replica="a/1"), IngestionLeases(db, 30, replica="b/1")
    assert a.claim([("vs_1", "file_1")]) == [("vs_1", "file_1")]
    assert b.claim([("vs_1", "file_1"), ("vs_1", "file_2")]) == [("vs_1", "file_2")]
    assert holder(db, "file_1") == "a/1"
    db.execute("UPDATE ingestion_leases SET expires_at = ?", (time.time() - 1,))
    assert b.claim([("vs_1", "file_1")]) == [("vs_1", "file_1")]


def test_a_file_with_no_lease_is_taken_only_once_older_than_a_lease(db: Database) -> None:
    sweeper = IngestionLeases(db, 30, replica="s/1")
    assert sweeper.take([pending("newborn")]) == []  # its replica writes the lease a moment after the file's row
    assert sweeper.take([pending("old", age=120)]) == [("vs_1", "old")]


def test_a_restart_takes_what_an_earlier_life_held_and_drops_leases_of_ended_files(db: Database) -> None:
    before, now = IngestionLeases(db, 30, replica="ns-1/before"), IngestionLeases(db, 30, replica="ns-1/now")
    other = IngestionLeases(db, 30, replica="ns-2/alive")
    before.claim([("vs_1", "mine")])
    other.claim([("vs_1", "theirs"), ("vs_1", "ended")])
    db.execute("UPDATE ingestion_leases SET expires_at = ? WHERE file_id = 'ended'", (time.time() - 1,))
    files = [pending("mine"), pending("theirs")]  # "ended" is indexed: no longer pending
    assert now.take(files) == []  # the leases are still good...
    # ...but one server runs per namespace: its earlier life is dead. Another namespace's replica may be alive,
    # unless the database is a SQLite file, which one server alone opens.
    alone = db.__class__.__name__ == "SQLiteDatabase"
    assert now.take(files, restarted=True) == ([("vs_1", "mine"), ("vs_1", "theirs")] if alone else
                                               [("vs_1", "mine")])
    assert holder(db, "ended") is None


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.model
def test_kill_9_of_the_indexing_replica_has_the_other_index_the_file(pg_url: str, s3_server: S3Server,
                                                                    tmp_path: Path) -> None:
    bucket = s3_server.env(new_bucket_name())
    # Thousands of distinct sentences: long enough to embed that A is killed before it commits the file (checked).
    text = "\n".join(f"Sentence {n} tells of lighthouse keeper number {n * 7919 % 10007} and the tide."
                     for n in range(12_000)).encode()
    with replica(tmp_path / "a", pg_url, **bucket) as a, replica(tmp_path / "b", pg_url, **bucket) as b:
        through_a, through_b = client_of(a), client_of(b)
        store = through_a.vector_stores.create(name="killed mid-way")
        uploaded = through_a.files.create(file=("keepers.txt", text), purpose="assistants")
        attached = through_a.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
        assert attached.status == "in_progress"
        a.stop(kill=True)
        assert through_b.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id).status == "in_progress"
        took = until(lambda: through_b.vector_stores.files.retrieve(
            uploaded.id, vector_store_id=store.id).status != "in_progress", 300, "B never indexed A's file")
        print(f"B indexed the killed replica's file {took:.1f} s after kill -9")
        assert through_b.vector_stores.files.retrieve(uploaded.id, vector_store_id=store.id).status == "completed"
        hits = through_b.vector_stores.search(store.id, query="lighthouse keeper number 1234", max_num_results=3)
        assert hits.data and all(hit.file_id == uploaded.id for hit in hits.data)
        assert through_b.vector_stores.retrieve(store.id).file_counts.completed == 1
