"""Leases on live runs and responses, so replicas can share one database: the replica driving one holds its lease
and renews it; every replica ends the live ones whose lease ran out (the replica driving them died).

A lease is two columns of the row (migration 10): `lease_holder`, the replica id of the process driving it, and
`lease_expires_at`. A `LeaseKeeper` renews this process's leases every third of a lease in one UPDATE, stops
driving what another replica ended (a cancel through it), and sweeps: an orphan is taken over with a
compare-and-set on its lease (`... WHERE id = ? AND status = ? AND lease_expires_at < ?`, then the row count), so
of two sweepers only one ends it. A replica id is `namespace/random`: one server runs per TOOLSHED_NAMESPACE at a
time, so at start every live row held by an earlier life of this namespace is a dead process's and ends at once,
as a restart always did; on SQLite (one server per data dir) so does every other live row. Other replicas' rows
on PostgreSQL end only when their leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from orchestrator.db import Database
from orchestrator.db.sqlite import SQLiteDatabase
from orchestrator.errors import NotFound

log = logging.getLogger("toolshed.leases")


def replica_id(namespace: str) -> str:
    """This process's replica id: its namespace says which server it is, the random part which life of it."""
    return f"{namespace}/{uuid.uuid4().hex[:12]}"


def _marks(values: tuple[str, ...] | set[str]) -> str:
    return ", ".join("?" * len(values))


class Leases:
    """The leases of one table (`runs` or `responses`) held by this replica; `driven` are the statuses a live
    driver holds (a run waiting for tool outputs is driven by nobody)."""

    def __init__(self, db: Database, table: str, driven: tuple[str, ...], seconds: float, replica: str) -> None:
        self._db, self._table, self._driven = db, table, driven
        self.table = table
        self.seconds = seconds
        self.replica = replica
        self._earlier_lives = replica.rsplit("/", 1)[0] + "/"
        self._held: set[str] = set()
        # One server per SQLite file: whatever is live when it starts was driven by a process now dead.
        self.alone = isinstance(db, SQLiteDatabase)

    def claim(self, item_id: str) -> None:
        """This replica drives `item_id` from now on (its row already exists)."""
        self._held.add(item_id)
        self._db.execute(f"UPDATE {self._table} SET lease_holder = ?, lease_expires_at = ? WHERE id = ?",
                         (self.replica, time.time() + self.seconds, item_id))

    def fresh(self) -> dict[str, Any]:
        """The lease columns of a row this replica takes in the same UPDATE that makes it live again, so of two
        replicas racing to resume it, the one whose compare-and-set wins holds it."""
        return {"lease_holder": self.replica, "lease_expires_at": time.time() + self.seconds}

    def drop(self, item_id: str) -> None:
        """This replica no longer drives `item_id` (its driver ended); its lease runs out unrenewed."""
        self._held.discard(item_id)

    def renew(self) -> set[str]:
        """Extend every lease this replica holds, in one UPDATE; returns those it no longer holds (another
        replica ended the row, took it over, or deleted it), which it stops driving."""
        if not self._held:
            return set()
        held = tuple(self._held)
        where = f"lease_holder = ? AND status IN ({_marks(self._driven)}) AND id IN ({_marks(held)})"
        args = (self.replica, *self._driven, *held)
        self._db.execute(f"UPDATE {self._table} SET lease_expires_at = ? WHERE {where}",
                         (time.time() + self.seconds, *args))
        kept = {row[0] for row in self._db.all(f"SELECT id FROM {self._table} WHERE {where}", args)}
        lost = set(held) - kept
        self._held -= lost
        return lost

    def orphans(self, restarted: bool = False) -> list[str]:
        """Take over the live rows nobody drives: an expired lease, or none at all and older than a lease (made
        before leases existed; a newborn row is claimed a moment after its insert). `restarted`: every live row
        held by an earlier life of this replica's namespace (on SQLite: every live row not this replica's).
        Returns those this replica took, for it to end."""
        now = time.time()
        driven = f"status IN ({_marks(self._driven)})"
        if restarted:
            rows = self._db.all(f"SELECT id, status FROM {self._table} WHERE {driven} AND {self._dead()}",
                                (*self._driven, *self._dead_args()))
        else:
            rows = self._db.all(
                f"SELECT id, status FROM {self._table} WHERE {driven} AND (lease_expires_at < ? OR "
                f"(lease_expires_at IS NULL AND CAST(json_extract(body, '$.created_at') AS BIGINT) < ?))",
                (*self._driven, now, now - self.seconds))
        return [item_id for item_id, status in rows if self._take(item_id, status, now, restarted)]

    def _take(self, item_id: str, status: str, now: float, restarted: bool) -> bool:
        """Compare-and-set: the lease becomes this replica's only if the row is as the sweep saw it (same status,
        lease still expired); a second sweeper, or the driver renewing in time, makes this a no-op."""
        still, args = (self._dead(), self._dead_args()) if restarted else ("COALESCE(lease_expires_at, 0) < ?", (now,))
        taken = self._db.execute(
            f"UPDATE {self._table} SET lease_holder = ?, lease_expires_at = ? WHERE id = ? AND status = ? AND {still}",
            (self.replica, now + self.seconds, item_id, status, *args))
        return taken == 1

    def _dead(self) -> str:
        """Rows held by a process known dead at start: an earlier life of this namespace (or, alone, any other)."""
        other = "COALESCE(lease_holder, '') <> ?"
        return other if self.alone else f"{other} AND SUBSTR(COALESCE(lease_holder, ''), 1, ?) = ?"

    def _dead_args(self) -> tuple[str | int, ...]:
        if self.alone:
            return (self.replica,)
        return self.replica, len(self._earlier_lives), self._earlier_lives

    def overdue(self, status: str, field: str) -> list[str]:
        """Rows in `status` whose body's time `field` (seconds since the epoch) has passed."""
        return [row[0] for row in self._db.all(
            f"SELECT id FROM {self._table} WHERE status = ? AND CAST(json_extract(body, ?) AS BIGINT) < ?",
            (status, f"$.{field}", int(time.time())))]


class LeaseKeeper:
    """The loop that keeps one table's leases: at start one sweep (ending at once, on SQLite, what a previous
    process left live), then every third of a lease: renew, stop driving what was lost (its task in `tasks` is
    cancelled, then `lost` is told), end the orphans (`orphaned`), and `also`."""

    def __init__(self, leases: Leases, tasks: dict[str, asyncio.Task[None]], noun: str, *,
                 orphaned: Callable[[str, dict[str, str]], object], lost: Callable[[str], None] | None = None,
                 also: Callable[[], None] | None = None) -> None:
        self.leases = leases
        self._tasks = tasks
        # What an orphan's error says: a restarted server (SQLite), or a replica gone (PostgreSQL).
        self._why = {True: f"The server restarted while this {noun} was live.",
                     False: f"The server driving this {noun} stopped."}
        self._orphaned, self._lost, self._also = orphaned, lost, also
        self._task: asyncio.Task[None] | None = None

    def drive(self, item_id: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Claim `item_id` and run `work` for it; the task is in `tasks` (and the lease held) while it runs."""
        self.leases.claim(item_id)
        task = self._tasks[item_id] = asyncio.create_task(work)
        task.add_done_callback(lambda _: self._done(item_id, task))
        return task

    def _done(self, item_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(item_id) is task:  # not a newer drive of the same run (resumed with tool outputs)
            del self._tasks[item_id]
            self.leases.drop(item_id)

    def start(self) -> int:
        """The first sweep, then the loop in the background; returns how many rows the first sweep ended."""
        ended = self._sweep(restarted=True)
        self._task = asyncio.create_task(self._loop())
        return ended

    def _sweep(self, restarted: bool = False) -> int:
        orphans = self.leases.orphans(restarted)
        for item_id in orphans:
            with contextlib.suppress(NotFound):  # deleted since the sweep took it: nothing left to end
                self._orphaned(item_id, {"code": "server_error", "message": self._why[restarted]})
        return len(orphans)

    def tick(self) -> None:
        """One round of the loop."""
        for item_id in self.leases.renew():
            task = self._tasks.get(item_id)
            if task is not None and not task.done():
                task.cancel()
                if self._lost is not None:
                    self._lost(item_id)
        ended = self._sweep()
        if ended:
            log.warning("%d live %s had lost the replica driving them; they ended failed", ended, self.leases.table)
        if self._also is not None:
            self._also()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.leases.seconds / 3)
            try:
                self.tick()
            except Exception:  # a database that did not answer this time: the next round tries again
                log.exception("keeping the leases failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
