"""API keys: from the environment (TOOLSHED_API_KEYS, TOOLSHED_ADMIN_KEYS) and from the database (`toolshed keys`).

Environment keys are compared in constant time against every configured key. Database keys are stored as SHA-256
digests only: a key is 32 random bytes, so its digest is as good as a slow hash and can be looked up by an index,
and whoever reads the database learns no key. Keys are read per request, so `toolshed keys create` and `revoke`
take effect without a restart. No key is ever logged; a listing shows its id and its last four characters.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from orchestrator.db import Database
from orchestrator.services.projects import DEFAULT_PROJECT, Caller, check_project_name
from retrieval.ids import new_id

KEY_PREFIX = "tsk-"
# A revoked key's digest column: never a SHA-256 hex digest, so no key matches it.
_REVOKED = "revoked:"


@dataclass(frozen=True)
class StoredKey:
    id: str
    project: str
    hint: str  # the key's last four characters, so an operator can tell keys apart
    created_at: int


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def identity(key: str) -> str:
    """A stable name for one key that reveals nothing of it: what a session opened with the key is bound to."""
    return f"key-{_digest(key)}"


class KeyRing:
    def __init__(self, db: Database, keys: list[str] | dict[str, str], admin_keys: list[str]) -> None:
        self._db = db
        # A plain list is one shared project, as before projects existed.
        projects = keys if isinstance(keys, dict) else dict.fromkeys(keys, DEFAULT_PROJECT)
        self._configured = [(key, Caller(check_project_name(project))) for key, project in projects.items()]
        self._configured += [(key, Caller(admin=True)) for key in admin_keys]

    @property
    def open(self) -> bool:
        """True when no key was ever configured or created, so every request is trusted (and acts for the default
        project). Revoked keys keep their row: revoking the last key must lock the server, not open it."""
        return not self._configured and self._db.one("SELECT 1 FROM api_keys LIMIT 1") is None

    def caller(self, key: str, project_header: str | None = None) -> Caller | None:
        """Who `key` acts for; None if it is no key. An admin acts in the project its `OpenAI-Project` header
        names (the default one without it) and sees every project."""
        found = None
        for candidate, caller in self._configured:  # no early exit: the time taken says nothing of which matched
            if secrets.compare_digest(key.encode(), candidate.encode()):
                found = caller
        if found is None:
            row = self._db.one("SELECT project FROM api_keys WHERE digest = ?", (_digest(key),))
            found = Caller(row[0]) if row else None
        if found is not None and found.admin and project_header:
            return Caller(check_project_name(project_header), admin=True)
        return found

    def create(self, project: str) -> tuple[StoredKey, str]:
        """A new key for `project`: its record and the key itself, which is shown once and never stored."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        stored = StoredKey(new_id("key_", 12), check_project_name(project), key[-4:], int(time.time()))
        self._db.execute("INSERT INTO api_keys (id, project, digest, hint, created_at) VALUES (?, ?, ?, ?, ?)",
                         (stored.id, stored.project, _digest(key), stored.hint, stored.created_at))
        return stored, key

    def list(self) -> list[StoredKey]:
        rows = self._db.all("SELECT id, project, hint, created_at FROM api_keys WHERE digest NOT LIKE ? "
                            "ORDER BY created_at, id", (_REVOKED + "%",))
        return [StoredKey(*row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """The key stops working at once; its row stays, its digest replaced by a mark no key hashes to."""
        return self._db.execute("UPDATE api_keys SET digest = ? WHERE id = ? AND digest NOT LIKE ?",
                                (_REVOKED + key_id, key_id, _REVOKED + "%")) > 0
