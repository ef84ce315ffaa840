"""One SQLite connection shared by threads: WAL mode, a lock, and transactions that commit or roll back whole;
and keyset pagination, shared by every list endpoint."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from retrieval.errors import DiskFull


class SQLite:
    shared = False  # one machine's file: processes writing it share its data dir, checkpoints included
    # A JSON array argument as a set of values, for `x IN (...)` with one parameter however many values.
    json_texts = "SELECT value FROM json_each(?)"

    def __init__(self, path: Path, *, reader: bool = False) -> None:
        """`reader`: reads get a connection of their own, so they see the last commit instead of waiting out a
        write transaction (WAL lets both run at once). Only for callers that never read, inside a write, rows that
        transaction has not committed yet."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # with WAL, a commit survives a killed process
        self._lock = threading.RLock()
        self._reader, self._read_lock = self._conn, self._lock
        if reader:
            self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._read_lock = threading.RLock()

    def executescript(self, script: str) -> None:
        """Run several statements (a schema), outside any transaction of the caller's."""
        with self._lock:
            self._conn.executescript(script)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            yield self._reader

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside commits together or not at all; DiskFull if the disk is."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                # A failed COMMIT may leave the transaction open (SQLite rolls back by itself after some errors
                # only); left open, every later BEGIN on this shared connection would fail.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                    raise DiskFull() from exc
                raise

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()


@dataclass(frozen=True)
class PageRequest:
    """One page of a list, as OpenAI's list endpoints take it: cursors are object ids."""

    limit: int = 20
    order: Literal["asc", "desc"] = "desc"
    after: str | None = None
    before: str | None = None


def keyset_page(conn: Any, page: PageRequest, *, select: str, table: str, where: str = "1 = 1",
                args: tuple[Any, ...] = (), cursor_column: str = "id",
                seq: str = "seq") -> tuple[list[tuple[Any, ...]], bool]:
    """(rows, has_more): the rows of `table` matching `where`, in `seq` order, after or before the rows whose
    `cursor_column` is the cursor. A cursor that names no row gives an empty page. The database does the
    slicing: a page costs the same however long the list. `conn`: sqlite3's, or a wrapper answering its calls
    (PostgreSQL's)."""
    clauses, params = [f"({where})"], list(args)
    descending = page.order == "desc"
    for cursor, forward in ((page.after, True), (page.before, False)):
        if cursor is None:
            continue
        anchor = conn.execute(f"SELECT {seq} FROM {table} WHERE {cursor_column} = ? AND ({where})",
                              (cursor, *args)).fetchone()
        if anchor is None:
            return [], False
        clauses.append(f"{seq} {'>' if forward != descending else '<'} ?")
        params.append(anchor[0])
    # `before` alone asks for the rows just before the cursor: read them backwards, then turn them round.
    backwards = page.before is not None and page.after is None
    direction = "DESC" if descending != backwards else "ASC"
    rows = conn.execute(f"SELECT {select} FROM {table} WHERE {' AND '.join(clauses)} ORDER BY {seq} {direction} "
                        "LIMIT ?", (*params, page.limit + 1)).fetchall()
    has_more = len(rows) > page.limit
    rows = rows[:page.limit]
    return (rows[::-1] if backwards else rows), has_more
