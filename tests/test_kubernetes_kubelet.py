"""The fake kubelet of tests/kubernetes_fake.py: a bound claim's pod really runs, as Docker containers made from
its spec, its status is theirs, deleting it removes them, and pods/exec works through the official client's
websocket (WSClient) as against a real API server."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import docker
import kubernetes
import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream
from kubernetes.stream.ws_client import (
    ERROR_CHANNEL,
    V4_CHANNEL_PROTOCOL,
    V5_CHANNEL_PROTOCOL,
    WSClient,
    get_websocket_url,
)
from websocket import WebSocketBadStatusException

from orchestrator.sandbox.image import default_tag
from tests.kubernetes_fake import AGENTS, FakeCluster, fake_api_server, kubeconfig, permission
from tests.kubernetes_kubelet import LABEL, Kubelet, container_name, quantity

pytestmark = pytest.mark.docker
NS = "fake-kubelet"
VERSION = "v1beta1"
UID = 1000


def template() -> dict[str, Any]:
    """Two containers sharing an emptyDir, with the kernel pod's protections."""
    security = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    containers = [{"name": name, "image": default_tag(), "command": ["sleep"], "args": ["infinity"],
                   "env": [{"name": "WHO", "value": name}], "securityContext": security,
                   "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                   "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]} for name in ("main", "side")]
    return {"apiVersion": f"{AGENTS}/{VERSION}", "kind": "SandboxTemplate", "metadata": {"name": "pair"},
            "spec": {"podTemplate": {"metadata": {"labels": {"app": "pair"}}, "spec": {
                "restartPolicy": "Never", "securityContext": {"fsGroup": UID}, "containers": containers,
                "volumes": [{"name": "shared", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]}}}}


@pytest.fixture(scope="module")
def kubelet(docker_ready: None) -> Iterator[Kubelet]:
    made = Kubelet(docker.from_env(), label=f"test-kubelet-{os.getpid()}")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def cluster(kubelet: Kubelet) -> FakeCluster:
    return FakeCluster(kubelet=kubelet, bind_after=0.0)


@pytest.fixture(scope="module")
def api(cluster: FakeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[kubernetes.client.ApiClient]:
    with fake_api_server(cluster) as url:
        config = kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig", url, NS)
        client = kubernetes.config.new_client_from_config(config_file=str(config))
        custom = CustomObjectsApi(client)
        custom.create_namespaced_custom_object(AGENTS, VERSION, NS, "sandboxtemplates", template())
        custom.create_namespaced_custom_object(AGENTS, VERSION, NS, "sandboxwarmpools", {
            "apiVersion": f"{AGENTS}/{VERSION}", "kind": "SandboxWarmPool", "metadata": {"name": "pool"},
            "spec": {"replicas": 0, "sandboxTemplateRef": {"name": "pair"}}})
        yield client


def claim(api: kubernetes.client.ApiClient, name: str) -> str:
    """A bound claim's pod."""
    custom = CustomObjectsApi(api)
    custom.create_namespaced_custom_object(AGENTS, VERSION, NS, "sandboxclaims", {
        "apiVersion": f"{AGENTS}/{VERSION}", "kind": "SandboxClaim", "metadata": {"name": name},
        "spec": {"warmPoolRef": {"name": "pool"}}})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bound = custom.get_namespaced_custom_object(AGENTS, VERSION, NS, "sandboxclaims", name).get("status")
        if bound:
            return str(bound["sandbox"]["name"])
        time.sleep(0.05)
    raise AssertionError(f"claim {name} was not bound")


@pytest.fixture(scope="module")
def pod(api: kubernetes.client.ApiClient) -> str:
    return claim(api, "first")


def run(api: kubernetes.client.ApiClient, pod: str, container: str, *command: str,
        stdin: bytes | None = None) -> tuple[bytes, bytes, int]:
    """stdout, stderr and the exit code of a command run to its end."""
    ws = stream(CoreV1Api(api).connect_get_namespaced_pod_exec, pod, NS, container=container, command=list(command),
                stdin=stdin is not None, stdout=True, stderr=True, tty=False, _preload_content=False, binary=True)
    if stdin is not None:
        ws.write_stdin(stdin)
        ws.close_channel(0)
    ws.run_forever(timeout=20)
    assert not ws.is_open()
    return ws.read_stdout(), ws.read_stderr(), ws.returncode


def test_the_pods_containers_run_as_the_spec_says(api: kubernetes.client.ApiClient, pod: str) -> None:
    status = CoreV1Api(api).read_namespaced_pod(pod, NS).status
    assert status.phase == "Running"
    assert {condition.type: condition.status for condition in status.conditions}["Ready"] == "True"
    assert [(each.name, each.ready, bool(each.state.running)) for each in status.container_statuses] == \
        [("main", True, True), ("side", True, True)]
    attrs = docker.from_env().api.inspect_container(container_name(pod, "main"))
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == f"{UID}:{UID}" and host["GroupAdd"] == [str(UID)]
    assert attrs["Config"]["Entrypoint"] == ["sleep"] and attrs["Config"]["Cmd"] == ["infinity"]
    assert "WHO=main" in attrs["Config"]["Env"]
    assert (host["ReadonlyRootfs"], host["CapDrop"], host["SecurityOpt"]) == (True, ["ALL"], ["no-new-privileges"])
    assert (host["NetworkMode"], host["Runtime"], host["Init"]) == ("none", "runc", False)
    assert (host["Memory"], host["NanoCpus"]) == (256 << 20, 500_000_000)
    assert attrs["Config"]["Labels"][LABEL] == docker.from_env().api.inspect_container(
        container_name(pod, "side"))["Config"]["Labels"][LABEL]
    assert run(api, pod, "main", "sh", "-c", "id -u; touch /x 2>/dev/null || echo read-only") == \
        (f"{UID}\nread-only\n".encode(), b"", 0)


def test_exec_runs_a_command_and_gives_its_exit_code(api: kubernetes.client.ApiClient, pod: str) -> None:
    assert run(api, pod, "main", "echo", "hi") == (b"hi\n", b"", 0)
    assert stream(CoreV1Api(api).connect_get_namespaced_pod_exec, pod, NS, container="main", command=["echo", "hi"],
                  stdin=False, stdout=True, stderr=True, tty=False) == "hi\n"  # the client's preloaded form
    assert run(api, pod, "side", "sh", "-c", "echo $WHO; echo oops >&2; exit 3") == (b"side\n", b"oops\n", 3)


def test_the_exit_status_is_the_api_servers(api: kubernetes.client.ApiClient, pod: str) -> None:
    ws = stream(CoreV1Api(api).connect_get_namespaced_pod_exec, pod, NS, container="main",
                command=["sh", "-c", "exit 7"], stdout=True, stderr=True, _preload_content=False, binary=True)
    ws.run_forever(timeout=20)
    assert ws.subprotocol == V5_CHANNEL_PROTOCOL
    assert json.loads(ws.read_channel(ERROR_CHANNEL)) == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7",
        "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}}


def test_stdin_is_binary_and_large_and_interactive(api: kubernetes.client.ApiClient, pod: str) -> None:
    every_byte, large = bytes(range(256)) * 4, os.urandom(1 << 20)
    assert run(api, pod, "main", "cat", stdin=every_byte) == (every_byte, b"", 0)
    assert run(api, pod, "main", "cat", stdin=large) == (large, b"", 0)
    ws = stream(CoreV1Api(api).connect_get_namespaced_pod_exec, pod, NS, container="main", command=["cat"],
                stdin=True, stdout=True, stderr=True, _preload_content=False, binary=True)
    for n in range(20):  # one line at a time: each answered before the next is sent
        ws.write_stdin(b"line %d\n" % n)
        assert ws.readline_stdout(timeout=10) == b"line %d" % n
    ws.close()  # the client goes first: cat reads EOF and ends


def test_containers_share_the_pods_empty_dir(api: kubernetes.client.ApiClient, pod: str) -> None:
    assert run(api, pod, "main", "sh", "-c", "echo from-main > /shared/note") == (b"", b"", 0)
    assert run(api, pod, "side", "sh", "-c", "cat /shared/note; stat -c %g /shared/note; df -k /shared | "
                                             "tail -1 | awk '{print $2}'") == (f"from-main\n{UID}\n16384\n".encode(),
                                                                               b"", 0)


def connect(api: kubernetes.client.ApiClient, pod: str, *command: str, protocol: str | None = None,
            **query: str) -> WSClient:
    """The client's exec websocket, opened by hand (the generated method hides a refusal's status and body)."""
    url = f"ws{api.configuration.host[4:]}/api/v1/namespaces/{NS}/pods/{pod}/exec"
    params = [*query.items(), *(("command", part) for part in command), ("stdout", "true"), ("stderr", "true")]
    return WSClient(api.configuration, get_websocket_url(url, params),
                    {"sec-websocket-protocol": protocol} if protocol else None, True, binary=True)


def test_the_v4_protocol_when_v5_is_not_offered(api: kubernetes.client.ApiClient, pod: str) -> None:
    ws = connect(api, pod, "sh", "-c", "echo v4; exit 2", protocol=V4_CHANNEL_PROTOCOL, container="main")
    ws.run_forever(timeout=20)
    assert (ws.subprotocol, ws.read_stdout(), ws.returncode) == (V4_CHANNEL_PROTOCOL, b"v4\n", 2)


@pytest.mark.parametrize(("target", "container", "command", "code", "message"), [
    ("nope", "main", "true", 404, 'pods "nope" not found'),
    ("", "other", "true", 400, "container other is not valid for pod {pod}"),
    ("", "", "true", 400, "a container name must be specified for pod {pod}, choose one of: [main side]"),
    ("", "main", "", 400, "you must specify at least one command for the container")])
def test_exec_refusals_come_before_the_upgrade(api: kubernetes.client.ApiClient, pod: str, target: str,
                                              container: str, command: str, code: int, message: str) -> None:
    with pytest.raises(WebSocketBadStatusException) as refused:
        connect(api, target or pod, *filter(None, [command]), **({"container": container} if container else {}))
    assert refused.value.status_code == code
    assert json.loads(refused.value.resp_body or b"")["message"] == message.format(pod=pod)


def test_exec_needs_create_on_pods_exec() -> None:
    assert permission("GET", f"/api/v1/namespaces/{NS}/pods/p/exec") == ("", "pods/exec", "create")
    assert permission("POST", f"/api/v1/namespaces/{NS}/pods/p/exec") == ("", "pods/exec", "create")
    assert permission("GET", f"/api/v1/namespaces/{NS}/pods/p") == ("", "pods", "get")


def test_a_killed_container_shows_in_the_status_and_refuses_exec(api: kubernetes.client.ApiClient,
                                                                 cluster: FakeCluster) -> None:
    lost = claim(api, "oom")
    cluster.lose_pod(NS, lost, oom=True)
    status = CoreV1Api(api).read_namespaced_pod(lost, NS).status
    main, side = status.container_statuses
    assert (main.state.terminated.exit_code, main.state.terminated.reason, main.ready) == (137, "OOMKilled", False)
    assert side.state.running and status.phase == "Running"  # restartPolicy Never: the pod runs on, not Ready
    assert {condition.type: condition.status for condition in status.conditions}["Ready"] == "False"
    with pytest.raises(WebSocketBadStatusException) as refused:
        connect(api, lost, "true", container="main")
    assert json.loads(refused.value.resp_body or b"")["message"] == \
        'unable to upgrade connection: container not found ("main")'
    assert run(api, lost, "side", "true") == (b"", b"", 0)


def test_deleting_the_claim_removes_the_containers_and_volumes(api: kubernetes.client.ApiClient,
                                                               kubelet: Kubelet) -> None:
    doomed = claim(api, "doomed")
    engine = docker.from_env()
    selector = {"label": [f"{LABEL}={kubelet.label}", f"{LABEL}.pod={NS}.{doomed}"]}
    assert len(engine.containers.list(filters=selector)) == 2 and len(engine.volumes.list(filters=selector)) == 1
    CustomObjectsApi(api).delete_namespaced_custom_object(AGENTS, VERSION, NS, "sandboxclaims", "doomed")
    assert engine.containers.list(all=True, filters=selector) == [] and engine.volumes.list(filters=selector) == []
    with pytest.raises(ApiException, match="Not Found"):
        CoreV1Api(api).read_namespaced_pod(doomed, NS)


def test_close_removes_leftovers_of_an_earlier_run(kubelet: Kubelet) -> None:
    engine = docker.from_env()
    label = f"test-kubelet-leftover-{os.getpid()}"
    engine.containers.create(default_tag(), ["true"], labels={LABEL: label})
    Kubelet(engine, label=label)
    assert engine.containers.list(all=True, filters={"label": f"{LABEL}={label}"}) == []


@pytest.mark.parametrize(("text", "value"), [("1Gi", 1 << 30), ("512Mi", 512 << 20), ("128M", 128e6),
                                             ("500m", 0.5), ("1", 1), ("1.5", 1.5)])
def test_quantities(text: str, value: float) -> None:
    assert quantity(text) == value
