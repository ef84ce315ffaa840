# ruff: noqa: F811 - the engine fixture imported below is redefined as parameters: pytest's fixture injection
"""An ssh:// sandbox host (issue 33), end to end: a Toolshed server with the hosts "local" and
ssh://root@127.0.0.1:PORT/<socket>, an OpenSSH sshd of the test's own (tests/ssh_server.py) in front of a second,
separate dockerd (tests/second_dockerd.py). The server reaches that engine only through an `ssh -N -L` forward of
its socket (orchestrator/sandbox/ssh_forward.py): cells, uploads and downloads, a kernel's death, a generated file;
a forward killed while idle is started again and the kernel kept; sshd killed mid-cell loses the sandbox with a
clear error within seconds while the local host's sandbox keeps its state, and sshd's return brings the host back.

The local host holds a bystander sandbox, whose state must outlive the ssh host's loss, and takes the lost
sandbox's next call."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator

import docker
import docker.errors
import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.notices import HOST_LOST
from orchestrator.sandbox.remote_host import engine_runtimes
from orchestrator.sandbox.ssh_forward import DEFAULT_REMOTE_SOCKET, SshTarget, parse_endpoint
from tests.conftest import logs, run, running_server, sdk_client, skip_unless_required
from tests.second_dockerd import SecondDockerd
from tests.ssh_server import SshServer, sshd_problem
from tests.test_sandbox_hosts import engine  # noqa: F401 - the module fixture: one second dockerd per module

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def sshd(engine: SecondDockerd) -> Iterator[SshServer]:
    skip_unless_required(sshd_problem())
    server = SshServer(engine.socket).start()
    try:
        yield server
    finally:
        server.stop()
    assert server.leftovers() == []


@pytest.fixture(scope="module")
def endpoint(sshd: SshServer, engine: SecondDockerd) -> str:
    """The host's URL: the second engine's socket named as the remote one."""
    return f"ssh://{sshd.destination}{engine.socket}"


@pytest.fixture(scope="module")
def ssh_server(sshd: SshServer, endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("ssh"), TOOLSHED_SANDBOX_HOSTS=f"local,{endpoint}",
                        TOOLSHED_POOL_SIZE="0",
                        TOOLSHED_SANDBOX_RUNTIME="runc", TOOLSHED_SANDBOX_HOST_CHECK_INTERVAL="0.5",
                        **sshd.client_env()) as srv:
        yield srv
    # Stopped gracefully, the server took its forward with it.
    assert sshd.clients() == []


@pytest.fixture(scope="module")
def client(ssh_server: Server) -> OpenAI:
    return sdk_client(ssh_server)


@pytest.fixture(scope="module")
def bystander(client: OpenAI, engine: SecondDockerd) -> str:
    """A sandbox on the local host, made first and kept: both engines report this machine's memory, so from then
    on each test's one sandbox goes to the ssh host, which has the most memory left."""
    made = client.containers.create(name="bystander").id
    assert where(engine, made) == "local"
    run(client, made, "kept = 'still here'")
    return made


def where(engine: SecondDockerd, sandbox_id: str) -> str:
    """"ssh" or "local": the engine that runs the sandbox's container."""
    try:
        engine.client().containers.get(f"toolshed-{sandbox_id}")
        return "ssh"
    except docker.errors.NotFound:
        docker.from_env().containers.get(f"toolshed-{sandbox_id}")
        return "local"


def forwards(sshd: SshServer, count: int = 1, timeout: float = 10.0) -> list[int]:
    """The server's ssh clients, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while len(found := sshd.clients()) != count:
        assert time.monotonic() < deadline, f"ssh clients: {found}, expected {count}"
        time.sleep(0.1)
    return found


def run_when_up(client: OpenAI, container: str, code: str, timeout: float = 20.0) -> dict:
    """run(), retried while the server answers 503 (its host's engine not answering yet, as after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return run(client, container, code)
        except openai.APIStatusError as exc:
            assert exc.status_code == 503 and time.monotonic() < deadline, exc
            time.sleep(0.2)


def test_cells_files_and_a_kernel_death_on_an_ssh_host(client: OpenAI, engine: SecondDockerd, sshd: SshServer,
                                                        endpoint: str, bystander: str, ssh_server: Server) -> None:
    container = client.containers.create(name="over-ssh").id
    try:
        # On the engine behind sshd, and not on this machine's own; nothing of the server's is in it.
        assert where(engine, container) == "ssh"
        attrs = engine.client().api.inspect_container(f"toolshed-{container}")
        assert attrs["Config"]["Labels"]["toolshed.host"] == endpoint
        assert attrs["HostConfig"]["Binds"] is None
        assert str(ssh_server.data_dir) not in json.dumps(attrs)
        [forward] = forwards(sshd)

        run(client, container, "x = 41")
        assert logs(run(client, container, "print(x + 1)")) == "42\n"
        uploaded = client.containers.files.create(container, file=("in.txt", b"hello over ssh"))
        assert logs(run(client, container, "print(open('/mnt/data/in.txt').read())")) == "hello over ssh\n"
        assert client.containers.files.content.retrieve(uploaded.id, container_id=container).read() == \
            b"hello over ssh"

        died = run(client, container, "import os\nos._exit(3)")
        assert (died["status"], died["error"]["name"]) == ("failed", "KernelDied")
        assert "exit code 3" in died["error"]["value"]
        fresh = run(client, container, "print('x' in globals(), open('/mnt/data/in.txt').read())")
        assert (fresh["status"], logs(fresh)) == ("completed", "False hello over ssh\n")

        made = run(client, container, "open('/mnt/data/out.csv', 'w').write('a,b\\n1,2\\n')")
        assert made["status"] == "completed"
        [generated] = [f for f in client.containers.files.list(container_id=container) if f.path.endswith("out.csv")]
        assert generated.source == "assistant"
        assert client.containers.files.content.retrieve(generated.id, container_id=container).read() == \
            b"a,b\n1,2\n"
        assert forwards(sshd) == [forward], "one forward carries everything"
    finally:
        client.containers.delete(container)


def test_a_killed_forward_is_started_again_and_the_kernel_kept(client: OpenAI, sshd: SshServer,
                                                               engine: SecondDockerd, bystander: str) -> None:
    container = client.containers.create(name="forward-dies").id
    try:
        assert where(engine, container) == "ssh"
        run(client, container, "kept = 'still here'")
        client.containers.files.create(container, file=("a.txt", b"A"))
        [forward] = forwards(sshd)
        sshd.kill_client(forward)
        # The host watch (every 0.5 s) starts another; until it is logged in, the engine is "not answering" (503).
        deadline = time.monotonic() + 10
        while (found := sshd.clients()) in ([], [forward]):
            assert time.monotonic() < deadline, "the forward was not started again"
            time.sleep(0.1)
        assert len(found) == 1
        # The kernel's channel and the file agent rode the old forward: both come back over the new one.
        again = run_when_up(client, container, "print(kept, open('/mnt/data/a.txt').read())")
        assert (again["status"], logs(again)) == ("completed", "still here A\n")
    finally:
        client.containers.delete(container)


@pytest.mark.parametrize(("endpoint", "target"), [
    ("ssh://me@box", SshTarget("me@box", None, DEFAULT_REMOTE_SOCKET)),
    ("ssh://box:2222/run/user/1000/docker.sock", SshTarget("box", 2222, "/run/user/1000/docker.sock")),
])
def test_an_ssh_url_names_the_login_and_the_remote_socket(endpoint: str, target: SshTarget) -> None:
    assert parse_endpoint(endpoint) == target


@pytest.mark.parametrize("endpoint", ["ssh://me:secret@box", "ssh://-oProxyCommand=x/", "ssh://box/a:b",
                                      "ssh://box:port", "ssh://box?x=1"])
def test_an_ssh_url_with_a_password_an_option_or_garbage_is_refused(endpoint: str) -> None:
    with pytest.raises(EngineUnavailable):
        parse_endpoint(endpoint)


def test_a_refused_login_or_a_missing_socket_is_a_clear_error_at_once(sshd: SshServer, engine: SecondDockerd,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What the server says at start (and leaves the host out for): ssh's own words, in seconds, no prompt."""
    monkeypatch.setenv("PATH", sshd.client_env()["PATH"])
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="Permission denied") as refused:
        engine_runtimes(f"ssh://nobody@127.0.0.1:{sshd.port}{engine.socket}", None, default_tag())
    with pytest.raises(EngineUnavailable, match=r"(?s)not answering.*open failed") as missing:
        engine_runtimes(f"ssh://{sshd.destination}/nonexistent/docker.sock", None, default_tag())
    assert time.monotonic() - started < 10
    print(f"\n{refused.value}\n{missing.value}")
    assert "runc" in engine_runtimes(f"ssh://{sshd.destination}{engine.socket}", None, default_tag())


def test_an_sshd_that_refuses_a_pty_still_forwards(engine: SecondDockerd, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The pty session that turns Nagle off on sshd's side is a nicety: refused, the forward still works."""
    no_tty = SshServer(engine.socket, permit_tty=False).start()
    try:
        monkeypatch.setenv("PATH", no_tty.client_env()["PATH"])
        with caplog.at_level("WARNING", logger="toolshed.sandbox"):
            assert "runc" in engine_runtimes(f"ssh://{no_tty.destination}{engine.socket}", None, default_tag())
        assert "no pty session for TCP_NODELAY" in caplog.text
    finally:
        no_tty.stop()
    assert no_tty.leftovers() == []


def test_time_a_trivial_cell_over_ssh(client: OpenAI, engine: SecondDockerd, bystander: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Numbers for the report, not a speed assertion (tests/test_remote_docker.py times the TLS path)."""
    container = client.containers.create(name="timed").id
    try:
        assert where(engine, container) == "ssh"
        run(client, container, "1")
        times = []
        for _ in range(30):
            started = time.perf_counter()
            assert run(client, container, "1")["status"] == "completed"
            times.append((time.perf_counter() - started) * 1000)
        with capsys.disabled():
            print(f"\n[ssh] trivial cell through the server, median of 30: {statistics.median(times):.1f} ms")
    finally:
        client.containers.delete(container)


def test_sshd_killed_mid_cell_loses_the_sandbox_clearly_and_its_return_brings_the_host_back(
        client: OpenAI, sshd: SshServer, engine: SecondDockerd, bystander: str, ssh_server: Server) -> None:
    container = client.containers.create(name="sshd-dies").id
    assert where(engine, container) == "ssh"
    run(client, container, "x = 1")
    killer = threading.Timer(3.0, sshd.kill)
    killer.start()
    started = time.monotonic()
    lost = run(client, container, "import time\ntime.sleep(120)")
    took = time.monotonic() - started
    killer.join()
    assert took < 15, f"the cell took {took:.1f} s after sshd died"
    assert (lost["status"], lost["error"]["name"], lost["error"]["value"]) == ("failed", "SandboxLost", HOST_LOST)
    # The other host's sandbox kept its state; the lost one's next call is a fresh sandbox (on the local host,
    # the only one answering), told so.
    assert logs(run(client, bystander, "print(kept)")) == "still here\n"
    fresh = run(client, container, "print('x' in globals())")
    assert fresh["status"] == "completed" and logs(fresh).endswith("False\n"), fresh
    # Told so in a notice first: HOST_LOST, or FILES_LOST when the background restart that follows a lost cell
    # got there first (its next start found no files).
    assert logs(fresh).startswith("[") and "fresh sandbox" in logs(fresh), fresh
    # The fresh one runs here; the lost one's container is still on the engine behind the dead sshd.
    assert docker.from_env().containers.get(f"toolshed-{container}").attrs["State"]["Running"]
    assert httpx.get(f"{ssh_server.base_url}/health", timeout=5).status_code == 200

    sshd.restart()
    deadline = time.monotonic() + 20
    while "answers again" not in ssh_server.log.read_text():
        assert time.monotonic() < deadline, "the ssh host did not come back"
        time.sleep(0.2)
    # Back, and cleared of the lost sandbox's leftovers: the next new sandbox goes there (the most memory left).
    assert not engine.client().containers.list(all=True, filters={"label": f"toolshed.id={container}"})
    back = client.containers.create(name="back").id
    assert where(engine, back) == "ssh"
    assert logs(run(client, back, "print(6 * 7)")) == "42\n"
    for made in (back, container):
        client.containers.delete(made)
