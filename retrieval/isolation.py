"""Parsing untrusted files in confined child processes: unprivileged, offline, under time and memory limits.

An uploaded file is hostile input: a zip bomb posing as a docx, or a PDF whose object graph makes the parser loop
or allocate without end, must cost one failed file, never the server's memory, an ingestion stuck forever, or a
foothold. A worker (`python -m retrieval.isolation`: a fresh interpreter that imports only the parsers, not the
server) confines itself before it reads any file (see `confine.py`): a network namespace of its own, no root,
RLIMIT_AS, and RLIMIT_CPU per file. It never opens a path: the server opens each file and hands the worker the
descriptor, so the worker needs no access to the data directory. A file that overruns the time is given up and
its worker killed; one that overruns the memory gets MemoryError (or kills its worker); either way the next file
gets a fresh worker. Workers are pooled, one per concurrent caller, so a slow file holds up only its own caller.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle, send_handle
from pathlib import Path
from typing import Any

from retrieval.errors import FileProblem
from retrieval.models import Page


@dataclass(frozen=True)
class ParseLimits:
    seconds: float = 120.0
    memory_bytes: int = 2 << 30
    # Whom a worker started as root runs as (a user name or a numeric uid).
    user: str = "nobody"


def _serve(conn: Connection, limits: ParseLimits) -> None:
    """The worker: parse each file whose descriptor it is sent, answering with pages or why not."""
    from retrieval.confine import confine, limit_cpu

    confine(limits.memory_bytes, limits.user)
    from retrieval.parsing import parse

    while True:
        try:
            filename = conn.recv()
            handle = recv_handle(conn)
        except (EOFError, OSError):
            return
        limit_cpu(limits.seconds)
        answer: tuple[Any, ...]
        try:
            with os.fdopen(handle, "rb") as source:
                answer = ("pages", parse(source, filename))
        except FileProblem as problem:
            answer = ("problem", problem.code, problem.message)
        except MemoryError:
            answer = ("memory",)
        except OSError as exc:
            answer = ("problem", "invalid_file", f"The file could not be read: {exc}")
        except Exception as exc:  # noqa: BLE001 - a parser library's bug on odd input is this file's failure
            answer = ("problem", "invalid_file", f"The file could not be parsed: {type(exc).__name__}: {exc}")
        conn.send(answer)


class _Worker:
    def __init__(self, limits: ParseLimits) -> None:
        ours, theirs = multiprocessing.Pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "retrieval.isolation", str(theirs.fileno()), str(limits.seconds),
             str(limits.memory_bytes), limits.user],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = ours

    def send(self, path: Path, filename: str) -> None:
        with open(path, "rb") as source:
            self.conn.send(filename)
            send_handle(self.conn, source.fileno(), self.process.pid)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.conn.close()


class IsolatedParser:
    """Parses files in confined workers; safe to share between threads (each caller gets a worker of its own)."""

    def __init__(self, limits: ParseLimits | None = None) -> None:
        self.limits = limits or ParseLimits()
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    def parse(self, path: Path, filename: str) -> list[Page]:
        """The file's pages; FileProblem if it cannot be read, or overruns the time or memory limit."""
        worker = self._take()
        try:
            answer = self._ask(worker, path, filename)
        except BaseException:
            worker.stop()
            raise
        self._give_back(worker)
        if answer[0] == "pages":
            pages: list[Page] = answer[1]
            return pages
        if answer[0] == "memory":
            raise FileProblem("invalid_file", f"Parsing the file needed more than "
                                              f"{self.limits.memory_bytes >> 20} MB of memory; it was given up.")
        if answer[0] == "time":
            raise FileProblem("invalid_file", f"Parsing the file took longer than {self.limits.seconds:g} "
                                              "seconds; it was given up.")
        raise FileProblem(answer[1], answer[2])

    def _ask(self, worker: _Worker, path: Path, filename: str) -> tuple[Any, ...]:
        """The worker's answer, or ("memory",) / ("time",) when it died or overran (it is then stopped)."""
        worker.send(path, filename)
        if not worker.conn.poll(self.limits.seconds):
            worker.stop()
            return ("time",)
        try:
            answer: tuple[Any, ...] = worker.conn.recv()
            return answer
        except EOFError:  # the worker died: its CPU limit, the kernel's OOM killer, or a crash in a C library
            worker.stop()
            return ("time",) if worker.process.returncode == -signal.SIGXCPU else ("memory",)

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.conn.close()  # killed from outside while idle
        return _Worker(self.limits)

    def _give_back(self, worker: _Worker) -> None:
        if worker.process.poll() is not None:
            worker.conn.close()
            return
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), ParseLimits(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
