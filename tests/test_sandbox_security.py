"""What hostile code inside a sandbox can and cannot do. Each test fails if its protection is removed."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Server, logs, run

pytestmark = pytest.mark.docker


def probe(client: OpenAI, container: str, code: str) -> object:
    """Run code that prints one JSON value and return it."""
    execution = run(client, container, code)
    assert execution["status"] == "completed", execution
    return json.loads(logs(execution))


def test_no_network_only_loopback_and_no_route(client: OpenAI, container: str) -> None:
    interfaces, routes = probe(client, container, (
        "import os, json\n"
        "routes = open('/proc/net/route').read().splitlines()[1:] + "
        "[l for l in open('/proc/net/ipv6_route').read().splitlines() if not l.split()[-1] == 'lo']\n"
        "print(json.dumps([sorted(os.listdir('/sys/class/net')), routes]))"
    ))
    assert interfaces == ["lo"]
    assert routes == []


def test_runs_as_non_root_without_capabilities(client: OpenAI, container: str) -> None:
    status = probe(client, container, (
        "import os, json\n"
        "fields = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n"
        "print(json.dumps([os.getuid(), os.getgid(), fields['CapEff'].strip(), fields['CapBnd'].strip(), "
        "fields['NoNewPrivs'].strip()]))"
    ))
    assert status == [1000, 1000, "0000000000000000", "0000000000000000", "1"]


def test_root_filesystem_is_read_only_and_only_data_and_tmp_are_writable(client: OpenAI, container: str) -> None:
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


def test_data_quota_fills_inside_the_sandbox_not_on_the_host(client: OpenAI, container: str, server: Server) -> None:
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
    assert result[1] < 64
    assert logs(run(client, container, "import os; os.remove('/mnt/data/big.bin'); print('freed')")) == "freed\n"


def test_fork_bomb_is_stopped_by_the_pids_limit(client: OpenAI, container: str) -> None:
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


def test_kernel_ports_are_not_published_on_the_host(server: Server, container: str) -> None:
    import docker

    attrs = docker.from_env().containers.get(f"toolshed-{container}").attrs
    assert attrs["NetworkSettings"]["Ports"] in ({}, None)
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert attrs["HostConfig"]["Privileged"] is False
    assert attrs["HostConfig"]["PidsLimit"] == 256


def test_stdin_is_refused_instead_of_hanging(client: OpenAI, container: str) -> None:
    execution = run(client, container, "input('name? ')", timeout=20)
    assert execution["status"] == "failed"
    assert execution["error"]["name"] == "StdinNotImplementedError"
    assert execution["duration_ms"] < 5000


def test_huge_output_is_capped_and_the_server_stays_healthy(client: OpenAI, container: str,
                                                           server: Server) -> None:
    execution = run(client, container, "for _ in range(1_000_000):\n    print('x' * 99)")
    assert execution["status"] == "completed"
    text = logs(execution)
    assert len(text) < 1.1 * (1 << 20)
    assert "[output truncated:" in text
    assert httpx.get(f"{server.base_url}/health").json()["status"] == "ok"
    assert logs(run(client, container, "print('next')")) == "next\n"


def test_no_setuid_or_setgid_program_in_the_image(client: OpenAI, container: str) -> None:
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
