"""Assistants objects in the metadata database: relational columns for ids, order and the owning thread; the
rest of each OpenAI object as a JSON body, read back as it was written."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from orchestrator.db import Database, PageRequest
from orchestrator.errors import NotFound
from orchestrator.services.projects import scope_clause
from retrieval.sqlite import keyset_page

Kind = Literal["assistants", "threads", "messages", "runs", "run_steps"]
_NAMES = {"assistants": "assistant", "threads": "thread", "messages": "message", "runs": "run",
          "run_steps": "run step"}


class ObjectNotFound(NotFound):
    def __init__(self, kind: Kind, object_id: str) -> None:
        super().__init__(f"No {_NAMES[kind]} found with id '{object_id}'.")


class ObjectStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, kind: Kind, body: dict[str, Any], *, project: str | None = None,
               **columns: str | None) -> dict[str, Any]:
        """Store a new object; a top-level one (assistant, thread) with its project, in the same transaction."""
        names = ["id", "body", *columns]
        insert = (f"INSERT INTO {kind} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                  (body["id"], json.dumps(body), *columns.values()))
        if project is None:
            self._db.execute(*insert)
            return body
        with self._db.transaction() as conn:
            conn.execute(*insert)
            conn.execute("INSERT INTO owners (id, project) VALUES (?, ?)", (body["id"], project))
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

    def transition(self, run_id: str, allowed: tuple[str, ...] | None, changes: dict[str, Any],
                   columns: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Compare-and-set on a run: apply `changes` (a new `status` among them), and set `columns` of its row,
        only if the run's status is one of `allowed` now (None: whatever it is); the new body, or None if the run
        had moved on."""
        with self._db.transaction() as conn:
            if allowed is None:
                row = conn.execute("SELECT body FROM runs WHERE id = ?", (run_id,)).fetchone()
            else:
                row = conn.execute(f"SELECT body FROM runs WHERE id = ? AND status IN "
                                   f"({', '.join('?' * len(allowed))})", (run_id, *allowed)).fetchone()
            if row is None:
                return None
            body = {**json.loads(row[0]), **changes}
            columns = columns or {}
            conn.execute(f"UPDATE runs SET body = ?, status = ?{''.join(f', {name} = ?' for name in columns)} "
                         "WHERE id = ?", (json.dumps(body), body["status"], *columns.values(), run_id))
        return body

    def delete(self, kind: Kind, object_id: str, **where: str) -> None:
        clauses = " AND ".join(["id = ?", *(f"{column} = ?" for column in where)])
        if not self._db.execute(f"DELETE FROM {kind} WHERE {clauses}", (object_id, *where.values())):
            raise ObjectNotFound(kind, object_id)

    def page(self, kind: Kind, page: PageRequest, *, scope: str | None = None,
             **where: str | None) -> tuple[list[dict[str, Any]], bool]:
        """One page of `kind`: of one project's objects when `scope` names it, matching the `where` columns."""
        given = {column: value for column, value in where.items() if value is not None}
        owned, owned_args = scope_clause(scope)
        clause = " AND ".join([owned, *(f"{column} = ?" for column in given)])
        with self._db.read() as conn:
            rows, has_more = keyset_page(conn, page, select="body", table=kind, where=clause,
                                         args=(*owned_args, *given.values()))
        return [json.loads(row[0]) for row in rows], has_more

    # ---- runs ----------------------------------------------------------------------------------------------

    def live_run(self, thread_id: str, live: tuple[str, ...]) -> str | None:
        row = self._db.one(f"SELECT id FROM runs WHERE thread_id = ? AND status IN ({', '.join('?' * len(live))})",
                           (thread_id, *live))
        return row[0] if row else None

    def live_runs(self, live: tuple[str, ...]) -> list[str]:
        return [row[0] for row in self._db.all(
            f"SELECT id FROM runs WHERE status IN ({', '.join('?' * len(live))})", live)]

    def conversation(self, run_id: str) -> list[dict[str, Any]] | None:
        row = self._db.one("SELECT conversation FROM runs WHERE id = ?", (run_id,))
        return json.loads(row[0]) if row and row[0] else None

    def save_conversation(self, run_id: str, conversation: list[dict[str, Any]]) -> None:
        self._db.execute("UPDATE runs SET conversation = ? WHERE id = ?", (json.dumps(conversation), run_id))

    def open_steps(self, run_id: str) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self._db.all(
            "SELECT body FROM run_steps WHERE run_id = ? AND json_extract(body, '$.status') = 'in_progress'",
            (run_id,))]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        """A run's steps, oldest first."""
        return [json.loads(row[0]) for row in self._db.all(
            "SELECT body FROM run_steps WHERE run_id = ? ORDER BY seq", (run_id,))]

    def complete_function_step(self, run_id: str, outputs: dict[str, str]) -> dict[str, Any] | None:
        """Fill in the outputs of the run's waiting function-call step and mark it completed."""
        row = self._db.one("SELECT body FROM run_steps WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,))
        if row is None:
            return None
        step = json.loads(row[0])
        for call in step["step_details"].get("tool_calls", []):
            if call["type"] == "function" and call["id"] in outputs:
                call["function"]["output"] = outputs[call["id"]]
        return self.replace("run_steps", {**step, "status": "completed", "completed_at": int(time.time())})
