"""Assistants objects in the metadata database: relational columns for ids, order and the owning thread; the
rest of each OpenAI object as a JSON body, read back as it was written."""

from __future__ import annotations

import json
from typing import Any, Literal

from orchestrator.db import Database, PageRequest
from orchestrator.errors import NotFound
from retrieval.sqlite import keyset_page

Kind = Literal["assistants", "threads", "messages"]
_NAMES = {"assistants": "assistant", "threads": "thread", "messages": "message"}


class ObjectNotFound(NotFound):
    def __init__(self, kind: Kind, object_id: str) -> None:
        super().__init__(f"No {_NAMES[kind]} found with id '{object_id}'.")


class ObjectStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, kind: Kind, body: dict[str, Any], **columns: str | None) -> dict[str, Any]:
        names = ["id", "body", *columns]
        self._db.execute(f"INSERT INTO {kind} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                         (body["id"], json.dumps(body), *columns.values()))
        return body

    def get(self, kind: Kind, object_id: str, **where: str) -> dict[str, Any]:
        clauses = " AND ".join(["id = ?", *(f"{column} = ?" for column in where)])
        row = self._db.one(f"SELECT body FROM {kind} WHERE {clauses}", (object_id, *where.values()))
        if row is None:
            raise ObjectNotFound(kind, object_id)
        body: dict[str, Any] = json.loads(row[0])
        return body

    def replace(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        if not self._db.execute(f"UPDATE {kind} SET body = ? WHERE id = ?", (json.dumps(body), body["id"])):
            raise ObjectNotFound(kind, body["id"])
        return body

    def delete(self, kind: Kind, object_id: str, **where: str) -> None:
        clauses = " AND ".join(["id = ?", *(f"{column} = ?" for column in where)])
        if not self._db.execute(f"DELETE FROM {kind} WHERE {clauses}", (object_id, *where.values())):
            raise ObjectNotFound(kind, object_id)

    def page(self, kind: Kind, page: PageRequest, **where: str | None) -> tuple[list[dict[str, Any]], bool]:
        given = {column: value for column, value in where.items() if value is not None}
        clause = " AND ".join(f"{column} = ?" for column in given) or "1"
        with self._db.read() as conn:
            rows, has_more = keyset_page(conn, page, select="body", table=kind, where=clause,
                                         args=tuple(given.values()))
        return [json.loads(row[0]) for row in rows], has_more
