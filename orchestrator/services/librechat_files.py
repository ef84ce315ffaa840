"""Which files each LibreChat Code API session holds, and under which name: uploads and the files an execution
wrote, kept as Files-API files (so they count against the project's storage and go when the file is deleted).

A session belongs to the LibreChat user that made it (`user`, "" for an API key): its rows are stored under a
key naming that user, so another user naming the same session id finds nothing there."""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrator.db import Database


@dataclass(frozen=True)
class SessionFile:
    session_id: str
    file_id: str
    name: str
    created_at: int


def _row_key(session_id: str, user: str) -> str:
    """Rows of API-key sessions keep the bare session id, as they were stored before users were told apart. Session
    ids are hex, so one holding ':' (which could name another user's rows) gets a key no row has."""
    if ":" in session_id:
        return ":"
    return f"{user}:{session_id}" if user else session_id


class LibreChatFiles:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, session_id: str, file_id: str, name: str, user: str = "") -> None:
        self._db.execute("INSERT INTO librechat_files (session_id, file_id, name, created_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (session_id, file_id) DO UPDATE SET name = excluded.name, "
                         "created_at = excluded.created_at",
                         (_row_key(session_id, user), file_id, name, int(time.time())))

    def get(self, session_id: str, file_id: str, user: str = "") -> SessionFile | None:
        row = self._db.one("SELECT file_id, name, created_at FROM librechat_files WHERE session_id = ? "
                           "AND file_id = ?", (_row_key(session_id, user), file_id))
        return SessionFile(session_id, *row) if row else None

    def of_session(self, session_id: str, user: str = "") -> list[SessionFile]:
        rows = self._db.all("SELECT file_id, name, created_at FROM librechat_files WHERE session_id = ? "
                            "ORDER BY created_at, name", (_row_key(session_id, user),))
        return [SessionFile(session_id, *row) for row in rows]
