"""Responses and conversations in the metadata database: ids, status, order and owners as columns; each Response,
each input item and each conversation item as the JSON body OpenAI's wire gives it."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.db import Database, PageRequest
from orchestrator.errors import NotFound
from retrieval.sqlite import keyset_page

LIVE = ("queued", "in_progress")


class ResponseNotFound(NotFound):
    def __init__(self, response_id: str) -> None:
        super().__init__(f"Response with id '{response_id}' not found.")


class ConversationNotFound(NotFound):
    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"Conversation with id '{conversation_id}' not found.")


class ItemNotFound(NotFound):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"Item with id '{item_id}' not found.")


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ---- responses -----------------------------------------------------------------------------------------

    def insert(self, response: dict[str, Any], inputs: list[dict[str, Any]], project: str) -> None:
        """A new response with its own input items (each with its id), owned by `project`."""
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO responses (id, status, body, stored) VALUES (?, ?, ?, ?)",
                         (response["id"], response["status"], json.dumps(response), int(bool(response["store"]))))
            conn.executemany("INSERT INTO response_inputs (id, response_id, body) VALUES (?, ?, ?)",
                             [(item["id"], response["id"], json.dumps(item)) for item in inputs])
            conn.execute("INSERT INTO owners (id, project) VALUES (?, ?)", (response["id"], project))

    def get(self, response_id: str, *, stored_only: bool = True) -> dict[str, Any]:
        """A response; one created with `store: false` only while it runs (`stored_only=False`)."""
        row = self._db.one("SELECT body, stored FROM responses WHERE id = ?", (response_id,))
        if row is None or (stored_only and not row[1]):
            raise ResponseNotFound(response_id)
        body: dict[str, Any] = json.loads(row[0])
        return body

    def save(self, response: dict[str, Any], allowed: tuple[str, ...] | None = None) -> bool:
        """Write the response's body and status, only while its status is one of `allowed` (None: whatever it
        is); False if it had moved on (a cancel won)."""
        sql = "UPDATE responses SET status = ?, body = ? WHERE id = ?"
        args: tuple[Any, ...] = (response["status"], json.dumps(response), response["id"])
        if allowed is not None:
            sql += f" AND status IN ({', '.join('?' * len(allowed))})"
            args += allowed
        return bool(self._db.execute(sql, args))

    def delete(self, response_id: str) -> None:
        self.get(response_id)
        self.forget(response_id)

    def forget(self, response_id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM response_inputs WHERE response_id = ?", (response_id,))
            conn.execute("DELETE FROM responses WHERE id = ?", (response_id,))
            conn.execute("DELETE FROM owners WHERE id = ?", (response_id,))

    def inputs(self, response_id: str) -> list[dict[str, Any]]:
        return [json.loads(row[0]) for row in self._db.all(
            "SELECT body FROM response_inputs WHERE response_id = ? ORDER BY seq", (response_id,))]

    def input_page(self, response_id: str, page: PageRequest) -> tuple[list[dict[str, Any]], bool]:
        self.get(response_id)
        with self._db.read() as conn:
            rows, more = keyset_page(conn, page, select="body", table="response_inputs", where="response_id = ?",
                                     args=(response_id,))
        return [json.loads(row[0]) for row in rows], more

    def live(self) -> list[str]:
        return [row[0] for row in self._db.all(
            f"SELECT id FROM responses WHERE status IN ({', '.join('?' * len(LIVE))})", LIVE)]

    # ---- conversations -------------------------------------------------------------------------------------

    def insert_conversation(self, conversation: dict[str, Any], items: list[dict[str, Any]], project: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO conversations (id, body) VALUES (?, ?)",
                         (conversation["id"], json.dumps(conversation)))
            conn.execute("INSERT INTO owners (id, project) VALUES (?, ?)", (conversation["id"], project))
            self._add_items(conn, conversation["id"], items)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        row = self._db.one("SELECT body FROM conversations WHERE id = ?", (conversation_id,))
        if row is None:
            raise ConversationNotFound(conversation_id)
        body: dict[str, Any] = json.loads(row[0])
        return body

    def replace_conversation(self, conversation: dict[str, Any]) -> None:
        self._db.execute("UPDATE conversations SET body = ? WHERE id = ?",
                         (json.dumps(conversation), conversation["id"]))

    def delete_conversation(self, conversation_id: str) -> None:
        self.conversation(conversation_id)
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM conversation_items WHERE conversation_id = ?", (conversation_id,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            conn.execute("DELETE FROM owners WHERE id = ?", (conversation_id,))

    def add_items(self, conversation_id: str, items: list[dict[str, Any]]) -> None:
        self.conversation(conversation_id)
        with self._db.transaction() as conn:
            self._add_items(conn, conversation_id, items)

    def _add_items(self, conn: Any, conversation_id: str, items: list[dict[str, Any]]) -> None:
        conn.executemany("INSERT INTO conversation_items (id, conversation_id, body) VALUES (?, ?, ?)",
                         [(item["id"], conversation_id, json.dumps(item)) for item in items])

    def items(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every item of the conversation, oldest first."""
        self.conversation(conversation_id)
        return [json.loads(row[0]) for row in self._db.all(
            "SELECT body FROM conversation_items WHERE conversation_id = ? ORDER BY seq", (conversation_id,))]

    def item_page(self, conversation_id: str, page: PageRequest) -> tuple[list[dict[str, Any]], bool]:
        self.conversation(conversation_id)
        with self._db.read() as conn:
            rows, more = keyset_page(conn, page, select="body", table="conversation_items",
                                     where="conversation_id = ?", args=(conversation_id,))
        return [json.loads(row[0]) for row in rows], more

    def item(self, conversation_id: str, item_id: str) -> dict[str, Any]:
        self.conversation(conversation_id)
        row = self._db.one("SELECT body FROM conversation_items WHERE conversation_id = ? AND id = ?",
                           (conversation_id, item_id))
        if row is None:
            raise ItemNotFound(item_id)
        body: dict[str, Any] = json.loads(row[0])
        return body

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        self.item(conversation_id, item_id)
        self._db.execute("DELETE FROM conversation_items WHERE conversation_id = ? AND id = ?",
                         (conversation_id, item_id))

    def stored_items(self, item_id: str) -> list[tuple[dict[str, Any], str]]:
        """The stored input and conversation items with this id (clients choose ids, so several may share one),
        newest first, each with the id of the response or conversation that holds it (whose owner may see it)."""
        found = []
        for table, holder in (("response_inputs", "response_id"), ("conversation_items", "conversation_id")):
            found += [(json.loads(row[0]), row[1]) for row in self._db.all(
                f"SELECT body, {holder} FROM {table} WHERE id = ? ORDER BY seq DESC", (item_id,))]
        return found
