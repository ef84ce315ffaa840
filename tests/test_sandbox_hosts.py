"""Sandboxes on more than one Docker Engine (issue 33): a server with the local engine and a second, separate
dockerd over mutual TLS as its hosts. New sandboxes go where the most memory is left; the second engine's
sandboxes share no path with the server; and when that engine dies mid-run, its threads get a clear error and a
fresh sandbox on the other host, while nothing hangs and the other host's sandboxes keep their state."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import docker
import docker.errors
import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import logs, run, running_server, sdk_client, skip_unless_required
from tests.remote_switch import REMOTE, host_settings, start_engine
from tests.run_helpers import ask
from tests.scripted_model import ScriptedModel, Turn
from tests.second_dockerd import SecondDockerd

pytestmark = [pytest.mark.docker, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def engine(docker_ready: None) -> Iterator[SecondDockerd]:
    skip_unless_required("this module runs its own second engine; run it without TOOLSHED_TEST_REMOTE"
                         if REMOTE else None)
    second = start_engine()
    try:
        yield second
    finally:
        second.stop()
    assert second.leftovers() == []


@pytest.fixture(scope="module")
def hosts_server(engine: SecondDockerd, model: ScriptedModel,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = host_settings(engine)
    with running_server(tmp_path_factory.mktemp("hosts"), TOOLSHED_MODEL_BASE_URL=model.base_url,
                        TOOLSHED_SANDBOX_HOSTS=f"local,{settings['TOOLSHED_SANDBOX_HOSTS']}",
                        TOOLSHED_SANDBOX_TLS_DIR=settings["TOOLSHED_SANDBOX_TLS_DIR"], TOOLSHED_POOL_SIZE="0",
                        TOOLSHED_SANDBOX_HOST_CHECK_INTERVAL="0.5", TOOLSHED_SANDBOX_RUNTIME="runc") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(hosts_server: Server) -> OpenAI:
    return sdk_client(hosts_server)


def where(engine: SecondDockerd, sandbox_id: str) -> str:
    """"remote" or "local": the engine that runs the sandbox's container."""
    try:
        engine.client().containers.get(f"toolshed-{sandbox_id}")
        return "remote"
    except docker.errors.NotFound:
        docker.from_env().containers.get(f"toolshed-{sandbox_id}")
        return "local"


def test_sandboxes_spread_over_both_hosts_and_a_remote_one_shares_no_path(client: OpenAI, engine: SecondDockerd,
                                                                         hosts_server: Server) -> None:
    made = [client.containers.create(name=f"spread-{n}").id for n in range(2)]
    try:
        # Both engines report this machine's memory: the first goes to the first host, the second to the other.
        assert sorted(where(engine, sandbox) for sandbox in made) == ["local", "remote"]
        [remote] = [sandbox for sandbox in made if where(engine, sandbox) == "remote"]
        attrs = engine.client().api.inspect_container(f"toolshed-{remote}")
        assert attrs["Config"]["Labels"]["toolshed.host"] == engine.url
        assert attrs["HostConfig"]["Binds"] is None
        assert [(m["Type"], m["Destination"]) for m in attrs["Mounts"]] == [("volume", "/mnt/data")]
        assert str(hosts_server.data_dir) not in json.dumps(attrs)
        for sandbox in made:
            client.containers.files.create(sandbox, file=("in.txt", b"41"))
            assert logs(run(client, sandbox, "print(int(open('/mnt/data/in.txt').read()) + 1)")) == "42\n"
    finally:
        for sandbox in made:
            client.containers.delete(sandbox)


def test_a_killed_engine_gives_its_thread_a_clear_error_then_a_fresh_sandbox_on_the_other_host(
        client: OpenAI, model: ScriptedModel, engine: SecondDockerd, hosts_server: Server) -> None:
    # A sandbox on the local host first, so that the thread's goes to the second engine.
    bystander = client.containers.create(name="bystander").id
    run(client, bystander, "kept = 'still here'")
    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "x = 1\nprint('first')"}))]),
              Turn(text="ok"))
    assistant, thread = ask(client, "Set x.", tools=[{"type": "code_interpreter"}])
    first = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert first.status == "completed", first.last_error
    remote = [c.labels["toolshed.id"] for c in engine.client().containers.list(
        filters={"label": f"toolshed.namespace={hosts_server.namespace}"})]
    assert len(remote) == 1, "the thread's sandbox should be on the second engine"

    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "import time\ntime.sleep(120)"}))]),
              Turn(text="the sandbox was lost"))
    client.beta.threads.messages.create(thread, role="user", content="Sleep.")
    killer = threading.Timer(4.0, engine.kill)
    killer.start()
    started = time.monotonic()
    second = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant,
                                                      poll_interval_ms=200)
    took = time.monotonic() - started
    killer.join()
    assert second.status == "completed", second.last_error
    assert took < 30, f"the run took {took:.1f} s after its engine died"
    lost_output = model.requests[-1]["messages"][-1]["content"]
    assert "SandboxLost" in lost_output and "stopped answering" in lost_output, lost_output

    model.say(Turn(tool_calls=[("code_interpreter", json.dumps({"code": "print('fresh', 'x' in globals())"}))]),
              Turn(text="fresh"))
    client.beta.threads.messages.create(thread, role="user", content="Again.")
    third = client.beta.threads.runs.create_and_poll(thread_id=thread, assistant_id=assistant)
    assert third.status == "completed", third.last_error
    fresh_output = model.requests[-1]["messages"][-1]["content"]
    assert "fresh False" in fresh_output and "stopped answering" in fresh_output, fresh_output
    assert docker.from_env().containers.get(f"toolshed-{remote[0]}").attrs["State"]["Running"]

    assert logs(run(client, bystander, "print(kept)")) == "still here\n"
    assert httpx.get(f"{hosts_server.base_url}/health", timeout=5).status_code == 200
    client.containers.delete(bystander)
