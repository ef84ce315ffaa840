"""Who owns each MCP session, and how many a project holds: the MCP SDK binds a session to the principal that
opened it (a hash of the key, never the key), and the project's quota of open sessions is kept here, since the
SDK's own cap (10,000) is the whole server's. Session ids are kept out of the logs: the SDK logs them at INFO.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from orchestrator.services.keys import identity

# The SDK's session ids are uuid4().hex; any such run in one of its log lines is hidden.
_SESSION_ID = re.compile(r"[0-9a-fA-F]{32}")
_SDK_LOGGERS = ("mcp.server.streamable_http_manager", "mcp.server.streamable_http")


class _HideSessionIds(logging.Filter):
    """Rewrites the SDK's log lines without their session ids: an id in a log is a session anyone reading the
    log could use (with the owner's key, since sessions are bound; still not a thing to hand out)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SESSION_ID.search(message):
            record.msg, record.args = _SESSION_ID.sub("<session>", message), ()
        return True


_FILTER = _HideSessionIds()


def hide_session_ids() -> None:
    """Install the filter on the SDK's session loggers (once: a logger keeps one copy of a filter)."""
    for name in _SDK_LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)


def principal(authorization: str) -> AuthenticatedUser:
    """The SDK's user for a request's key: sessions are bound to it, so another key (even of the same project)
    naming a session's id gets the SDK's 404 and the session stays its opener's."""
    scheme, _, token = authorization.partition(" ")
    name = identity(token) if scheme.lower() == "bearer" and token else "open-access"
    return AuthenticatedUser(AccessToken(token=name, client_id=name, scopes=[]))


@dataclass
class _Open:
    project: str
    owner: str
    last_seen: float
    in_flight: int = 0


class SessionQuota:
    """Open MCP sessions per project, as this face sees them come and go: one opens when the SDK answers an
    opening request with its id, ends on a DELETE, and counts as gone once it has had no request for the SDK's
    idle timeout (when the SDK ends it too)."""

    def __init__(self, limit_of: Callable[[str], int], idle_timeout: float) -> None:
        self._limit_of, self._idle = limit_of, idle_timeout
        self._open: dict[str, _Open] = {}
        self._opening: dict[str, int] = {}

    def room(self, project: str) -> tuple[bool, int]:
        """Whether `project` may open one more session now, and its limit."""
        self._forget_idle()
        held = sum(1 for s in self._open.values() if s.project == project) + self._opening.get(project, 0)
        limit = self._limit_of(project)
        return held < limit, limit

    @contextmanager
    def opening(self, project: str) -> Iterator[None]:
        """Holds a place while an opening request is served, so concurrent ones cannot all take the last."""
        self._opening[project] = self._opening.get(project, 0) + 1
        try:
            yield
        finally:
            self._opening[project] -= 1
            if not self._opening[project]:
                del self._opening[project]

    def opened(self, session_id: str, project: str, owner: str) -> None:
        self._open[session_id] = _Open(project, owner, time.monotonic())

    @contextmanager
    def request(self, session_id: str, owner: str) -> Iterator[None]:
        """A request on a session: only its owner's keep it alive (another key's get the SDK's 404)."""
        found = self._open.get(session_id)
        if found is None or found.owner != owner:
            yield
            return
        found.in_flight += 1
        try:
            yield
        finally:
            found.in_flight -= 1
            found.last_seen = time.monotonic()

    def closed(self, session_id: str, owner: str) -> None:
        found = self._open.get(session_id)
        if found is not None and found.owner == owner:
            del self._open[session_id]

    def _forget_idle(self) -> None:
        cutoff = time.monotonic() - self._idle
        for session_id in [k for k, s in self._open.items() if not s.in_flight and s.last_seen < cutoff]:
            del self._open[session_id]
