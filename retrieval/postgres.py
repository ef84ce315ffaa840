"""The retrieval catalog on PostgreSQL, shared by replicas: a psycopg 3 connection pool, the catalog's tables in a
schema of their own (`retrieval`), and sqlite3's `?` placeholders turned into psycopg's `%s`.

The only retrieval module that imports psycopg; its errors become ours here. Writers take turns across replicas,
as they do on SQLite (BEGIN IMMEDIATE): every write transaction first takes one transaction-scoped advisory lock,
so chunk ids are handed out in commit order and a replica's watermark never skips a row committed later with a
smaller id. Reads use a pooled connection of their own, in autocommit, and see the last commit; a read inside a
thread's write transaction is lent that transaction's connection (no second connection is held meanwhile, so
writers queued on the lock cannot starve the one that holds it of a connection).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from retrieval.errors import CatalogUnavailable, DiskFull, InvalidRequest

# Arbitrary, fixed advisory lock keys (the orchestrator's metadata database uses 0x7005_0001 and 0x7005_0002).
_WRITE_LOCK = 0x7005_0101
_SCHEMA_LOCK = 0x7005_0102
SCHEMA_NAME = "retrieval"


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """sqlite3's qmark style to psycopg's: each `?` outside a quoted literal or name becomes `%s`, and every
    literal `%` is doubled so psycopg does not read it as a placeholder."""
    out: list[str] = []
    quote = ""
    for char in sql:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append("%%" if char == "%" else char)
    return "".join(out)


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.DataError as exc:  # a value PostgreSQL cannot hold (a NUL in a text), which SQLite keeps
        raise InvalidRequest(f"A value in the request cannot be stored or looked up: {exc}") from exc
    except errors.DiskFull as exc:
        raise DiskFull() from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise CatalogUnavailable() from exc


class Connection:
    """A pooled psycopg connection answering the calls a store makes of a sqlite3 one; psycopg's errors raised as
    `translated_errors` says (the catalog's own by default; the orchestrator's metadata database passes its own)."""

    def __init__(self, conn: psycopg.Connection[Any],
                 translated_errors: Callable[[], AbstractContextManager[None]] = _translated_errors) -> None:
        self._conn = conn
        self._errors = translated_errors

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        with self._errors():
            return self._conn.execute(translate(sql), tuple(args))  # even (): translate() doubled every %

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor[Any]:
        cursor = self._conn.cursor()
        with self._errors():
            cursor.executemany(translate(sql), list(rows))
        return cursor


def _in_schema(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection names the catalog's tables without a prefix, as on SQLite."""
    conn.execute(f"SET search_path TO {SCHEMA_NAME}")


class PostgresCatalogDatabase:
    """The catalog's connections on PostgreSQL; `statements` create its tables (idempotently) on first use."""

    shared = True  # other replicas write the same rows
    # A JSON array argument as a set of texts, for `x IN (...)` with one parameter however many values.
    json_texts = "SELECT json_array_elements_text(CAST(? AS json))"

    def __init__(self, url: str, statements: list[str], *, max_connections: int = 8) -> None:
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=False,
                                    kwargs={"autocommit": True}, configure=_in_schema, name="toolshed-retrieval")
        self._local = threading.local()
        try:
            with _translated_errors():
                self._create(url, statements)
                self._pool.open(wait=True, timeout=30)
        except BaseException:
            self._pool.close()
            raise

    @staticmethod
    def _create(url: str, statements: list[str]) -> None:
        """Create the schema and tables if missing. Replicas starting at once queue on a session advisory lock:
        two concurrent CREATE ... IF NOT EXISTS of one table can both try, and one fail."""
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME}")
                conn.execute(f"SET search_path TO {SCHEMA_NAME}")
                with conn.transaction():
                    for statement in statements:
                        conn.execute(statement.encode())
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        if (held := getattr(self._local, "conn", None)) is not None:
            yield held
            return
        with _translated_errors(), self._pool.connection() as conn:
            yield Connection(conn)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction, after every other replica's writer: it commits whole or not at all."""
        with _translated_errors(), self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            self._local.conn = Connection(conn)
            try:
                yield self._local.conn
            finally:
                self._local.conn = None

    def close(self) -> None:
        self._pool.close()
