"""Every object the Kubernetes backend writes, as plain dicts (pure functions, no client): one SandboxTemplate and
one SandboxWarmPool per memory tier, a SandboxClaim per sandbox, and the NetworkPolicy around the kernel pods.

A kernel pod gets the Docker backend's protections in Kubernetes' words: a non-root uid, a read-only root, no
capabilities, no privilege escalation, the runtime's default seccomp profile, no service account token, memory and
CPU limits, /tmp in memory and /mnt/data on a size-limited emptyDir; gVisor through `runtimeClassName` where the
cluster has it; and a NetworkPolicy that lets nothing in or out: the server reaches a pod only through the API
server's exec (kubernetes/host.py), a kernel relay and a file agent per sandbox, as on a remote Docker engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.sandbox.kubernetes import kernel_supervisor
from orchestrator.sandbox.policy import MEMORY_LIMITS
from orchestrator.sandbox.workspace import parse_size

GROUP = "extensions.agents.x-k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
LABEL_PREFIX = "toolshed.io/"
CONTAINER_NAME = "kernel"
FILES_CONTAINER = "files"
DATA_DIR = "/mnt/data"
SUPERVISOR_SOURCE = Path(kernel_supervisor.__file__).read_text()
# Docker's `nofile` ulimit for every sandbox; the nproc one is set only under gVisor (see runtime.py).
OPEN_FILES = 4096
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class KernelSpec:
    """What every kernel pod is made of; the same limits the Docker backend applies (see Settings)."""

    image: str
    k8s_namespace: str
    # Toolshed's namespace: the label that tells this server's claims from another's in the same cluster.
    namespace: str = "default"
    uid: int = 1000
    cpus: float = 1.0
    pids: int = 256
    tmp_size: str = "256m"
    disk_size: str = "1g"
    # A RuntimeClass name (the cluster's handler for gVisor's runsc), or "" for the cluster's default runtime.
    runtime_class: str = "gvisor"
    # Memory tier ("1g", "4g", ...) -> warm pods kept; a claim on a tier of 0 starts its pod cold.
    pools: Mapping[str, int] = field(default_factory=lambda: {"1g": 2})
    image_pull_policy: str = "IfNotPresent"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.pools) - set(MEMORY_LIMITS))
        if unknown:
            raise ValueError(f"no such memory tier: {', '.join(unknown)} (tiers: {', '.join(MEMORY_LIMITS)})")

    @property
    def gvisor(self) -> bool:
        return bool(self.runtime_class)


def _slug(text: str) -> str:
    return _NOT_DNS.sub("-", text.lower()).strip("-")[:40] or "x"


def template_name(spec: KernelSpec, tier: str) -> str:
    return f"toolshed-{_slug(spec.namespace)}-kernel-{tier}"


def pool_name(spec: KernelSpec, tier: str) -> str:
    return f"toolshed-{_slug(spec.namespace)}-pool-{tier}"


def policy_name(spec: KernelSpec) -> str:
    return f"toolshed-{_slug(spec.namespace)}-kernels"


def claim_name(sandbox_id: str) -> str:
    """Sandbox ids are unique across namespaces (random), so the claim's name needs only the id."""
    return f"toolshed-{_slug(sandbox_id)}"


def tier_of(memory_bytes: int) -> str | None:
    """The memory tier ("1g", ...) whose limit is exactly `memory_bytes`; None if there is none."""
    return next((name for name, size in MEMORY_LIMITS.items() if size == memory_bytes), None)


def kernel_labels(spec: KernelSpec) -> dict[str, str]:
    """Labels of every kernel pod of this server: what the NetworkPolicy and the pod listing select on."""
    return {"app.kubernetes.io/name": "toolshed", "app.kubernetes.io/component": "kernel",
            f"{LABEL_PREFIX}namespace": _label_value(spec.namespace)}


def quantity(size: str | int) -> str:
    """A Toolshed size ("256m", or bytes) as a Kubernetes quantity ("256Mi")."""
    n = parse_size(size) if isinstance(size, str) else size
    return f"{n >> 20}Mi" if n % (1 << 20) == 0 else str(n)


def _security(spec: KernelSpec) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": spec.uid, "runAsGroup": spec.uid, "privileged": False,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _kernel(spec: KernelSpec, memory_bytes: int) -> dict[str, Any]:
    """The kernel's container: the supervisor (kernel_supervisor.py) as its first process, with the rlimits."""
    # RLIMIT_NPROC under runc would count every process of this uid on the node: gVisor only, as in Docker.
    command = ["python3", "-I", "-c", SUPERVISOR_SOURCE, str(OPEN_FILES), str(spec.pids if spec.gvisor else 0)]
    return {
        "name": CONTAINER_NAME, "image": spec.image, "imagePullPolicy": spec.image_pull_policy,
        "command": command, "workingDir": DATA_DIR,
        "env": [{"name": "MPLBACKEND", "value": "module://matplotlib_inline.backend_inline"}],
        "resources": {
            "limits": {"cpu": f"{round(spec.cpus * 1000)}m", "memory": quantity(memory_bytes),
                       "ephemeral-storage": quantity(parse_size(spec.disk_size) + (64 << 20))},
            # Requests stay small so an idle warm pool does not reserve whole nodes; limits are what binds.
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "securityContext": _security(spec),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": DATA_DIR}],
    }


def _files(spec: KernelSpec) -> dict[str, Any]:
    """The files container: it runs nothing but the server's file agent (an exec per sandbox) over the same
    /mnt/data, so files are reached while the kernel is stopped or busy; its own /tmp keeps what the kernel must
    not read (the connection the server reconnects with, the sandbox's record)."""
    return {
        "name": FILES_CONTAINER, "image": spec.image, "imagePullPolicy": spec.image_pull_policy,
        "command": ["sleep", "infinity"], "workingDir": "/",
        "resources": {"limits": {"cpu": "250m", "memory": "128Mi"}, "requests": {"cpu": "10m", "memory": "32Mi"}},
        "securityContext": _security(spec),
        "volumeMounts": [{"name": "files-tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": DATA_DIR}],
    }


def pod_spec(spec: KernelSpec, memory_bytes: int) -> dict[str, Any]:
    """The kernel pod's spec (a core/v1 PodSpec)."""
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # no environment variables naming the cluster's other Services
        "hostNetwork": False, "hostPID": False, "hostIPC": False,
        # The supervisor never ends, and the kernel is its child: a pod that stops is a lost sandbox.
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "securityContext": {"runAsNonRoot": True, "runAsUser": spec.uid, "runAsGroup": spec.uid,
                            "fsGroup": spec.uid, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_kernel(spec, memory_bytes), _files(spec)],
        "volumes": [
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(spec.tmp_size)}},
            {"name": "files-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "data", "emptyDir": {"sizeLimit": quantity(spec.disk_size)}},
        ],
    }
    if spec.runtime_class:
        pod["runtimeClassName"] = spec.runtime_class
    return pod


def template(spec: KernelSpec, tier: str) -> dict[str, Any]:
    """The SandboxTemplate of one memory tier. Its network policy is ours (network_policy), not the controller's
    default, so management is off."""
    return {
        "apiVersion": API_VERSION, "kind": "SandboxTemplate",
        "metadata": {"name": template_name(spec, tier), "namespace": spec.k8s_namespace,
                     "labels": kernel_labels(spec)},
        "spec": {
            "podTemplate": {"metadata": {"labels": kernel_labels(spec)},
                            "spec": pod_spec(spec, MEMORY_LIMITS[tier])},
            "networkPolicyManagement": "Unmanaged",
            "envVarsInjectionPolicy": "Disallowed",
            "volumeClaimTemplatesPolicy": "Disallowed",
        },
    }


def warm_pool(spec: KernelSpec, tier: str) -> dict[str, Any]:
    """The SandboxWarmPool that keeps spec.pools[tier] kernel pods of the tier started."""
    return {
        "apiVersion": API_VERSION, "kind": "SandboxWarmPool",
        "metadata": {"name": pool_name(spec, tier), "namespace": spec.k8s_namespace, "labels": kernel_labels(spec)},
        "spec": {"replicas": spec.pools[tier], "sandboxTemplateRef": {"name": template_name(spec, tier)},
                 "updateStrategy": {"type": "OnReplenish"}},
    }


def _label_value(value: str) -> str:
    return value if len(value) <= 63 and _LABEL_VALUE.match(value) else _slug(value)


def claim(spec: KernelSpec, sandbox_id: str, tier: str, labels: Mapping[str, str],
          shutdown_at: datetime) -> dict[str, Any]:
    """One sandbox's SandboxClaim. Selectable labels (namespace, sandbox id, project) are Kubernetes labels; every
    label the engine gives is also kept verbatim as an annotation (label values cannot hold arbitrary text)."""
    selectable = {f"{LABEL_PREFIX}namespace": _label_value(spec.namespace),
                  f"{LABEL_PREFIX}sandbox-id": _label_value(sandbox_id)}
    if labels.get("project"):
        selectable[f"{LABEL_PREFIX}project"] = _label_value(labels["project"])
    kept = {**labels, "id": sandbox_id, "namespace": spec.namespace}
    return {
        "apiVersion": API_VERSION, "kind": "SandboxClaim",
        "metadata": {"name": claim_name(sandbox_id), "namespace": spec.k8s_namespace, "labels": selectable,
                     "annotations": {f"{LABEL_PREFIX}{key}": value for key, value in kept.items()}},
        "spec": {
            "warmPoolRef": {"name": pool_name(spec, tier)},
            # A claim the server forgets (it died for good) still ends: the engine's maximum sandbox lifetime.
            "lifecycle": {"shutdownTime": shutdown_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "shutdownPolicy": "Delete"},
        },
    }


def labels_of(claim_object: Mapping[str, Any]) -> dict[str, str]:
    """The engine's labels of a claim (as claim() kept them), prefix stripped."""
    annotations = (claim_object.get("metadata") or {}).get("annotations") or {}
    return {key.removeprefix(LABEL_PREFIX): value for key, value in annotations.items()
            if key.startswith(LABEL_PREFIX)}


def selector(spec: KernelSpec) -> str:
    """The label selector of this server's claims."""
    return f"{LABEL_PREFIX}namespace={_label_value(spec.namespace)}"


def pod_selector(spec: KernelSpec) -> str:
    return ",".join(f"{key}={value}" for key, value in kernel_labels(spec).items())


def network_policy(spec: KernelSpec) -> dict[str, Any]:
    """Kernel pods accept no connection and open none: the server reaches them through the API server's exec,
    never the pod network (no DNS, no cluster, no internet)."""
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": policy_name(spec), "namespace": spec.k8s_namespace, "labels": kernel_labels(spec)},
        "spec": {"podSelector": {"matchLabels": kernel_labels(spec)}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [], "egress": []},
    }


def startup_objects(spec: KernelSpec) -> list[dict[str, Any]]:
    """What the backend applies at start: every tier's template and pool, and the network policy first (so no
    kernel pod ever runs unfenced)."""
    objects = [network_policy(spec)]
    for tier in spec.pools:
        objects += [template(spec, tier), warm_pool(spec, tier)]
    return objects
