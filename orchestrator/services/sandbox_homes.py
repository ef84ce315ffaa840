"""Which replica holds each sandbox (migration 12), so a request for a container that reaches another replica can
be forwarded to the one whose Docker Engine runs it (web/forwarding.py).

A replica records its sandboxes under its own address (TOOLSHED_REPLICA_URL) as it makes them. Without an
address, a server is alone: nothing is recorded and nothing is forwarded.
"""

from __future__ import annotations

from orchestrator.db import Database


class SandboxHomes:
    def __init__(self, db: Database, url: str) -> None:
        self._db = db
        self.url = url.rstrip("/")

    def record(self, container_id: str) -> None:
        """This replica holds `container_id` from now on."""
        if self.url:
            self._db.execute("INSERT INTO sandbox_homes (container_id, replica_url) VALUES (?, ?) ON CONFLICT "
                             "(container_id) DO UPDATE SET replica_url = excluded.replica_url",
                             (container_id, self.url))

    def elsewhere(self, container_id: str) -> str | None:
        """The address of the other replica holding `container_id`; None if it is this one's, or unknown."""
        if not self.url:
            return None
        row = self._db.one("SELECT replica_url FROM sandbox_homes WHERE container_id = ?", (container_id,))
        return row[0] if row and row[0] != self.url else None
