"""Fakes passed in through the engines' constructors, for the fast unit tier (no Docker, no model).

`LocalKernelRuntime` is a real `Runtime`: each "container" is a local ipykernel process bound to the sandbox's
run dir, so the manager's lifecycle, pool, cap, reclaim and recovery logic run against real kernels. The
docker tier proves the same behaviours against real containers. `HashEmbedder` gives deterministic vectors.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.sandbox.errors import SandboxNotFound
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.runtime import ContainerState


@dataclass
class _Process:
    labels: dict[str, str]
    run_dir: Path
    process: subprocess.Popen[bytes]


class _Stops:
    def __init__(self) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()

    def __iter__(self) -> Iterator[str]:
        while (sandbox_id := self._queue.get()) is not None:
            yield sandbox_id

    def push(self, sandbox_id: str) -> None:
        self._queue.put(sandbox_id)

    def close(self) -> None:
        self._queue.put(None)


class LocalKernelRuntime:
    """Sandboxes as local kernel processes (no isolation at all: for testing the engine's logic only)."""

    def __init__(self, namespace: str = "unit") -> None:
        self.namespace = namespace
        self.processes: dict[str, _Process] = {}
        self.stops = _Stops()

    def _launch(self, run_dir: Path) -> subprocess.Popen[bytes]:
        # The connection file names the container's path; locally the sockets go where the host connects.
        info = json.loads((run_dir / "kernel.json").read_text())
        info["ip"] = str(run_dir / "kernel")
        local = run_dir / "local-kernel.json"
        local.write_text(json.dumps(info))
        return subprocess.Popen([sys.executable, "-m", "ipykernel_launcher", "-f", str(local),
                                 "--HistoryManager.enabled=False"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def create(self, sandbox_id: str, *, limits: Limits, run_dir: Path, data_dir: Path,
               labels: dict[str, str]) -> None:
        self.processes[sandbox_id] = _Process({**labels, "id": sandbox_id, "namespace": self.namespace}, run_dir,
                                              self._launch(run_dir))

    def _get(self, sandbox_id: str) -> _Process:
        if sandbox_id not in self.processes:
            raise SandboxNotFound(sandbox_id)
        return self.processes[sandbox_id]

    def state(self, sandbox_id: str) -> ContainerState:
        code = self._get(sandbox_id).process.poll()
        return ContainerState(code is None, None if code is None else (128 - code if code < 0 else code), False)

    def restart(self, sandbox_id: str) -> None:
        entry = self._get(sandbox_id)
        entry.process.kill()
        entry.process.wait()
        entry.process = self._launch(entry.run_dir)

    def remove(self, sandbox_id: str) -> None:
        entry = self.processes.pop(sandbox_id, None)
        if entry is not None:
            entry.process.kill()
            entry.process.wait()

    def kill(self, sandbox_id: str) -> None:
        """As `docker kill` from outside: the process dies, the engine's event stream says so."""
        self._get(sandbox_id).process.send_signal(signal.SIGKILL)
        self._get(sandbox_id).process.wait()
        self.stops.push(sandbox_id)

    def list_labels(self) -> list[dict[str, str]]:
        return [dict(entry.labels) for entry in self.processes.values()]

    def ping(self) -> bool:
        return True

    def stopped_containers(self) -> _Stops:
        return self.stops

    def close(self) -> None:
        for sandbox_id in list(self.processes):
            self.remove(sandbox_id)


_WORD = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic bag-of-words vectors: texts that share words are similar. 64 dimensions, normalised."""

    name = "hash-embedder"
    dimension = 64
    window = 256

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in _WORD.finditer(text)]

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)
