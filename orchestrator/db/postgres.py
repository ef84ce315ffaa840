"""The metadata database on PostgreSQL (TOOLSHED_DATABASE_URL=postgresql://...), for replicas that share it.

psycopg 3 with plain SQL and a psycopg_pool.ConnectionPool; no ORM: the stores already speak SQL, one text per
statement for both engines; this module and the retrieval catalog's (retrieval.postgres) are the only ones that
import psycopg. The wrapper a store is lent turns sqlite3's `?` placeholders into psycopg's `%s`.

Writers take turns, as on SQLite, across replicas too: every transaction first takes one transaction-scoped
advisory lock. That keeps the stores' read-then-write steps (compare-and-set statuses, `MAX(seq) + 1` counters,
quota checks) correct under concurrent writers without a second SQL text for PostgreSQL. A thread already inside
a transaction is lent the same connection again (it sees its own uncommitted rows, and never waits on itself).
Reads use a pooled connection of their own, in autocommit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from orchestrator.db.base import Database, IntegrityError
from orchestrator.db.pg_migrations import PG_MIGRATIONS
from orchestrator.errors import DiskFull, InvalidRequest, Unavailable
from retrieval.postgres import Connection  # the sqlite3-like wrapper, shared with the retrieval catalog

# Arbitrary, fixed keys of the advisory locks: one for writers, one for migrations.
_WRITE_LOCK = 0x7005_0001
_MIGRATION_LOCK = 0x7005_0002
_NAME_LOCKS = 0x7005_0003  # with hashtext(namespace): the two-key advisory locks of servers' namespaces


@contextmanager
def _translated_errors() -> Iterator[None]:
    """psycopg's errors as ours: a refused constraint as the stores' IntegrityError, a value PostgreSQL cannot
    hold (a NUL in a text, which SQLite keeps) as a 400, a full disk as a 507, a database that does not answer
    (down, no free connection, a deadlock broken) as a 503 to retry."""
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    except psycopg.DataError as exc:
        raise InvalidRequest(f"A value in the request cannot be stored or looked up: {exc}") from exc
    except errors.DiskFull as exc:
        raise DiskFull("The metadata database's disk is full.") from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise Unavailable("The metadata database is not answering; retry later.") from exc


class PostgresDatabase(Database):
    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self._url = url
        self._name_holder: psycopg.Connection[Any] | None = None
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=True,
                                    kwargs={"autocommit": True}, name="toolshed-metadata")
        self._local = threading.local()
        try:
            self._pool.wait(timeout=30)
            self._upgrade()
        except BaseException:
            self._pool.close()
            raise

    @property
    def version(self) -> int:
        row = self.one("SELECT MAX(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    def _upgrade(self) -> None:
        """Apply the migrations this database lacks, one transaction each with its version number. Replicas
        starting at once queue on a session advisory lock, so each migration runs exactly once."""
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")
                row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
                for number in range(int(row[0]) + 1 if row else 1, len(PG_MIGRATIONS) + 1):
                    with conn.transaction():
                        conn.execute(PG_MIGRATIONS[number - 1].encode())
                        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        with _translated_errors(), self._pool.connection() as conn:
            yield Connection(conn, _translated_errors)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        held = getattr(self._local, "conn", None)
        if held is not None:  # nested in this thread's transaction: part of it
            yield held
            return
        with _translated_errors(), self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            self._local.conn = Connection(conn, _translated_errors)
            try:
                yield self._local.conn
            finally:
                self._local.conn = None

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self.transaction() as conn:
            return conn.execute(sql, args).rowcount

    def hold_name(self, name: str) -> None:
        # A session advisory lock on a connection of its own, held until close() (or the process dies): a replica
        # id's namespace part must name one live server, or a starting replica would end another's runs as its own
        # earlier life's (orchestrator.services.leases).
        conn = psycopg.connect(self._url, autocommit=True)
        row = conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_NAME_LOCKS, name)).fetchone()
        if not (row and row[0]):
            conn.close()
            raise Unavailable(f"Another server on this database runs with TOOLSHED_NAMESPACE={name!r}; give each "
                              "replica a namespace of its own.")
        self._name_holder = conn

    def close(self) -> None:
        if self._name_holder is not None:
            self._name_holder.close()
        self._pool.close()
