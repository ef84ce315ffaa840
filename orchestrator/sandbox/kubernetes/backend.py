"""Sandboxes as kernel pods in a Kubernetes cluster through agent-sandbox (with pod_exec.py, the only modules
that import `kubernetes`). One SandboxClaim per sandbox takes a ready pod from a SandboxWarmPool; the pod is
reached through the API server's exec (host.py), never over the pod network.

Its verbs are the cluster's side of a sandbox (create / state / remove / list_labels / ping) plus apply() at
start, wait_ready(), pod_of() and lost(). Every client failure becomes one of the engine's errors in
translate().
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from orchestrator.sandbox.errors import EngineUnavailable, InvalidRequest, SandboxNotFound, SandboxStartFailed
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.kubernetes import manifests
from orchestrator.sandbox.kubernetes.api_errors import UNREACHABLE, translate
from orchestrator.sandbox.kubernetes.manifests import GROUP, VERSION, KernelSpec
from orchestrator.sandbox.kubernetes.status import condition, container_running, gone, pod_state
from orchestrator.sandbox.runtime import ContainerState
from orchestrator.sandbox.workspace import parse_size

PLURALS = {"SandboxTemplate": "sandboxtemplates", "SandboxWarmPool": "sandboxwarmpools",
           "SandboxClaim": "sandboxclaims"}


class KubernetesBackend:
    """Applies the kernel template, pools and policy; claims, watches and releases one kernel pod per sandbox."""

    def __init__(self, api: kubernetes.client.ApiClient, spec: KernelSpec, *, ready_timeout: float = 60.0,
                 poll_interval: float = 0.25, max_lifetime: float = 24 * 3600.0,
                 request_timeout: float = 30.0) -> None:
        self._spec = spec
        self.api_client, self.k8s_namespace = api, spec.k8s_namespace  # for the pods' execs (host.py)
        self._custom = kubernetes.client.CustomObjectsApi(api)
        self._core = kubernetes.client.CoreV1Api(api)
        self._networking = kubernetes.client.NetworkingV1Api(api)
        self._version = kubernetes.client.VersionApi(api)
        self._ready_timeout = ready_timeout
        self._poll = poll_interval
        self._max_lifetime = max_lifetime
        self._timeout = request_timeout

    @classmethod
    def from_kubeconfig(cls, spec: KernelSpec, path: str | None = None, **options: Any) -> KubernetesBackend:
        """A backend on the cluster `path` names (a kubeconfig file), or, with no path, on the cluster this
        process runs in (its service account)."""
        try:
            if path is None:
                kubernetes.config.load_incluster_config()
                api = kubernetes.client.ApiClient()
            else:
                api = kubernetes.config.new_client_from_config(config_file=path)
        except kubernetes.config.ConfigException as exc:
            raise EngineUnavailable(f"No usable Kubernetes configuration: {exc}") from exc
        return cls(api, spec, **options)

    @property
    def namespace(self) -> str:
        """The label value that marks this server's claims among every claim of the cluster."""
        return self._spec.namespace

    def ping(self) -> bool:
        try:
            self._version.get_code(_request_timeout=self._timeout)
            return True
        except (ApiException, *UNREACHABLE):
            return False

    # ---- start-up ------------------------------------------------------------------------------------------

    def apply(self) -> None:
        """Create, or bring up to date, the policy, templates and pools (idempotent: run at every start)."""
        for body in manifests.startup_objects(self._spec):
            try:
                self._apply(body)
            except (ApiException, *UNREACHABLE) as exc:
                raise translate(exc) from exc

    def _apply(self, body: dict[str, Any]) -> None:
        name, ns = body["metadata"]["name"], self._spec.k8s_namespace
        create, read, replace = self._verbs(body["kind"])
        try:
            create(ns, body)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        # It exists (a previous start, or another replica): an update, conditional on the version just read.
        for attempt in range(3):
            current = read(name, ns)
            # Custom objects come back as dicts, core ones as the client's models.
            body["metadata"]["resourceVersion"] = (current["metadata"]["resourceVersion"] if isinstance(current, dict)
                                                   else current.metadata.resource_version)
            try:
                replace(name, ns, body)
                return
            except ApiException as exc:
                if exc.status != 409 or attempt == 2:
                    raise

    def _verbs(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        """Create, read and replace for one kind of object the backend writes."""
        t = self._timeout
        if kind == "NetworkPolicy":
            api = self._networking
            return (lambda ns, body: api.create_namespaced_network_policy(ns, body, _request_timeout=t),
                    lambda name, ns: api.read_namespaced_network_policy(name, ns, _request_timeout=t),
                    lambda name, ns, body: api.replace_namespaced_network_policy(name, ns, body, _request_timeout=t))
        plural, custom = PLURALS[kind], self._custom
        return (lambda ns, body: custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, body,
                                                                        _request_timeout=t),
                lambda name, ns: custom.get_namespaced_custom_object(GROUP, VERSION, ns, plural, name,
                                                                     _request_timeout=t),
                lambda name, ns, body: custom.replace_namespaced_custom_object(GROUP, VERSION, ns, plural, name,
                                                                               body, _request_timeout=t))

    # ---- one sandbox ---------------------------------------------------------------------------------------

    def _tier(self, limits: Limits) -> str:
        """The pool a sandbox with these limits is claimed from; limits the template cannot give are refused."""
        spec = self._spec
        tier = manifests.tier_of(limits.memory_bytes)
        if tier is None or tier not in spec.pools:
            raise InvalidRequest(f"This cluster has no kernel pool of {limits.memory_bytes >> 20} MiB "
                                 f"(pools: {', '.join(spec.pools)}).", param="memory_limit")
        asked = (limits.cpus, limits.pids, parse_size(limits.tmp_size))
        if asked != (spec.cpus, spec.pids, parse_size(spec.tmp_size)):
            raise InvalidRequest(f"The kernel template has cpus={spec.cpus}, pids={spec.pids}, "
                                 f"tmp={spec.tmp_size}; a claim cannot change them (asked {limits}).")
        return tier

    def create(self, sandbox_id: str, *, limits: Limits, labels: dict[str, str]) -> tuple[str, str]:
        """Claim a kernel pod for the sandbox and wait until it is ready; its name and uid. A pod that does not become
        ready in time is given back and SandboxStartFailed raised."""
        shutdown = datetime.now(UTC) + timedelta(seconds=self._max_lifetime)
        body = manifests.claim(self._spec, sandbox_id, self._tier(limits), labels, shutdown)
        try:
            self._custom.create_namespaced_custom_object(GROUP, VERSION, self._spec.k8s_namespace,
                                                         PLURALS["SandboxClaim"], body, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status != 409:  # 409: an earlier attempt's claim for this very id; wait for it
                raise translate(exc) from exc
        except UNREACHABLE as exc:
            raise translate(exc) from exc
        try:
            return self.wait_ready(sandbox_id, self._ready_timeout)
        except SandboxStartFailed:
            self.remove(sandbox_id)
            raise

    def renew(self, sandbox_id: str) -> None:
        """Move the claim's shutdownTime to now + the maximum lifetime: a claim outlives its kernel's reclaims and
        restarts, so the cluster's backstop (for a server gone for good) counts from the latest start."""
        shutdown = (datetime.now(UTC) + timedelta(seconds=self._max_lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for attempt in range(3):
            claim = self._claim(sandbox_id)
            claim["spec"].setdefault("lifecycle", {})["shutdownTime"] = shutdown
            try:
                self._custom.replace_namespaced_custom_object(
                    GROUP, VERSION, self._spec.k8s_namespace, PLURALS["SandboxClaim"],
                    manifests.claim_name(sandbox_id), claim, _request_timeout=self._timeout)
                return
            except ApiException as exc:
                if exc.status != 409 or attempt == 2:
                    raise translate(exc, sandbox_id) from exc
            except UNREACHABLE as exc:
                raise translate(exc) from exc

    def _claim(self, sandbox_id: str) -> dict[str, Any]:
        try:
            return dict(self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self._spec.k8s_namespace, PLURALS["SandboxClaim"],
                manifests.claim_name(sandbox_id), _request_timeout=self._timeout))
        except (ApiException, *UNREACHABLE) as exc:
            raise translate(exc, sandbox_id) from exc

    def _pod(self, name: str) -> Any | None:
        """The pod, or None if it is gone."""
        try:
            return self._core.read_namespaced_pod(name, self._spec.k8s_namespace, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc) from exc
        except UNREACHABLE as exc:
            raise translate(exc) from exc

    def pod_of(self, sandbox_id: str, *, ready: bool = False) -> tuple[str, str] | None:
        """The name and uid of the sandbox's pod while the claim is bound to a pod that is there and not ended;
        with `ready`, only once both are Ready (a pod Ready a moment ago and not now, say its node is late with a
        heartbeat, is still there). None otherwise."""
        status = self._claim(sandbox_id).get("status") or {}
        sandbox = status.get("sandbox") or {}
        if not sandbox.get("name") or (ready and condition(status.get("conditions"), "Ready").get("status") != "True"):
            return None
        pod = self._pod(sandbox["name"])
        if pod is None or pod.metadata.deletion_timestamp is not None or pod.status.phase in ("Failed", "Succeeded"):
            return None
        if ready and condition(pod.status.conditions, "Ready").get("status") != "True":
            return None
        return str(pod.metadata.name), str(pod.metadata.uid)

    def claimed(self, sandbox_id: str) -> bool:
        """Whether the sandbox has a claim (bound or not)."""
        try:
            self._claim(sandbox_id)
            return True
        except SandboxNotFound:
            return False

    def container_running(self, pod: str, container: str) -> bool | None:
        """Whether one container of a pod runs; None when the API cannot tell now."""
        try:
            return container_running(self._pod(pod), container)
        except EngineUnavailable:
            return None

    def wait_ready(self, sandbox_id: str, timeout: float) -> tuple[str, str]:
        """Poll until the claim is bound and its pod Ready, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.pod_of(sandbox_id, ready=True)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise SandboxStartFailed(self._why_not_ready(sandbox_id, timeout))
            time.sleep(min(self._poll, max(0.0, deadline - time.monotonic())))

    def _why_not_ready(self, sandbox_id: str, timeout: float) -> str:
        status = self._claim(sandbox_id).get("status") or {}
        ready = condition(status.get("conditions"), "Ready")
        said = f"{ready.get('reason')}: {ready.get('message')}" if ready else "no Ready condition yet"
        return (f"The kernel pod of sandbox {sandbox_id} was not ready within {timeout:g} s (claim "
                f"{manifests.claim_name(sandbox_id)}: {said}). Is the warm pool starved, or the image missing?")

    def state(self, sandbox_id: str) -> ContainerState:
        """Running while the claimed pod's kernel runs; a pod that is gone reads as stopped (lost)."""
        name = ((self._claim(sandbox_id).get("status") or {}).get("sandbox") or {}).get("name")
        pod = self._pod(name) if name else None
        return pod_state(pod)

    def remove(self, sandbox_id: str) -> None:
        """Give the claim back; its pod goes with it (the claim owns it). A claim already gone is fine."""
        try:
            self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, self._spec.k8s_namespace, PLURALS["SandboxClaim"], manifests.claim_name(sandbox_id),
                _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise translate(exc, sandbox_id) from exc
        except UNREACHABLE as exc:
            raise translate(exc) from exc

    # ---- all of this server's sandboxes --------------------------------------------------------------------

    def _claims(self) -> list[dict[str, Any]]:
        try:
            found = self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self._spec.k8s_namespace, PLURALS["SandboxClaim"],
                label_selector=manifests.selector(self._spec), _request_timeout=self._timeout)
        except (ApiException, *UNREACHABLE) as exc:
            raise translate(exc) from exc
        return list(found.get("items") or [])

    def list_labels(self) -> list[dict[str, str]]:
        """The engine's labels of every claim of this namespace, bound or not."""
        return [manifests.labels_of(item) for item in self._claims()]

    def lost(self) -> list[str]:
        """Ids of the sandboxes whose claim was bound but whose pod is gone or stopped (evicted, node lost, OOM)."""
        try:
            pods = self._core.list_namespaced_pod(self._spec.k8s_namespace,
                                                  label_selector=manifests.pod_selector(self._spec),
                                                  _request_timeout=self._timeout).items
        except (ApiException, *UNREACHABLE) as exc:
            raise translate(exc) from exc
        by_name = {pod.metadata.name: pod for pod in pods}
        lost = []
        for item in self._claims():
            name = ((item.get("status") or {}).get("sandbox") or {}).get("name")
            if name and gone(by_name.get(name)):
                lost.append(manifests.labels_of(item).get("id", ""))
        return sorted(lost)

