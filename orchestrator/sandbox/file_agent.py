"""The program a remote sandbox's keeper container runs to reach /mnt/data (issue 33): safefs's own functions,
run inside under the sandbox uid, so a remote host gets the local host's protections (no link followed, nothing
but regular files read, bounded scans).

remote_files.py runs this file's text with `python3 -I -S -c` and hands it safefs.py's text, which `run` executes
as a module of its own: the keeper runs the very code checked here, and neither file can shadow the other's
names. Standard library only (the keeper has nothing else of ours).

One agent serves a sandbox for as long as the server keeps its exec open: starting an exec and Python costs
~100 ms over TLS, one request on an open stream a round trip. Requests come one after another, each a framed
JSON list (the operation and its arguments), a write's bytes following it as framed chunks up to an empty one;
stdin ending between requests is the server letting the agent go. Nothing written to stdout can be mistaken for
framing, whatever the sandbox named its files: status lines are JSON (ASCII: a newline in a name is escaped) and
bytes travel as length-prefixed chunks. An operation's failure is reported in a status line and the agent waits
for the next request; a crash exits non-zero, its traceback on stderr, and the server starts another agent.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path("/mnt/data")
LENGTH_BYTES = 4
END = bytes(LENGTH_BYTES)
# What one input chunk (or request) may claim to be: the agent allocates what the length says.
MAX_INPUT_CHUNK = 1 << 20


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(LENGTH_BYTES, "big") + data


def request(op: str, *args: str) -> bytes:
    return frame(json.dumps([op, *args], separators=(",", ":")).encode("ascii"))


def status_line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("ascii") + b"\n"


# The server's side of the framing, here so that it parses exactly what this file writes and reads.
def framed(chunks: Iterable[bytes]) -> Iterator[bytes | memoryview]:
    """`chunks` as the agent reads them: cut to MAX_INPUT_CHUNK, each after its length (not the end)."""
    for chunk in chunks:
        view = memoryview(chunk)  # slices of it copy nothing: a caller's large chunk is not doubled
        for start in range(0, len(view), MAX_INPUT_CHUNK):
            piece = view[start:start + MAX_INPUT_CHUNK]
            yield len(piece).to_bytes(LENGTH_BYTES, "big")
            yield piece


def parse_status(line: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(line)
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        raise ValueError(f"not a status line: {line[:200]!r}")
    return payload


def parse_scan(payload: dict[str, Any]) -> tuple[list[tuple[str, list[Any]]], bool]:
    """A scan's (name, stat) pairs and whether it is complete; ValueError if it is not shaped as _scan makes it."""
    try:
        entries = [(name, stat) for name, *stat in payload["files"]]
        complete = payload["complete"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"a malformed scan: {exc!r:.200}") from exc
    if not isinstance(complete, bool) or not all(isinstance(name, str) for name, _ in entries):
        raise ValueError("a malformed scan")
    return entries, complete


def _read_frame(stdin: BinaryIO) -> bytes | None:
    """The next framed chunk; None for the empty one; EOFError if the input stops short (the server gave up),
    so a cut-off upload is never renamed into place."""
    header = stdin.read(LENGTH_BYTES)
    if len(header) < LENGTH_BYTES:
        raise EOFError("input ended without its last chunk")
    length = int.from_bytes(header, "big")
    if length == 0:
        return None
    if length > MAX_INPUT_CHUNK:
        raise ValueError(f"an input chunk of {length} bytes")
    data = stdin.read(length)
    if len(data) < length:
        raise EOFError("input ended inside a chunk")
    return data


def _input_chunks(stdin: BinaryIO) -> Iterator[bytes]:
    while (data := _read_frame(stdin)) is not None:
        yield data


def _failure(fs: Any, exc: BaseException) -> dict[str, Any] | None:
    """The status line for an error the server maps back to an exception; None for anything else (a crash)."""
    if isinstance(exc, fs.UnsafePath):
        return {"error": "unsafe", "message": str(exc)}
    if isinstance(exc, OSError) and exc.errno is not None:
        return {"error": "os", "errno": exc.errno, "strerror": exc.strerror or ""}
    return None


def _stat(info: Any) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _write(fs: Any, path: str, stdin: BinaryIO, stdout: BinaryIO) -> dict[str, Any] | None:
    chunks = _input_chunks(stdin)
    try:
        # The exec already runs as the sandbox uid: whatever it creates is the sandbox's without a chown.
        fs.write_file(ROOT, path, chunks, uid=None)
        fd, info = fs.open_regular(ROOT, path)
        os.close(fd)
        return {"stat": _stat(info)}
    except Exception as exc:
        failed = _failure(fs, exc)
        if failed is None:
            raise
    # Answered at once, so that the server can stop sending the rest of a large upload (a full disk); what it
    # sent meanwhile is read and dropped up to the empty chunk, which it sends either way.
    stdout.write(status_line(failed))
    stdout.flush()
    for _ in chunks:
        pass
    return None


def _read(fs: Any, path: str, stdout: BinaryIO) -> dict[str, Any]:
    try:
        fd, info = fs.open_regular(ROOT, path)
    except Exception as exc:
        failed = _failure(fs, exc)
        if failed is None:
            raise
        return failed
    stdout.write(status_line({"stat": _stat(info)}))
    try:
        # At most the size just reported, so the bytes match the stat even if the sandbox appends meanwhile.
        for chunk in fs.read_chunks(fd, info.st_size):
            stdout.write(frame(chunk))
    except OSError as exc:
        stdout.write(END)
        return {"error": "os", "errno": exc.errno or 5, "strerror": exc.strerror or str(exc)}
    stdout.write(END)
    return {"done": True}


def _scan(fs: Any, max_entries: int, max_depth: int, max_output: int) -> bytes:
    found = fs.scan(ROOT, max_entries=max_entries, max_depth=max_depth)
    entries, used, complete = [], 0, found.complete
    for name, info in found.files.items():
        entry = json.dumps([name, info.size, info.mtime_ns, info.inode], separators=(",", ":"))
        used += len(entry) + 1
        if used > max_output:  # names made long enough to swamp the server: the scan says it saw only part
            complete = False
            break
        entries.append(entry)
    # The entries are JSON already: joined as they are, not encoded again.
    return f'{{"complete":{json.dumps(complete)},"files":[{",".join(entries)}]}}\n'.encode("ascii")


def handle(fs: Any, op: str, args: list[str], stdin: BinaryIO, stdout: BinaryIO) -> None:
    """One operation, `fs` being the safefs module: write PATH (chunks on stdin) | read PATH | remove PATH |
    scan MAX_ENTRIES MAX_DEPTH MAX_OUTPUT_BYTES."""
    if op == "write":
        reply = _write(fs, args[0], stdin, stdout)
        if reply is None:
            return
    elif op == "read":
        reply = _read(fs, args[0], stdout)
    elif op == "remove":
        try:
            reply = {"removed": fs.remove_file(ROOT, args[0])}
        except fs.UnsafePath as exc:
            reply = {"error": "unsafe", "message": str(exc)}
    elif op == "scan":
        stdout.write(_scan(fs, int(args[0]), int(args[1]), int(args[2])))
        stdout.flush()
        return
    else:
        raise ValueError(f"unknown operation {op!r}")
    stdout.write(status_line(reply))
    stdout.flush()


def serve(fs: Any, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Requests until stdin ends between two of them."""
    while True:
        if not stdin.peek(1):  # type: ignore[attr-defined]  # a BufferedReader: the end, not a short header
            return 0
        message = _read_frame(stdin)
        parsed = json.loads(message) if message is not None else None
        if not (isinstance(parsed, list) and parsed and all(isinstance(part, str) for part in parsed)):
            raise ValueError(f"not a request: {str(message)[:200]}")
        handle(fs, parsed[0], parsed[1:], stdin, stdout)


def run(safefs_source: str) -> int:
    """Load safefs from its text as a module named safefs (its dataclasses look their module up by name), then
    serve."""
    fs = types.ModuleType("safefs")
    sys.modules["safefs"] = fs
    exec(compile(safefs_source, "safefs.py", "exec"), fs.__dict__)  # our own file, sent by the server
    return serve(fs, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
