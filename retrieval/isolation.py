"""Parsing untrusted files in a child process, under a time limit and a memory limit.

An uploaded file is hostile input: a zip bomb posing as a docx, or a PDF whose object graph makes the parser loop
or allocate without end, must cost one failed file, never the server's memory or an ingestion stuck forever.
One long-lived worker process (started on first use as `python -m retrieval.isolation`: a fresh interpreter that
shares nothing with the server's threads and imports only the parsers, not the server) parses file after file
under RLIMIT_AS; a file that overruns the time is given up and the worker killed, one that
overruns the memory gets MemoryError (or kills the worker); either way the next file gets a fresh worker.
"""

from __future__ import annotations

import multiprocessing
import resource
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from retrieval.errors import FileProblem
from retrieval.models import Page


@dataclass(frozen=True)
class ParseLimits:
    seconds: float = 120.0
    memory_bytes: int = 2 << 30


def _serve(conn: Connection, memory_bytes: int) -> None:
    """The worker: parse each (path, filename) it is sent, answering with pages or why not."""
    from retrieval.parsing import parse

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            path, filename = conn.recv()
        except EOFError:
            return
        answer: tuple[Any, ...]
        try:
            answer = ("pages", parse(Path(path), filename))
        except FileProblem as problem:
            answer = ("problem", problem.code, problem.message)
        except MemoryError:
            answer = ("memory",)
        except OSError as exc:
            answer = ("problem", "invalid_file", f"The file could not be read: {exc}")
        except Exception as exc:  # noqa: BLE001 - a parser library's bug on odd input is this file's failure
            answer = ("problem", "invalid_file", f"The file could not be parsed: {type(exc).__name__}: {exc}")
        conn.send(answer)


class IsolatedParser:
    """Parses files in the worker; safe to share between threads (files are parsed one at a time)."""

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.limits = limits or ParseLimits()
        self._lock = threading.Lock()
        self._worker: tuple[subprocess.Popen[bytes], Connection] | None = None

    def parse(self, path: Path, filename: str) -> list[Page]:
        """The file's pages; FileProblem if it cannot be read, or overruns the time or memory limit."""
        with self._lock:
            try:
                conn = (self._worker or self._start())[1]
                conn.send((str(path), filename))
            except OSError:  # the idle worker was killed from outside: start another
                self._stop()
                conn = self._start()[1]
                conn.send((str(path), filename))
            if not conn.poll(self.limits.seconds):
                self._stop()
                raise FileProblem("invalid_file", f"Parsing the file took longer than {self.limits.seconds:g} "
                                                  "seconds; it was given up.")
            try:
                answer = conn.recv()
            except EOFError:  # the worker died: the kernel killed it, or it crashed in a C library
                self._stop()
                answer = ("memory",)
        if answer[0] == "pages":
            pages: list[Page] = answer[1]
            return pages
        if answer[0] == "memory":
            raise FileProblem("invalid_file", f"Parsing the file needed more than "
                                              f"{self.limits.memory_bytes >> 20} MB of memory; it was given up.")
        raise FileProblem(answer[1], answer[2])

    def _start(self) -> tuple[subprocess.Popen[bytes], Connection]:
        ours, theirs = multiprocessing.Pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", "retrieval.isolation", str(theirs.fileno()), str(self.limits.memory_bytes)],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self._worker = (process, ours)
        return self._worker

    def _stop(self) -> None:
        if self._worker is not None:
            process, conn = self._worker
            self._worker = None
            process.kill()
            process.wait()
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._stop()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
