"""Structured logs: every record carries the ids it concerns (thread_id, container_id, ...) as fields.

Fields come from two places: `extra=` on the call (the engine passes container_id) and the ids bound for the
current request with `bind()` (the tool router binds thread_id), so a line logged deep in the engine still says
which conversation it belongs to. TOOLSHED_LOG_FORMAT picks JSON lines (for collectors) or key=value text.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

# Read-only default: bind() always sets a new mapping, never changes the one it read.
_bound: ContextVar[Mapping[str, Any]] = ContextVar("toolshed_log_fields", default=MappingProxyType({}))
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields to every record logged inside the block (and in tasks it starts)."""
    token = _bound.set({**_bound.get(), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: bound ones, overridden by the call's own `extra`."""
    extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
    return {**getattr(record, "_bound", {}), **extra}


class _BindFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record._bound = _bound.get()
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """One line per record: a line break (or any control character) in a message or a field, which may come
    from a client (a thread name, a path), is written escaped, so it cannot start a line of its own."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        text = one_line(super().formatMessage(record).rstrip("\r\n"))
        pairs = " ".join(f"{k}={_field(v)}" for k, v in fields_of(record).items() if v is not None)
        return f"{text} [{pairs}]" if pairs else text


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r"[\s\"=\[\]]")


def one_line(text: str) -> str:
    """`text` with its control characters and line separators written as Python escapes (\\n, \\x1b)."""
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)


def _field(value: Any) -> str:
    text = str(value)
    return one_line(json.dumps(text, ensure_ascii=False) if _NEEDS_QUOTES.search(text) else text)


# A key or token given in a URL's query string (Jupyter clients send `?token=`): the access log and the
# websocket handshake line print the whole URL.
_SECRET_IN_QUERY = re.compile(r"([?&](?:token|api[_-]?key|access[_-]token|key)=)[^&\s\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRET_IN_QUERY.sub(r"\1[redacted]", text)


class _Redact(logging.Filter):
    """No key in any line, whichever logger wrote it (uvicorn's access and websocket lines included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            # Numbers keep their type (%d needs one); anything else (a URL object) is logged as redacted text.
            record.args = tuple(arg if isinstance(arg, int | float) else redact(str(arg)) for arg in record.args)
        return True


class _QuietReads(logging.Filter):
    """Successful GETs (clients poll runs and files every few hundred ms) are access-logged at DEBUG only."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 5 and args[1] == "GET" and isinstance(args[4], int) and args[4] < 400:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def configure(fmt: Literal["text", "json"], level: str = "INFO") -> None:
    """Send every logger (uvicorn's included) through one handler in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_BindFilter())
    handler.addFilter(_Redact())
    logging.getLogger("uvicorn.access").addFilter(_QuietReads())
    # httpx logs every request it makes at INFO (the forwarder's between replicas): the access log has them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
