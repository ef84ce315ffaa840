"""Kubernetes as a sandbox host, end to end (issue 33): a Toolshed server with TOOLSHED_SANDBOX_HOSTS=kubernetes
drives a fake API server (tests/kubernetes_fake.py) whose fake kubelet really runs every claimed pod as Docker
containers, and whose pods/exec is a real WebSocket. So the kernel pod's supervisor, the kernel relay and the file
agent all run over the channel.k8s.io protocol through the official client, as they would against a cluster; only
the cluster's control plane is a fake (no cluster runs on this machine)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from orchestrator.sandbox.kubernetes import manifests
from tests.conftest import logs, new_container, run, running_server, sdk_client
from tests.kubernetes_fake import FakeCluster, fake_api_server, kubeconfig
from tests.kubernetes_kubelet import Kubelet
from tests.second_dockerd import make_certificates

pytestmark = [pytest.mark.docker]
NS = "toolshed"
# Kills the kernel's relay: the exec whose command line is pod_exec's bootstrap with the kernel's ports after it.
_KILL_RELAY = ("import os, signal\nfor pid in filter(str.isdigit, os.listdir('/proc')):\n"
               "    args = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
               "    if int(pid) != os.getpid() and any(b'given = json.loads' in a for a in args) and len(args) > 6:\n"
               "        os.kill(int(pid), signal.SIGKILL)\n")


@pytest.fixture(scope="module")
def cluster(docker_ready: None) -> Iterator[FakeCluster]:
    kubelet = Kubelet(docker.from_env(), label="test-kubernetes-host")
    try:
        yield FakeCluster(kubelet=kubelet, bind_after=0.05)
    finally:
        kubelet.close()


@pytest.fixture(scope="module")
def server(cluster: FakeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("k8s")
    # Over TLS with a client certificate, as a cluster's API server is reached: the REST calls and every exec's
    # WebSocket take the kubeconfig's CA and certificate.
    tls = make_certificates(folder / "certs")
    with fake_api_server(cluster, tls) as url, \
            running_server(folder / "data", TOOLSHED_SANDBOX_HOSTS="kubernetes",
                           TOOLSHED_KUBERNETES_KUBECONFIG=str(kubeconfig(folder / "kubeconfig", url, NS, tls)),
                           TOOLSHED_KUBERNETES_RUNTIME_CLASS="", TOOLSHED_POOL_SIZE="0",
                           TOOLSHED_SANDBOX_HOST_CHECK_INTERVAL="0.5") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> OpenAI:
    return sdk_client(server)


def claim_of(cluster: FakeCluster, sandbox_id: str) -> dict[str, Any] | None:
    with cluster.lock:
        return cluster.objects.get(("sandboxclaims", NS, manifests.claim_name(sandbox_id)))


def pod_of(cluster: FakeCluster, sandbox_id: str) -> str:
    claim = claim_of(cluster, sandbox_id)
    assert claim is not None
    return str(claim["status"]["sandbox"]["name"])


def test_a_sandbox_runs_in_a_claimed_pod_reached_only_through_exec(client: OpenAI, cluster: FakeCluster) -> None:
    with new_container(client, "k8s-cells") as sandbox:
        run(client, sandbox, "x = 20")
        assert logs(run(client, sandbox, "print(x + 22)")) == "42\n"
        claim = claim_of(cluster, sandbox)
        assert claim is not None and claim["metadata"]["annotations"]["toolshed.io/host"] == "kubernetes"
        pod = pod_of(cluster, sandbox)
        kernel = docker.from_env().containers.get(f"fakepod-{pod}-kernel")
        # The kernel's key came in by exec: it is in no environment, and no port is published or listened on
        # outside the pod's loopback.
        identity = logs(run(client, sandbox, "import os, json\nprint(os.getuid(), json.dumps(dict(os.environ)))"))
        uid, environ = identity.split(" ", 1)
        assert uid == "1000" and "key" not in environ.lower()
        assert kernel.attrs["HostConfig"]["ReadonlyRootfs"] and kernel.attrs["Config"]["User"].startswith("1000")
        # The files container's /tmp, where the server keeps the connection it reconnects with, is out of reach.
        hidden = logs(run(client, sandbox, "import os\nprint(os.path.exists('/tmp/toolshed-connection.json'))"))
        assert hidden == "False\n"
    deadline = time.monotonic() + 10
    while claim_of(cluster, sandbox) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert claim_of(cluster, sandbox) is None, "deleting the container gives its claim back"


def test_files_go_in_and_out_through_the_file_agent(client: OpenAI) -> None:
    with new_container(client, "k8s-files") as sandbox:
        client.containers.files.create(sandbox, file=("in.txt", b"41"))
        execution = run(client, sandbox, "n = int(open('/mnt/data/in.txt').read())\n"
                                         "open('/mnt/data/out.txt', 'w').write(str(n + 1))")
        assert execution["status"] == "completed", execution
        listed = {f.path: f.id for f in client.containers.files.list(sandbox)}
        assert "/mnt/data/out.txt" in listed, listed
        assert client.containers.files.content.retrieve(listed["/mnt/data/out.txt"],
                                                        container_id=sandbox).read() == b"42"
        big = bytes(range(256)) * 4096  # 1 MiB, every byte value
        client.containers.files.create(sandbox, file=("big.bin", big))
        assert logs(run(client, sandbox, "import hashlib\n"
                                         "print(hashlib.sha256(open('/mnt/data/big.bin','rb').read()).hexdigest())"
                        )).strip() == __import__("hashlib").sha256(big).hexdigest()


def test_a_dead_kernel_is_replaced_in_the_same_pod_and_the_files_stay(client: OpenAI, cluster: FakeCluster) -> None:
    with new_container(client, "k8s-restart") as sandbox:
        run(client, sandbox, "open('/mnt/data/kept.txt', 'w').write('kept')\nx = 1")
        pod = pod_of(cluster, sandbox)
        started = time.monotonic()
        died = run(client, sandbox, "import os\nos._exit(3)")
        assert time.monotonic() - started < 20
        assert died["status"] == "failed" and died["error"]["name"] == "KernelDied", died
        assert "exit" in died["error"]["value"] and "3" in died["error"]["value"], died["error"]
        after = logs(run(client, sandbox, "print('x' in globals(), open('/mnt/data/kept.txt').read())"))
        assert after == "False kept\n"
        assert pod_of(cluster, sandbox) == pod, "a kernel restart keeps the pod"


def test_a_lost_pod_gives_a_clear_error_then_a_fresh_sandbox(client: OpenAI, cluster: FakeCluster) -> None:
    with new_container(client, "k8s-lost") as sandbox:
        run(client, sandbox, "x = 1")
        pod = pod_of(cluster, sandbox)
        cluster.lose_pod(NS, pod)
        again = run(client, sandbox, "print('x' in globals())")
        # The pod's emptyDir went with it: the notice says the files are gone, not kept.
        assert logs(again).startswith("[What held this sandbox's files is gone") and logs(again).endswith(
            "False\n"), again
        assert pod_of(cluster, sandbox) != pod


def test_the_server_writes_a_deny_all_policy_and_no_kernel_ports(cluster: FakeCluster, server: Server) -> None:
    with cluster.lock:
        policies = [obj for (plural, ns, _), obj in cluster.objects.items() if plural == "networkpolicies"]
        templates = [obj for (plural, ns, _), obj in cluster.objects.items() if plural == "sandboxtemplates"]
    assert [p["spec"]["ingress"] for p in policies] == [[]] and [p["spec"]["egress"] for p in policies] == [[]]
    containers = [c for t in templates for c in t["spec"]["podTemplate"]["spec"]["containers"]]
    assert containers and not any(c.get("ports") for c in containers)
    assert json.dumps(templates).count("secretKeyRef") == 0


def test_a_restarted_server_finds_its_pods_and_reconnects_to_their_kernels(client: OpenAI, server: Server,
                                                                           cluster: FakeCluster) -> None:
    sandbox = client.containers.create(name="k8s-recover").id
    run(client, sandbox, "survivor = 'still here'\nopen('/mnt/data/kept.txt', 'w').write('kept')")
    pod = pod_of(cluster, sandbox)
    server.stop()
    server.start()
    try:
        after = logs(run(client, sandbox, "print(survivor, open('/mnt/data/kept.txt').read())"))
        assert after == "still here kept\n", after
        assert pod_of(cluster, sandbox) == pod
    finally:
        client.containers.delete(sandbox)


def test_a_lost_exec_connection_reconnects_to_the_same_kernel(client: OpenAI, cluster: FakeCluster) -> None:
    with new_container(client, "k8s-channel") as sandbox:
        run(client, sandbox, "kept = 41")
        kernel = docker.from_env().containers.get(f"fakepod-{pod_of(cluster, sandbox)}-kernel")
        # The relay carrying the kernel's channels dies (as an exec stream cut by a load balancer would end).
        cut = threading.Timer(1.5, kernel.exec_run, (["python3", "-c", _KILL_RELAY],), {"user": "1000"})
        cut.start()
        cell = run(client, sandbox, "import time\ntime.sleep(4)\nprint('done')")
        cut.join()
        assert cell["status"] == "failed" and cell["error"]["name"] == "ChannelLost", cell
        assert logs(run(client, sandbox, "print(kept + 1)")).endswith("42\n")


def test_a_stuck_kernel_is_stopped_and_replaced_in_its_pod(client: OpenAI, cluster: FakeCluster) -> None:
    with new_container(client, "k8s-stuck") as sandbox:
        run(client, sandbox, "x = 1\nopen('/mnt/data/kept.txt', 'w').write('kept')")
        pod = pod_of(cluster, sandbox)
        stuck = run(client, sandbox, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                     "time.sleep(600)", timeout=2)
        assert stuck["status"] == "timed_out", stuck
        # The supervisor was told to stop the kernel that ignored the interrupt, and started the next one.
        after = logs(run(client, sandbox, "print('x' in globals(), open('/mnt/data/kept.txt').read())"))
        assert after.endswith("False kept\n"), after
        assert pod_of(cluster, sandbox) == pod
