"""Which files each LibreChat Code API session holds, and under which name: uploads and the files an execution
wrote, kept as Files-API files (so they count against the project's storage and go when the file is deleted)."""

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


class LibreChatFiles:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, session_id: str, file_id: str, name: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO librechat_files (session_id, file_id, name, created_at) "
                         "VALUES (?, ?, ?, ?)", (session_id, file_id, name, int(time.time())))

    def get(self, session_id: str, file_id: str) -> SessionFile | None:
        row = self._db.one("SELECT session_id, file_id, name, created_at FROM librechat_files WHERE session_id = ? "
                           "AND file_id = ?", (session_id, file_id))
        return SessionFile(*row) if row else None

    def of_session(self, session_id: str) -> list[SessionFile]:
        rows = self._db.all("SELECT session_id, file_id, name, created_at FROM librechat_files WHERE session_id = ? "
                            "ORDER BY created_at, name", (session_id,))
        return [SessionFile(*row) for row in rows]
