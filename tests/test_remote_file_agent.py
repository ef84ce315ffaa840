"""The file agent's life (issue 33): one long-lived agent per sandbox in its keeper, replaced when it dies, when a
read is cut short or kept too long, and safe under concurrent operations; on a second dockerd over mutual TLS."""

# ruff: noqa: F811 - the fixtures imported below are redefined as parameters: pytest's fixture injection
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from orchestrator.sandbox import remote_files
from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.remote_files import RemoteFiles
from orchestrator.sandbox.safefs import Scan
from tests.test_remote_docker import engine  # noqa: F401 - the module fixture: one second dockerd per module
from tests.test_remote_files import MiB, api, files, inside, keeper_of, sandbox  # noqa: F401 - fixtures, helpers

pytestmark = pytest.mark.docker


def agents(api: docker.APIClient, sandbox_id: str) -> int:
    return sum("python3 -I -S" in row[-1] for row in api.top(keeper_of(sandbox_id))["Processes"])


def until(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_one_agent_serves_a_sandbox_until_a_read_is_cut_short_or_it_is_forgotten(
        api: docker.APIClient, sandbox: str, files: RemoteFiles) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    files.write(sandbox, "big", [bytes(5 * MiB)])
    assert agents(api, sandbox) == 1  # and the engine's pooled connection is open, for open_fds
    before = open_fds()
    for i in range(20):
        assert files.write(sandbox, f"f{i}", [b"x"]) == files.read(sandbox, f"f{i}")[0]
        assert f"f{i}" in (files.scan(sandbox, max_entries=100, max_depth=8) or Scan({}, False)).files
        assert files.remove(sandbox, f"f{i}") is True
    _, chunks = files.read(sandbox, "big")
    assert len(b"".join(chunks)) == 5 * MiB
    assert (agents(api, sandbox), open_fds()) == (1, before)
    _, chunks = files.read(sandbox, "big")
    assert len(next(chunks)) > 0
    chunks.close()  # the agent is mid-file: it is closed, not drained
    files.read(sandbox, "big")[1].close()  # never iterated: the same
    assert open_fds() == before - 1
    until(lambda: agents(api, sandbox) == 0, "an agent kept running after its reader went away")
    assert files.remove(sandbox, "missing") is False
    assert (agents(api, sandbox), open_fds()) == (1, before)
    files.forget(sandbox)
    assert open_fds() == before - 1
    until(lambda: agents(api, sandbox) == 0, "an agent kept running after its sandbox was forgotten")


_KILL_AGENTS = ("import os, signal\nfor pid in filter(str.isdigit, os.listdir('/proc')):\n"
                "    if open(f'/proc/{pid}/cmdline', 'rb').read().startswith(b'python3\\0-I\\0-S\\0'):\n"
                "        os.kill(int(pid), signal.SIGKILL)")


def test_an_agent_killed_inside_the_keeper_is_replaced(api: docker.APIClient, sandbox: str,
                                                       files: RemoteFiles) -> None:
    stat = files.write(sandbox, "x", [b"x"])

    def read() -> bool:  # read to its end: a read left unfinished ends its agent
        got, chunks = files.read(sandbox, "x")
        return got == stat and b"".join(chunks) == b"x"

    operations = [read, lambda: files.write(sandbox, "y", [b"y"]).size == 1,
                  lambda: files.remove(sandbox, "y"), lambda: "x" in (files.scan(sandbox, max_entries=9,
                                                                                 max_depth=2) or Scan({}, 0)).files]
    for operation in operations:
        inside(api, sandbox, _KILL_AGENTS)  # as the sandbox uid, as code in the sandbox could
        assert agents(api, sandbox) == 0
        assert operation()
        assert agents(api, sandbox) == 1


def test_an_abandoned_read_holds_its_sandbox_for_a_bounded_time(sandbox: str, files: RemoteFiles,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_files, "LENT_LIMIT", 2.0)
    files.write(sandbox, "big", [bytes(5 * MiB)])
    _, dropped = files.read(sandbox, "big")
    assert len(next(dropped)) > 0
    del dropped  # never closed, but gone: its agent is let go at once
    start = time.monotonic()
    assert files.write(sandbox, "x", [b"x"]).size == 1 and time.monotonic() - start < 1.5
    _, kept = files.read(sandbox, "big")
    assert len(next(kept)) > 0  # then kept, neither read to its end nor closed
    start = time.monotonic()
    assert files.scan(sandbox, max_entries=9, max_depth=2) is not None
    assert 2 <= time.monotonic() - start < 10
    with pytest.raises(EngineUnavailable):
        list(kept)
    assert b"".join(files.read(sandbox, "x")[1]) == b"x"


def test_operations_from_8_threads_on_one_sandbox(api: docker.APIClient, sandbox: str, files: RemoteFiles) -> None:
    def work(n: int) -> int:
        for i in range(10):
            data = os.urandom(1000 + 5000 * n * i)
            stat = files.write(sandbox, f"t{n}/{i}", iter([data]))
            got, chunks = files.read(sandbox, f"t{n}/{i}")
            assert (got, b"".join(chunks)) == (stat, data)
            assert f"t{n}/{i}" in (files.scan(sandbox, max_entries=1000, max_depth=4) or Scan({}, False)).files
            assert files.remove(sandbox, f"t{n}/{i}") is True
        return n

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))
    assert agents(api, sandbox) == 1


def test_time_small_reads_writes_and_scans_over_tls(sandbox: str, files: RemoteFiles,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Numbers for the report, not a speed assertion."""
    operations = {"write": lambda: files.write(sandbox, "small.txt", [b"y" * 1000]),
                  "read": lambda: b"".join(files.read(sandbox, "small.txt")[1]),
                  "scan": lambda: files.scan(sandbox, max_entries=1000, max_depth=8)}
    times: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(30):
        for name, operation in operations.items():
            start = time.perf_counter()
            operation()
            times[name].append((time.perf_counter() - start) * 1000)
    with capsys.disabled():
        print("\nremote files over TLS, median of 30: " +
              ", ".join(f"{name} {statistics.median(ms):.1f} ms" for name, ms in times.items()))
