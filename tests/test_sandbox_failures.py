"""Timeouts, kernel death, OOM and outside kills: each is reported clearly and the sandbox recovers."""

from __future__ import annotations

import threading
import time

import docker
import pytest
from openai import OpenAI

from tests.conftest import Evidence, logs, run

pytestmark = pytest.mark.docker


def test_timeout_returns_partial_output_in_time_and_the_next_call_works(client: OpenAI, container: str) -> None:
    run(client, container, "state = 'kept'")
    started = time.monotonic()
    execution = run(client, container, "import time\nprint('partial', flush=True)\ntime.sleep(60)", timeout=2)
    elapsed = time.monotonic() - started
    assert execution["status"] == "timed_out"
    assert execution["error"]["name"] == "TimeoutError"
    assert logs(execution).startswith("partial\n")
    assert elapsed < 2 + 2
    # An interruptible cell keeps the kernel and its state.
    assert logs(run(client, container, "print(state)")) == "kept\n"


def test_uninterruptible_timeout_restarts_the_kernel_and_says_state_was_lost(client: OpenAI, container: str) -> None:
    code = ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('spinning', flush=True)\n"
            "while True: pass")
    started = time.monotonic()
    execution = run(client, container, code, timeout=2)
    assert time.monotonic() - started < 2 + 2
    assert execution["status"] == "timed_out"
    assert "restarted" in execution["error"]["value"] and "lost" in execution["error"]["value"]
    assert logs(execution).startswith("spinning\n")
    assert logs(run(client, container, "print('back')")) == "back\n"


def test_os_exit_is_reported_and_the_sandbox_recovers(client: OpenAI, container: str) -> None:
    execution = run(client, container, "import os\nos._exit(3)")
    assert execution["status"] == "failed"
    assert execution["error"]["name"] == "KernelDied"
    assert "exit code 3" in execution["error"]["value"] and "lost" in execution["error"]["value"]
    follow = run(client, container, "print('recovered')")
    assert (follow["status"], logs(follow)) == ("completed", "recovered\n")


@pytest.mark.attack("resources: memory bomb (3 GiB)")
def test_out_of_memory_is_named_as_such_and_the_sandbox_recovers(client: OpenAI, container: str,
                                                                 evidence: Evidence) -> None:
    run(client, container, "open('/mnt/data/keep.txt', 'w').write('safe')")
    execution = run(client, container, "hog = 'x' * (3 * 1024 ** 3)", timeout=60)
    assert execution["status"] == "failed"
    assert execution["error"]["name"] == "OutOfMemoryError"
    assert "1g" in execution["error"]["value"]
    assert logs(run(client, container, "print(open('/mnt/data/keep.txt').read())")) == "safe\n"
    evidence(f"{execution['error']['name']}: {execution['error']['value'][:60]}; files kept")


def test_container_killed_mid_cell_is_reported_then_recovered(client: OpenAI, container: str) -> None:
    run(client, container, "value = 1")
    killer = threading.Timer(1.0, lambda: docker.from_env().containers.get(f"toolshed-{container}").kill())
    killer.start()
    execution = run(client, container, "import time; time.sleep(30)")
    killer.join()
    assert execution["status"] == "failed"
    assert execution["error"]["name"] == "KernelDied"
    assert "SIGKILL" in execution["error"]["value"]
    follow = run(client, container, "print('value' in dir())")
    assert (follow["status"], logs(follow)) == ("completed", "False\n")


def wait_until_reclaimed(client: OpenAI, container: str) -> None:
    deadline = time.monotonic() + 15
    while client.containers.retrieve(container).status != "expired":
        assert time.monotonic() < deadline, "the stopped container was not noticed"
        time.sleep(0.1)


@pytest.mark.parametrize("how", ["kill", "remove"])
def test_container_stopped_from_outside_while_idle_is_noticed_and_the_next_cell_runs(
        client: OpenAI, container: str, how: str) -> None:
    run(client, container, "value = 1; open('/mnt/data/keep.txt', 'w').write('kept')")
    victim = docker.from_env().containers.get(f"toolshed-{container}")
    victim.kill() if how == "kill" else victim.remove(force=True)
    wait_until_reclaimed(client, container)  # from the engine's event, before any request
    execution = run(client, container, "print(open('/mnt/data/keep.txt').read()); print(value)")
    assert execution["status"] == "failed" and execution["error"]["name"] == "NameError"
    assert "container stopped while idle" in logs(execution) and "kept\n" in logs(execution)
    assert logs(run(client, container, "print('hello')")) == "hello\n"
