"""What hostile code inside a sandbox can and cannot do. Each test fails if its protection is removed, and runs
once with sandboxes under gVisor (runsc) and once under runc, each runtime with its own server (issue 31)."""

from __future__ import annotations

import time

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Evidence, Server, logs, run
from tests.remote_switch import engine_container
from tests.sandbox_runtimes import battery_fixtures, probe

pytestmark = pytest.mark.docker
# This module's battery runs once under each runtime, with a server of its own per runtime.
sandbox_runtime, server, client = battery_fixtures("security")


@pytest.mark.attack("network: interfaces and routes")
def test_no_network_only_loopback_and_no_route(client: OpenAI, container: str, evidence: Evidence) -> None:
    interfaces, routes = probe(client, container, (
        "import os, json\n"
        "routes = open('/proc/net/route').read().splitlines()[1:] + "
        "[l for l in open('/proc/net/ipv6_route').read().splitlines() if not l.split()[-1] == 'lo']\n"
        "print(json.dumps([sorted(os.listdir('/sys/class/net')), routes]))"
    ))
    assert interfaces == ["lo"]
    assert routes == []
    evidence(f"interfaces {interfaces}, routes {len(routes)}")


@pytest.mark.attack("identity: root, capabilities, new privileges")
def test_runs_as_non_root_without_capabilities(client: OpenAI, container: str, evidence: Evidence) -> None:
    status = probe(client, container, (
        "import os, json, ctypes\n"
        "fields = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "no_new_privs = ctypes.CDLL(None).prctl(39, 0, 0, 0, 0)  # PR_GET_NO_NEW_PRIVS (gVisor's status lacks it)\n"
        "print(json.dumps([os.getuid(), os.getgid(), fields['CapEff'].strip(), fields['CapBnd'].strip(), "
        "str(no_new_privs)]))"
    ))
    assert status == [1000, 1000, "0000000000000000", "0000000000000000", "1"]
    evidence(f"uid/gid {status[0]}/{status[1]}, CapEff {status[2]}, CapBnd {status[3]}, NoNewPrivs {status[4]}")


@pytest.mark.attack("filesystem: writing outside /mnt/data and /tmp")
def test_root_filesystem_is_read_only_and_only_data_and_tmp_are_writable(client: OpenAI, container: str,
                                                                         evidence: Evidence) -> None:
    result = probe(client, container, (
        "import json, errno\n"
        "root = [l.split()[3].split(',')[0] for l in open('/proc/mounts') if l.split()[1] == '/'][0]\n"
        "def attempt(path):\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        return 'ok'\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "print(json.dumps([root, attempt('/usr/local/lib/python3.11/dist-packages/evil.py'), attempt('/etc/evil'),"
        " attempt('/mnt/data/ok.txt'), attempt('/tmp/ok.txt')]))"
    ))
    assert result[0] == "ro"
    assert result[1] in ("EROFS", "EACCES") and result[2] in ("EROFS", "EACCES")
    assert result[3:] == ["ok", "ok"]
    evidence(f"/ mounted {result[0]}; site-packages {result[1]}, /etc {result[2]}")


@pytest.mark.attack("resources: disk fill")
def test_data_quota_fills_inside_the_sandbox_not_on_the_host(client: OpenAI, container: str, server: Server,
                                                             evidence: Evidence) -> None:
    # The test server runs with TOOLSHED_SANDBOX_DISK_QUOTA=64m.
    result = probe(client, container, (
        "import json, errno\n"
        "written = 0\n"
        "try:\n"
        "    with open('/mnt/data/big.bin', 'wb') as f:\n"
        "        for _ in range(200):\n"
        "            f.write(b'\\0' * (1 << 20)); written += 1\n"
        "        f.flush()\n"
        "    outcome = 'no error'\n"
        "except OSError as e:\n"
        "    outcome = errno.errorcode[e.errno]\n"
        "print(json.dumps([outcome, written]))"
    ))
    assert result[0] == "ENOSPC"
    assert result[1] <= 64  # a loop disk's ext4 keeps some of the 64 MiB; a remote host's tmpfs volume none
    assert logs(run(client, container, "import os; os.remove('/mnt/data/big.bin'); print('freed')")) == "freed\n"
    evidence(f"{result[0]} after {result[1]} MiB (quota 64 MiB); space freed")


@pytest.mark.attack("resources: fork bomb")
def test_fork_bomb_is_stopped_by_the_pids_limit(client: OpenAI, container: str, evidence: Evidence) -> None:
    result = probe(client, container, (
        "import subprocess, json\n"
        "procs, error = [], None\n"
        "try:\n"
        "    for _ in range(2000):\n"
        "        procs.append(subprocess.Popen(['sleep', '60']))\n"
        "except OSError as e:\n"
        "    error = type(e).__name__\n"
        "for p in procs:\n"
        "    p.kill(); p.wait()\n"
        "print(json.dumps([len(procs), error]))"
    ))
    assert result[1] is not None
    assert result[0] < 256
    assert logs(run(client, container, "print('kernel survived')")) == "kernel survived\n"
    evidence(f"{result[1]} after {result[0]} processes (pids limit 256); kernel alive")


@pytest.mark.attack("network: kernel ports on the host")
def test_kernel_ports_are_not_published_on_the_host(server: Server, container: str, sandbox_runtime: str,
                                                    evidence: Evidence) -> None:
    import docker

    attrs = docker.from_env().containers.get(f"toolshed-{container}").attrs
    assert attrs["NetworkSettings"]["Ports"] in ({}, None)
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert attrs["HostConfig"]["Privileged"] is False
    assert attrs["HostConfig"]["Runtime"] == sandbox_runtime
    nproc = [u["Soft"] for u in attrs["HostConfig"]["Ulimits"] or [] if u["Name"] == "nproc"]
    # Under gVisor the limit on the sandbox's processes is its RLIMIT_NPROC (counted inside gVisor); the host's
    # pids limit, above it, bounds gVisor's own tasks.
    assert (nproc, attrs["HostConfig"]["PidsLimit"]) == (([256], 256 * 8 + 128) if sandbox_runtime == "runsc"
                                                         else ([], 256))
    evidence(f"no published ports, network mode none, not privileged, runtime {sandbox_runtime}")


def test_stdin_is_refused_instead_of_hanging(client: OpenAI, container: str) -> None:
    execution = run(client, container, "input('name? ')", timeout=20)
    assert execution["status"] == "failed"
    assert execution["error"]["name"] == "StdinNotImplementedError"
    assert execution["duration_ms"] < 5000


@pytest.mark.attack("resources: 100 MB of output")
def test_huge_output_is_capped_and_the_server_stays_healthy(client: OpenAI, container: str,
                                                           server: Server, evidence: Evidence) -> None:
    execution = run(client, container, "for _ in range(1_000_000):\n    print('x' * 99)")
    assert execution["status"] == "completed"
    text = logs(execution)
    assert len(text) < 1.1 * (1 << 20)
    assert "[output truncated:" in text
    assert httpx.get(f"{server.base_url}/health").json()["status"] == "ok"
    assert logs(run(client, container, "print('next')")) == "next\n"
    evidence(f"{len(text)} characters kept, the rest counted; server healthy")


@pytest.mark.attack("identity: setuid and setgid programs")
def test_no_setuid_or_setgid_program_in_the_image(client: OpenAI, container: str, evidence: Evidence) -> None:
    found = probe(client, container, (
        "import os, stat, json\n"
        "hits = []\n"
        "for top in ('/usr', '/bin', '/sbin', '/lib', '/opt', '/etc'):\n"
        "    for root, dirs, files in os.walk(top):\n"
        "        for name in files:\n"
        "            try:\n"
        "                mode = os.lstat(os.path.join(root, name)).st_mode\n"
        "            except OSError:\n"
        "                continue\n"
        "            if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):\n"
        "                hits.append(os.path.join(root, name))\n"
        "print(json.dumps(hits))"
    ))
    assert found == []
    evidence(f"{len(found)} setuid/setgid files in the image")


@pytest.mark.attack("network: raw and packet sockets")
def test_raw_and_packet_sockets_are_refused(client: OpenAI, container: str, evidence: Evidence) -> None:
    refused = probe(client, container, (
        "import socket, errno, json\n"
        "def attempt(*args):\n"
        "    try:\n"
        "        socket.socket(*args).close()\n"
        "        return 'opened'\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "print(json.dumps([attempt(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),\n"
        "                  attempt(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),\n"
        "                  attempt(socket.AF_PACKET, socket.SOCK_RAW)]))"
    ))
    assert refused == ["EPERM", "EPERM", "EPERM"]
    evidence(f"raw IPv4, raw IPv6, packet: {', '.join(refused)}")


@pytest.mark.attack("filesystem: Docker socket, device nodes, /proc and /sys")
def test_no_engine_socket_no_host_devices_and_proc_leaks_nothing(client: OpenAI, container: str, server: Server,
                                                                 sandbox_runtime: str, evidence: Evidence) -> None:
    seen = probe(client, container, (
        "import os, stat, json, errno\n"
        "devices = []\n"
        "for root, dirs, files in os.walk('/dev'):\n"
        "    for name in dirs + files:\n"
        "        mode = os.lstat(os.path.join(root, name)).st_mode\n"
        "        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):\n"
        "            devices.append(os.path.join(root, name) + (' (block)' if stat.S_ISBLK(mode) else ''))\n"
        "def size(path):\n"
        "    try:\n"
        "        with open(path, 'rb') as f:\n"
        "            return len(f.read(1 << 16))\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "secrets = ['/proc/kcore', '/proc/sched_debug', '/proc/sysrq-trigger', '/sys/firmware/dmi/tables/DMI',\n"
        "           '/proc/keys', '/proc/timer_list']\n"
        "processes = [open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0')[0].decode()\n"
        "             for p in os.listdir('/proc') if p.isdigit()]\n"
        "print(json.dumps({'devices': sorted(devices), 'sockets': [p for p in ('/var/run/docker.sock',\n"
        "    '/run/docker.sock', '/run/containerd/containerd.sock') if os.path.exists(p)],\n"
        "    'secrets': {p: size(p) for p in secrets},\n"
        "    'symbol': open('/proc/kallsyms').readline().split()[0] if os.path.exists('/proc/kallsyms') else None,\n"
        "    'processes': processes, 'environ': open('/proc/1/environ').read()}))"
    ))
    assert isinstance(seen, dict)
    # gVisor's kernel serves /dev/fuse and /dev/net/tun itself (no host device behind them; mounting FUSE or making
    # a tun interface needs capabilities the sandbox does not have).
    emulated = {"/dev/fuse", "/dev/net/tun"} if sandbox_runtime == "runsc" else set()
    assert set(seen["devices"]) <= {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
                                    "/dev/pts/ptmx", "/dev/ptmx", "/dev/console", *emulated}, seen["devices"]
    assert seen["sockets"] == []
    assert all(result in ("ENOENT", "EACCES", "EPERM", 0) for result in seen["secrets"].values()), seen["secrets"]
    assert seen["symbol"] is None or set(seen["symbol"]) == {"0"}  # kernel addresses hidden (gVisor: no file)
    assert all(name in ("/sbin/docker-init", "python3", "toolshed-kernel") or name.startswith("/usr/")
               for name in seen["processes"]), seen["processes"]
    assert "TOOLSHED_" not in seen["environ"] and str(server.data_dir) not in seen["environ"]
    evidence(f"devices: {len(seen['devices'])} standard character devices, no block device; no engine socket; "
             f"kcore, sched_debug, firmware absent, keys and timer_list empty; {len(seen['processes'])} processes")


@pytest.mark.attack("resources: a CPU hog beside other sandboxes")
def test_a_cpu_hog_is_held_to_its_share_and_neighbours_keep_their_latency(client: OpenAI, container: str,
                                                                          server: Server, evidence: Evidence) -> None:
    hog = client.containers.create(name="hog").id
    try:
        run(client, hog, "import subprocess\nprocs = [subprocess.Popen(['python3', '-c', 'while True: pass']) "
                         "for _ in range(4)]")
        engine = engine_container(hog)

        def cpu_ns() -> int:
            return int(engine.stats(stream=False)["cpu_stats"]["cpu_usage"]["total_usage"])

        started, first = time.monotonic(), cpu_ns()
        latencies = []
        while time.monotonic() - started < 4:
            began = time.monotonic()
            assert logs(run(client, container, "print('ok')")) == "ok\n"
            latencies.append(time.monotonic() - began)
        share = (cpu_ns() - first) / 1e9 / (time.monotonic() - started)
        health = time.monotonic()
        assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
        health = time.monotonic() - health
    finally:
        client.containers.delete(hog)
    # Four spinning processes get one CPU (TOOLSHED_SANDBOX_CPUS=1) of this machine's cores.
    assert share < 1.2, share
    assert max(latencies) < 2 and health < 2
    latencies.sort()
    evidence(f"4 spinning processes held to {share:.2f} CPUs; neighbour cells p50 "
             f"{latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
