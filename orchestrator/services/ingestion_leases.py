"""Leases on ingestion jobs, so replicas on one database share the vector stores' queue: the replica indexing a
file attached to a store holds the file's lease (a row of `ingestion_leases`, migration 11) and renews it while
the file waits and is indexed; every replica takes the files still `in_progress` whose lease ran out (the replica
that held them died) and queues them. A file is indexed by one replica at a time, and none stays `in_progress`.

Taking is a compare-and-set (an insert of a missing lease, or an update of the expired lease as it was read, then
the row count), so of two sweepers only one queues a file. A file with no lease is taken only once it is older
than a lease: the replica attaching a file writes its lease a moment after the file's row. At start, leases held
by an earlier life of this namespace are a dead process's and are taken at once; on SQLite (one server per data
dir) so is every lease.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from orchestrator.db import Database
from orchestrator.db.sqlite import SQLiteDatabase
from retrieval.models import StoreFile

Job = tuple[str, str]  # (store id, file id)


class IngestionLeases:
    def __init__(self, db: Database, seconds: float, replica: str) -> None:
        self._db = db
        self.seconds = seconds
        self.replica = replica
        self._earlier_lives = replica.rsplit("/", 1)[0] + "/"
        self._alone = isinstance(db, SQLiteDatabase)

    def claim(self, jobs: Iterable[Job]) -> list[Job]:
        """This replica indexes `jobs` from now on (files it has just attached); returns those it claimed: a file
        attached again while another replica still indexes it stays that replica's."""
        now = time.time()
        return [job for job in jobs if self._db.execute(
            "INSERT INTO ingestion_leases (store_id, file_id, holder, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (store_id, file_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE ingestion_leases.holder = excluded.holder OR ingestion_leases.expires_at < ?",
            (*job, self.replica, now + self.seconds, now)) == 1]

    def release(self, jobs: Iterable[Job]) -> None:
        """`jobs` are indexed, failed or gone: their leases end (unless another replica took them meanwhile)."""
        for store_id, file_id in jobs:
            self._db.execute("DELETE FROM ingestion_leases WHERE store_id = ? AND file_id = ? AND holder = ?",
                             (store_id, file_id, self.replica))

    def renew(self) -> None:
        """Extend every lease this replica holds, in one UPDATE (a lease another replica took is not this
        replica's any more, so it is left alone)."""
        self._db.execute("UPDATE ingestion_leases SET expires_at = ? WHERE holder = ?",
                         (time.time() + self.seconds, self.replica))

    def take(self, pending: list[StoreFile], restarted: bool = False) -> list[Job]:
        """Of the files still `in_progress` in every store, those nobody indexes any more, now this replica's to
        index; leases of files no longer pending are dropped."""
        now = time.time()
        leases = {(store_id, file_id): (holder, float(expires)) for store_id, file_id, holder, expires in
                  self._db.all("SELECT store_id, file_id, holder, expires_at FROM ingestion_leases")}
        taken = []
        for record in pending:
            job = (record.store_id, record.file_id)
            lease = leases.pop(job, None)
            if lease is None:
                unheld = (restarted and self._alone) or record.created_at < now - self.seconds
                if unheld and self._insert(job, now):
                    taken.append(job)
            elif self._dead(*lease, now, restarted) and self._update(job, lease, now):
                taken.append(job)
        for (store_id, file_id), (holder, expires) in leases.items():  # ended while their holder was gone
            if expires < now:
                self._db.execute("DELETE FROM ingestion_leases WHERE store_id = ? AND file_id = ? AND holder = ? "
                                 "AND expires_at = ?", (store_id, file_id, holder, expires))
        return taken

    def _insert(self, job: Job, now: float) -> bool:
        return self._db.execute("INSERT INTO ingestion_leases (store_id, file_id, holder, expires_at) VALUES "
                                "(?, ?, ?, ?) ON CONFLICT (store_id, file_id) DO NOTHING",
                                (*job, self.replica, now + self.seconds)) == 1

    def _update(self, job: Job, lease: tuple[str, float], now: float) -> bool:
        """The lease becomes this replica's only if it is still as read."""
        return self._db.execute("UPDATE ingestion_leases SET holder = ?, expires_at = ? WHERE store_id = ? AND "
                                "file_id = ? AND holder = ? AND expires_at = ?",
                                (self.replica, now + self.seconds, *job, *lease)) == 1

    def _dead(self, holder: str, expires: float, now: float, restarted: bool) -> bool:
        if expires < now:
            return True
        if not restarted or holder == self.replica:
            return False
        return self._alone or holder.startswith(self._earlier_lives)
