"""The Kubernetes sandbox backend (issue 33, item 3): every object it writes validates against the pinned
agent-sandbox CRDs and Kubernetes' own schemas, and so does deploy/kubernetes/; the backend drives a fake API
server (tests/kubernetes_fake.py) over real HTTP through a kubeconfig; and, only where KUBECONFIG names a reachable
cluster, a real one. Everything but the last needs nothing but Python (the fast tier)."""

from __future__ import annotations

import asyncio
import copy
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from orchestrator.sandbox.errors import EngineUnavailable, InvalidRequest, SandboxNotFound, SandboxStartFailed
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.kernel import KernelConnector
from orchestrator.sandbox.kubernetes import manifests
from orchestrator.sandbox.kubernetes.backend import KubernetesBackend
from orchestrator.sandbox.kubernetes.host import KubernetesHost
from orchestrator.sandbox.kubernetes.manifests import KernelSpec
from tests.kubernetes_fake import FakeCluster, fake_api_server, kubeconfig, permission
from tests.kubernetes_schemas import ROOT, validate

NS = "toolshed"
SPEC = KernelSpec(image="registry.example.com/toolshed-sandbox:1", k8s_namespace=NS, pools={"1g": 2, "4g": 0})
PLAIN = KernelSpec(image="toolshed-sandbox:1", k8s_namespace=NS, runtime_class="", namespace="team-b")
LIMITS = Limits(1 << 30, 1.0, 256, "256m")
LATER = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
DEPLOY = sorted((ROOT / "deploy" / "kubernetes").rglob("*.yaml"))
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def written(spec: KernelSpec) -> list[dict[str, Any]]:
    return [*manifests.startup_objects(spec),
            manifests.claim(spec, "cntr_" + "a" * 32, "1g", {"project": "acme", "name": "My notebook!"}, LATER)]


def deploy_objects() -> list[dict[str, Any]]:
    return [doc for path in DEPLOY for doc in yaml.safe_load_all(path.read_text()) if doc]


# ---- (a) the schemas --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("obj", [*written(SPEC), *written(PLAIN)],
                         ids=lambda obj: f"{obj['kind']}-{obj['metadata']['name']}")
def test_every_object_the_backend_writes_validates(obj: dict[str, Any]) -> None:
    validate(obj)  # the pinned CRD's v1beta1 schema, or core/v1 + networking/v1; a template's pod spec as a Pod


@pytest.mark.parametrize("obj", deploy_objects(), ids=lambda obj: f"{obj['kind']}-{obj['metadata']['name']}")
def test_every_deploy_manifest_validates(obj: dict[str, Any]) -> None:
    validate(obj)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            obj = obj[int(key)] if isinstance(obj, list) else obj[key]
        obj[last] = value
    return mutate


MUTATIONS = {
    "pod field misspelt": (1, _set("spec.podTemplate.spec.containers.0.securityContext.readOnlyRootFs", True)),
    "policy management not an enum value": (1, _set("spec.networkPolicyManagement", "Off")),
    "memory limit not a quantity": (1, _set("spec.podTemplate.spec.containers.0.resources.limits.memory", "1 GB")),
    "pool without a template": (2, lambda obj: obj["spec"].pop("sandboxTemplateRef")),
    "negative replicas": (2, _set("spec.replicas", -1)),
    "shutdown time not RFC 3339": (-1, _set("spec.lifecycle.shutdownTime", "tomorrow")),
    "claim field unknown": (-1, _set("spec.warmPool", {"name": "x"})),
    "egress misspelt": (0, _set("spec.egres", [])),
    "policy type unknown": (0, _set("spec.policyTypes", "Ingress")),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_broken_manifest_fails_validation(name: str) -> None:
    index, mutate = MUTATIONS[name]
    obj = copy.deepcopy(written(SPEC)[index])
    validate(copy.deepcopy(obj))
    mutate(obj)
    with pytest.raises(jsonschema.ValidationError):
        validate(obj)


def test_the_kernel_pod_has_the_docker_backends_protections() -> None:
    pod = manifests.template(SPEC, "4g")["spec"]["podTemplate"]["spec"]
    kernel = pod["containers"][0]
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["automountServiceAccountToken"] is False
    assert (pod["hostNetwork"], pod["hostPID"], pod["hostIPC"]) == (False, False, False)
    assert kernel["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "privileged": False,
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert kernel["resources"]["limits"] == {"cpu": "1000m", "memory": "4096Mi", "ephemeral-storage": "1088Mi"}
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
        {"name": "files-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "data", "emptyDir": {"sizeLimit": "1024Mi"}}]
    # No port, no probe, no key: the kernel is reached through exec alone, with a key handed in per start.
    assert not any(key in kernel for key in ("ports", "readinessProbe", "livenessProbe"))
    assert kernel["env"] == [{"name": "MPLBACKEND", "value": "module://matplotlib_inline.backend_inline"}]
    # The supervisor's rlimits, as Docker's: open files always, processes only where gVisor counts them inside.
    assert kernel["command"][:3] == ["python3", "-I", "-c"] and kernel["command"][4:] == ["4096", "256"]
    plain = manifests.pod_spec(PLAIN, 1 << 30)
    assert "runtimeClassName" not in plain and plain["containers"][0]["command"][4:] == ["4096", "0"]
    # The files container: the same protections, the same /mnt/data, its own /tmp.
    files = pod["containers"][1]
    assert files["name"] == "files" and files["securityContext"] == kernel["securityContext"]
    assert files["volumeMounts"] == [{"name": "files-tmp", "mountPath": "/tmp"},
                                     {"name": "data", "mountPath": "/mnt/data"}]


def test_the_network_policy_lets_nothing_in_and_nothing_out() -> None:
    policy = manifests.network_policy(SPEC)["spec"]
    assert policy["podSelector"]["matchLabels"] == manifests.kernel_labels(SPEC)
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == [] and policy["ingress"] == []
    deployed = next(obj for obj in deploy_objects() if obj["kind"] == "NetworkPolicy")
    assert deployed == manifests.network_policy(KernelSpec(image="any", k8s_namespace=NS))


def test_claim_labels_are_valid_label_values_and_every_label_survives() -> None:
    labels = {"project": "Acme Corp / research", "name": "My notebook!", "meta.pooled": "false"}
    claim = manifests.claim(SPEC, "cntr_" + "b" * 32, "1g", labels, LATER)
    assert all(LABEL_VALUE.match(value) and len(value) <= 63 for value in claim["metadata"]["labels"].values())
    assert claim["metadata"]["labels"]["toolshed.io/sandbox-id"] == "cntr_" + "b" * 32
    assert manifests.labels_of(claim) == {**labels, "id": "cntr_" + "b" * 32, "namespace": "default"}


# ---- (b) the backend against a fake API server ------------------------------------------------------------------

@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def kube(cluster: FakeCluster, tmp_path: Path) -> Iterator[Path]:
    with fake_api_server(cluster) as url:
        yield kubeconfig(tmp_path / "kubeconfig", url)


def backend(config: Path, spec: KernelSpec = SPEC, **options: Any) -> KubernetesBackend:
    return KubernetesBackend.from_kubeconfig(spec, str(config), poll_interval=0.05, **options)


def test_create_claims_a_ready_kernel_pod(cluster: FakeCluster, kube: Path) -> None:
    engine = backend(kube)
    engine.apply()
    name, _ = engine.create("cntr_one", limits=LIMITS, labels={"project": "acme"})
    pod = cluster.objects[("pods", NS, name)]
    assert pod["spec"] == manifests.pod_spec(SPEC, 1 << 30)
    claim = cluster.objects[("sandboxclaims", NS, "toolshed-cntr-one")]
    assert claim["spec"]["warmPoolRef"] == {"name": "toolshed-default-pool-1g"}
    assert engine.state("cntr_one").running is True
    assert engine.list_labels() == [{"project": "acme", "id": "cntr_one", "namespace": "default"}]


def test_a_pod_never_ready_is_a_clear_error_and_its_claim_is_given_back(kube: Path, cluster: FakeCluster) -> None:
    cluster.bind = False  # the pool is starved: the controller never binds the claim
    engine = backend(kube, ready_timeout=1.0)
    engine.apply()
    with pytest.raises(SandboxStartFailed, match=r"sandbox cntr_slow was not ready within 1 s \(claim "
                                                 r"toolshed-cntr-slow: no Ready condition yet\)"):
        engine.create("cntr_slow", limits=LIMITS, labels={})
    assert ("sandboxclaims", NS, "toolshed-cntr-slow") not in cluster.objects


def test_remove_gives_the_claim_and_its_pod_back(kube: Path, cluster: FakeCluster) -> None:
    engine = backend(kube)
    engine.apply()
    pod, _ = engine.create("cntr_two", limits=LIMITS, labels={})
    engine.remove("cntr_two")
    assert ("sandboxclaims", NS, "toolshed-cntr-two") not in cluster.objects
    assert ("pods", NS, pod) not in cluster.objects
    with pytest.raises(SandboxNotFound):
        engine.state("cntr_two")
    engine.remove("cntr_two")  # already gone: nothing to do


def test_list_sees_only_this_namespaces_claims(kube: Path) -> None:
    ours, theirs = backend(kube), backend(kube, PLAIN)
    ours.apply()
    theirs.apply()
    ours.create("cntr_a", limits=LIMITS, labels={})
    ours.create("cntr_b", limits=LIMITS, labels={})
    theirs.create("cntr_c", limits=LIMITS, labels={})
    assert sorted(labels["id"] for labels in ours.list_labels()) == ["cntr_a", "cntr_b"]
    assert [labels["id"] for labels in theirs.list_labels()] == ["cntr_c"]


def test_apply_over_existing_objects_updates_them(kube: Path, cluster: FakeCluster) -> None:
    backend(kube).apply()
    first = copy.deepcopy(cluster.objects[("sandboxwarmpools", NS, "toolshed-default-pool-1g")])
    backend(kube, KernelSpec(image=SPEC.image, k8s_namespace=NS, pools={"1g": 5, "4g": 0})).apply()  # 409 -> PUT
    pool = cluster.objects[("sandboxwarmpools", NS, "toolshed-default-pool-1g")]
    assert pool["spec"]["replicas"] == 5
    assert pool["metadata"]["uid"] == first["metadata"]["uid"]
    assert int(pool["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


@pytest.mark.parametrize("oom", [False, True], ids=["pod deleted", "kernel OOM-killed"])
def test_a_lost_pod_is_noticed(kube: Path, cluster: FakeCluster, oom: bool) -> None:
    engine = backend(kube)
    engine.apply()
    kept, lost = (engine.create(name, limits=LIMITS, labels={})[0] for name in ("cntr_kept", "cntr_lost"))
    assert engine.lost() == []
    cluster.lose_pod(NS, lost, oom=oom)
    assert engine.lost() == ["cntr_lost"]
    assert engine.state("cntr_lost").running is False
    assert (engine.state("cntr_lost").exit_code, engine.state("cntr_lost").oom_killed) == \
        ((137, True) if oom else (None, False))
    assert engine.state("cntr_kept").running is True and kept != lost


def test_a_memory_limit_without_a_pool_is_refused(kube: Path) -> None:
    engine = backend(kube)
    with pytest.raises(InvalidRequest, match="no kernel pool of 16384 MiB"):
        engine.create("cntr_big", limits=Limits(16 << 30, 1.0, 256, "256m"), labels={})


def test_missing_crds_are_named(tmp_path: Path) -> None:
    with fake_api_server(FakeCluster(crds=False)) as url:
        engine = backend(kubeconfig(tmp_path / "kubeconfig", url))
        with pytest.raises(EngineUnavailable, match="agent-sandbox CRDs"):
            engine.apply()


def test_an_unreachable_api_server_is_engine_unavailable(tmp_path: Path) -> None:
    with fake_api_server(FakeCluster()) as url:
        config = kubeconfig(tmp_path / "kubeconfig", url)
    engine = backend(config, request_timeout=5.0)  # the server is gone: its port refuses connections
    assert engine.ping() is False
    with pytest.raises(EngineUnavailable, match="not reachable"):
        engine.list_labels()


def test_the_deploy_role_grants_exactly_what_the_backend_uses(kube: Path, cluster: FakeCluster) -> None:
    engine = backend(kube)
    engine.apply()
    engine.apply()
    engine.create("cntr_rbac", limits=LIMITS, labels={})
    engine.renew("cntr_rbac")
    engine.state("cntr_rbac")
    engine.list_labels()
    engine.lost()
    engine.remove("cntr_rbac")
    used = {permission(method, path) for method, path in cluster.requests if path.rstrip("/") != "/version"}
    # The host's execs in the pods (tests/test_kubernetes_host.py drives them): create where the API server asks
    # it of a WebSocket exec, get where an older one does.
    used |= {("", "pods/exec", "create"), ("", "pods/exec", "get")}
    role = next(obj for obj in deploy_objects() if obj["kind"] == "Role")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert used == granted


# ---- (c) a real cluster -----------------------------------------------------------------------------------------

def _no_cluster() -> str | None:
    path = os.environ.get("KUBECONFIG")
    if not path:
        return "no Kubernetes cluster: KUBECONFIG is not set (the end-to-end test needs a reachable cluster)"
    spec = KernelSpec(image=os.environ.get("TOOLSHED_TEST_K8S_IMAGE", "toolshed-sandbox:latest"),
                      k8s_namespace=os.environ.get("TOOLSHED_TEST_K8S_NAMESPACE", NS))
    try:
        reachable = KubernetesBackend.from_kubeconfig(spec, path, request_timeout=5.0).ping()
    except EngineUnavailable as exc:
        return f"no Kubernetes cluster: KUBECONFIG={path} is not usable ({exc})"
    return None if reachable else f"no Kubernetes cluster: KUBECONFIG={path} names a cluster that does not answer"


NO_CLUSTER = _no_cluster()


@pytest.mark.cluster
@pytest.mark.skipif(NO_CLUSTER is not None, reason=NO_CLUSTER or "")
def test_end_to_end_on_a_real_cluster() -> None:
    """Needs agent-sandbox's CRDs and controller, the namespace and the sandbox image there (docs/kubernetes.md);
    TOOLSHED_TEST_K8S_IMAGE / TOOLSHED_TEST_K8S_NAMESPACE / TOOLSHED_TEST_K8S_RUNTIME_CLASS name them. The host
    claims a pod, hands its kernel a key, runs a cell over the relay and moves a file through the agent."""
    spec = KernelSpec(image=os.environ.get("TOOLSHED_TEST_K8S_IMAGE", "toolshed-sandbox:latest"),
                      k8s_namespace=os.environ.get("TOOLSHED_TEST_K8S_NAMESPACE", NS),
                      namespace="toolshed-e2e", pools={"1g": 1},  # one namespace: reruns update, not pile up
                      runtime_class=os.environ.get("TOOLSHED_TEST_K8S_RUNTIME_CLASS", "gvisor"))
    engine = KubernetesBackend.from_kubeconfig(spec, os.environ["KUBECONFIG"], ready_timeout=300.0)
    engine.apply()
    host = KubernetesHost(engine, max_message_bytes=16 << 20)
    connector = KernelConnector()
    sandbox_id = f"cntr_e2e{os.getpid()}"
    try:
        connection = host.prepare(sandbox_id)
        host.launch(sandbox_id, limits=LIMITS, labels={"project": "e2e"}, connection=connection, replace=False)
        host.files.write(sandbox_id, "in.txt", [b"41"])
        info, transport = host.reach(sandbox_id, connection)
        session = connector.connect(info, transport)

        async def cell() -> str:
            await session.wait_ready(60)
            result = await session.execute("print(int(open('/mnt/data/in.txt').read()) + 1)", 60,
                                           interrupt_grace=1.0, max_text_bytes=4096)
            return "".join(str(output) for output in result.outputs)

        assert "42" in asyncio.run(cell())
        assert host.runtime.state(sandbox_id).running is True
        assert sandbox_id in [labels["id"] for labels in engine.list_labels()]
        session.close()
    finally:
        host.discard(sandbox_id)
        host.close()
        connector.close()
