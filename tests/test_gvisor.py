"""Sandboxes under gVisor (issue 31): what a user-space kernel changes for model code, the server saying which
runtime its sandboxes use, and `auto` falling back to runc where gVisor cannot start."""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import Evidence, Server, logs, run, running_server, sdk_client
from tests.sandbox_runtimes import probe, runtime_server

pytestmark = pytest.mark.docker

# A name no Docker engine has registered: gVisor "cannot start" under it.
MISSING = "toolshed-no-such-runtime"


@pytest.fixture(scope="module")
def gvisor_server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with runtime_server("runsc", tmp_path_factory.mktemp("gvisor"), TOOLSHED_POOL_SIZE="1") as srv:
        yield srv


@pytest.fixture(scope="module")
def gvisor_client(gvisor_server: Server) -> OpenAI:
    return sdk_client(gvisor_server)


@pytest.fixture
def sandbox(gvisor_client: OpenAI) -> Iterator[str]:
    """A container whose sandbox runs under gVisor (checked, so no test here passes under runc)."""
    created = gvisor_client.containers.create(name="gvisor")
    assert docker.from_env().containers.get(f"toolshed-{created.id}").attrs["HostConfig"]["Runtime"] == "runsc"
    yield created.id
    gvisor_client.containers.delete(created.id)


def test_health_and_metrics_say_the_sandboxes_run_under_gvisor(gvisor_server: Server, sandbox: str) -> None:
    engine = httpx.get(f"{gvisor_server.base_url}/health").json()["engine"]
    assert (engine["runtime"], engine["runtime_problem"]) == ("runsc", None)
    metrics = httpx.get(f"{gvisor_server.base_url}/metrics").text
    assert 'toolshed_sandbox_runtime{fallback="0",runtime="runsc",wanted="runsc"} 1.0' in metrics


@pytest.mark.attack("kernel: the host kernel's version")
def test_a_cell_sees_gvisors_kernel_not_the_hosts(gvisor_client: OpenAI, sandbox: str, evidence: Evidence) -> None:
    release, version = probe(gvisor_client, sandbox, (
        "import os, json\nprint(json.dumps([os.uname().release, open('/proc/version').read()]))"))
    host = os.uname().release
    assert release != host and host not in version
    assert release == "4.4.0"  # what gVisor reports, whatever the host runs
    evidence(f"uname -r in the sandbox: {release}; the host's ({host}) appears nowhere")


@pytest.mark.attack("kernel: the host's /proc")
def test_the_hosts_proc_is_not_reachable(gvisor_client: OpenAI, sandbox: str, gvisor_server: Server,
                                        evidence: Evidence) -> None:
    seen = probe(gvisor_client, sandbox, (
        "import os, json\n"
        "def read(path):\n"
        "    try:\n"
        "        return open(path, 'rb').read().decode(errors='replace')\n"
        "    except OSError as e:\n"
        "        return type(e).__name__\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "print(json.dumps({'commands': [read(f'/proc/{p}/cmdline').split(chr(0))[0] for p in pids],\n"
        "                  'host_pid': read(f'/proc/{" + str(os.getpid()) + "}/cmdline'),\n"
        "                  'mounts': read('/proc/self/mountinfo')}))"))
    assert isinstance(seen, dict)
    assert all(name in ("/sbin/docker-init", "python3", "toolshed-kernel") or name.startswith("/usr/")
               for name in seen["commands"]), seen["commands"]
    assert seen["host_pid"] == "FileNotFoundError"  # this test's own process, as the host numbers it
    assert str(gvisor_server.data_dir) not in seen["mounts"] and "/run/toolshed/" not in seen["mounts"]
    evidence(f"{len(seen['commands'])} processes visible, all the sandbox's own; no host path in the mount table")


@pytest.mark.attack("kernel: raw sockets and ptrace of other processes")
def test_raw_sockets_and_ptrace_of_another_process_fail(gvisor_client: OpenAI, sandbox: str,
                                                        evidence: Evidence) -> None:
    seen = probe(gvisor_client, sandbox, (
        "import ctypes, errno, json, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def attach(pid):\n"
        "    return 'attached' if libc.ptrace(16, pid, None, None) == 0 else errno.errorcode[ctypes.get_errno()]\n"
        "def raw(*args):\n"
        "    try:\n"
        "        socket.socket(*args).close()\n"
        "        return 'opened'\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "print(json.dumps({'init': attach(1), 'outside': attach(99999),\n"
        "                  'raw': raw(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),\n"
        "                  'packet': raw(socket.AF_PACKET, socket.SOCK_RAW)}))"))
    # Under runc the same uid may attach to the container's init; gVisor refuses it.
    assert seen == {"init": "EPERM", "outside": "ESRCH", "raw": "EPERM", "packet": "EPERM"}
    evidence("ptrace(ATTACH) of init: EPERM, of a pid outside: ESRCH; raw and packet sockets: EPERM")


@pytest.mark.attack("resources: fork bomb under gVisor")
def test_a_fork_bomb_under_gvisor_gets_eagain_and_the_kernel_survives(gvisor_client: OpenAI, sandbox: str,
                                                                      evidence: Evidence) -> None:
    count, error = probe(gvisor_client, sandbox, (
        "import json, subprocess\n"
        "procs, error = [], None\n"
        "try:\n"
        "    for _ in range(2000):\n"
        "        procs.append(subprocess.Popen(['sleep', '60']))\n"
        "except OSError as e:\n"
        "    error = type(e).__name__\n"
        "for p in procs:\n"
        "    p.kill(); p.wait()\n"
        "print(json.dumps([len(procs), error]))"))
    assert error == "BlockingIOError" and 0 < count < 256
    assert logs(run(gvisor_client, sandbox, "print('kernel survived')")) == "kernel survived\n"
    evidence(f"EAGAIN after {count} processes (RLIMIT_NPROC 256 inside gVisor); kernel alive")


@pytest.mark.attack("resources: memory bomb under gVisor")
def test_a_memory_bomb_under_gvisor_stays_within_the_limit(gvisor_client: OpenAI, sandbox: str,
                                                           evidence: Evidence) -> None:
    run(gvisor_client, sandbox, "open('/mnt/data/keep.txt', 'w').write('safe')")
    execution = run(gvisor_client, sandbox, "hog = 'x' * (3 * 1024 ** 3)", timeout=60)
    assert (execution["status"], execution["error"]["name"]) == ("failed", "OutOfMemoryError")
    stats = docker.from_env().containers.get(f"toolshed-{sandbox}").stats(stream=False)["memory_stats"]
    assert stats["max_usage"] <= stats["limit"] == 1 << 30
    assert logs(run(gvisor_client, sandbox, "print(open('/mnt/data/keep.txt').read())")) == "safe\n"
    evidence(f"OutOfMemoryError; peak {stats['max_usage'] >> 20} MiB of a {stats['limit'] >> 20} MiB limit; "
             "files kept")


def test_files_cross_gvisors_boundary_both_ways(gvisor_client: OpenAI, sandbox: str) -> None:
    """The host writes /mnt/data through the disk's mount; gVisor's gofer must not serve a stale copy."""
    gvisor_client.containers.files.create(sandbox, file=("note.txt", b"one"))
    assert logs(run(gvisor_client, sandbox, "print(open('/mnt/data/note.txt').read())")) == "one\n"
    gvisor_client.containers.files.create(sandbox, file=("note.txt", b"two, longer"))
    assert logs(run(gvisor_client, sandbox, "print(open('/mnt/data/note.txt').read())")) == "two, longer\n"
    made = run(gvisor_client, sandbox, "open('/mnt/data/out.txt', 'w').write('from gvisor')")
    [exported] = made["files"]
    assert exported["path"] == "/mnt/data/out.txt"
    content = gvisor_client.containers.files.content.retrieve(exported["container_file_id"], container_id=sandbox)
    assert content.read() == b"from gvisor"


def test_auto_falls_back_to_runc_when_gvisor_cannot_start(docker_ready: None,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_server(tmp_path_factory.mktemp("fallback"), TOOLSHED_SANDBOX_RUNTIME="auto",
                        TOOLSHED_SANDBOX_GVISOR_RUNTIME=MISSING, TOOLSHED_POOL_SIZE="0") as srv:
        health = httpx.get(f"{srv.base_url}/health").json()
        client = sdk_client(srv)
        container = client.containers.create(name="fallback").id
        execution = run(client, container, "import os; print(os.uname().release)")
        attrs = docker.from_env().containers.get(f"toolshed-{container}").attrs
        metrics = httpx.get(f"{srv.base_url}/metrics").text
    assert health["status"] == "ok"
    assert health["engine"]["runtime"] == "runc" and MISSING in health["engine"]["runtime_problem"]
    assert 'toolshed_sandbox_runtime{fallback="1",runtime="runc",wanted="auto"} 1.0' in metrics
    assert attrs["HostConfig"]["Runtime"] == "runc"
    assert logs(execution) == f"{os.uname().release}\n"
    assert "sandboxes run under runc, NOT gVisor" in srv.log.read_text()


def test_an_explicit_runsc_that_cannot_start_runs_no_sandbox(docker_ready: None,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_server(tmp_path_factory.mktemp("strict"), TOOLSHED_SANDBOX_RUNTIME="runsc",
                        TOOLSHED_SANDBOX_GVISOR_RUNTIME=MISSING, TOOLSHED_POOL_SIZE="0") as srv:
        health = httpx.get(f"{srv.base_url}/health").json()
        with pytest.raises(openai.InternalServerError) as refused:
            sdk_client(srv).containers.create(name="strict")
    assert health["status"] == "degraded" and MISSING in health["engine"]["problem"]
    assert refused.value.status_code == 503 and "TOOLSHED_SANDBOX_RUNTIME=runsc" in str(refused.value)

