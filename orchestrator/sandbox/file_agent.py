"""The program a remote sandbox's keeper container runs, one Docker exec per operation, to reach /mnt/data
(issue 33): safefs's own functions, run inside under the sandbox uid, so a remote host gets the local host's
protections (no link followed, nothing but regular files read, bounded scans).

remote_files.py runs this file's text with `python3 -I -S -c` and hands it safefs.py's text, which `run` executes
as a module of its own: the keeper runs the very code checked here, and neither file can shadow the other's
names. Standard library only (the keeper has nothing else of ours).

Nothing written to stdout can be mistaken for framing, whatever the sandbox named its files: status lines are
JSON (ASCII: a newline in a name is escaped) and bytes travel as length-prefixed chunks. Input comes framed the
same way and ends with an empty chunk, so the server never has to half-close its side of the exec (unreliable
over TLS). A failure is reported in a status line and exits 0; a crash exits non-zero, its traceback on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path("/mnt/data")
LENGTH_BYTES = 4
END = bytes(LENGTH_BYTES)
# What one input chunk may claim to be: the agent allocates what the length says.
MAX_INPUT_CHUNK = 1 << 20


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(LENGTH_BYTES, "big") + data


def status_line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("ascii") + b"\n"


def _input_chunks(stdin: BinaryIO) -> Iterator[bytes]:
    """The framed chunks on stdin up to the empty one; EOFError if the input stops short (the server gave up),
    so a cut-off upload is never renamed into place."""
    while True:
        header = stdin.read(LENGTH_BYTES)
        if len(header) < LENGTH_BYTES:
            raise EOFError("input ended without its last chunk")
        length = int.from_bytes(header, "big")
        if length == 0:
            return
        if length > MAX_INPUT_CHUNK:
            raise ValueError(f"an input chunk of {length} bytes")
        data = stdin.read(length)
        if len(data) < length:
            raise EOFError("input ended inside a chunk")
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
    # sent meanwhile is read and dropped, or it hangs up.
    stdout.write(status_line(failed))
    stdout.flush()
    try:
        for _ in chunks:
            pass
    except EOFError:
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


def main(fs: Any, argv: list[str], stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Run one operation, `fs` being the safefs module; argv is the operation and its arguments:
    write PATH (chunks on stdin) | read PATH | remove PATH | scan MAX_ENTRIES MAX_DEPTH MAX_OUTPUT_BYTES."""
    op, args = argv[0], argv[1:]
    if op == "write":
        reply = _write(fs, args[0], stdin, stdout)
        if reply is None:
            return 0
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
        return 0
    else:
        raise ValueError(f"unknown operation {op!r}")
    stdout.write(status_line(reply))
    stdout.flush()
    return 0


def run(safefs_source: str, argv: list[str]) -> int:
    """Load safefs from its text as a module named safefs (its dataclasses look their module up by name), then
    run `main`."""
    fs = types.ModuleType("safefs")
    sys.modules["safefs"] = fs
    exec(compile(safefs_source, "safefs.py", "exec"), fs.__dict__)  # our own file, sent by the server
    return main(fs, argv, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
