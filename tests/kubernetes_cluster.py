"""The state of tests/kubernetes_fake.py's API server and what the cluster does on its own: the agent-sandbox
controller binds a new claim, after `bind_after` seconds, to a Running pod of its pool's template whose Ready
condition is True (unless `bind` is False), and deleting a claim deletes its pod. With a `kubelet`
(tests/kubernetes_kubelet.py) the pods really run, as Docker containers, and their status is what Docker says."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.kubernetes_kubelet import Kubelet, secret_value

SHAPES = Path(__file__).resolve().parent / "kubernetes"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shape(name: str) -> dict[str, Any]:
    return json.loads((SHAPES / name).read_text())


class FakeCluster:
    """The API server's state and behaviour, under one lock."""

    def __init__(self, *, bind: bool = True, bind_after: float = 0.2, crds: bool = True,
                 kubelet: Kubelet | None = None) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.bind, self.bind_after, self.crds, self.kubelet = bind, bind_after, crds, kubelet
        self.lock = threading.RLock()
        self.errors: list[str] = []  # pods the kubelet could not start
        self.doomed: list[dict[str, Any]] = []  # deleted pods whose containers are still to be removed
        self._versions = itertools.count(1000)
        self._ips = itertools.count(10)
        self.requests: list[tuple[str, str]] = []

    def stamp(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    # ---- the controller's part ---------------------------------------------------------------------------

    def claim_created(self, ns: str, claim: dict[str, Any]) -> None:
        if self.bind:
            threading.Timer(self.bind_after, self.bind_claim, (ns, claim["metadata"]["name"])).start()

    def bind_claim(self, ns: str, name: str) -> None:
        """What the claim controller does: a pod from the pool's template, Ready, and the claim's status. The
        kubelet starts the pod first, outside the lock (it takes a while); a claim deleted meanwhile loses it."""
        with self.lock:
            claim = self.objects.get(("sandboxclaims", ns, name))
            if claim is None:
                return
            pod = self._pod_of(ns, claim)
        if self.kubelet:
            try:
                self.kubelet.start(pod, secret_value(self.objects, self.lock))
            except Exception as exc:  # noqa: BLE001 - the claim stays unbound, as with a pod that cannot start
                self.errors.append(f"pod {pod['metadata']['name']}: {exc}")
                return
            pod["status"] = self.kubelet.status(pod)
        with self.lock:
            if self.objects.get(("sandboxclaims", ns, name)) is not claim:
                self.doomed.append(pod)
            else:
                self.objects[("pods", ns, pod["metadata"]["name"])] = pod
                claim["status"] = shape("claim_status_bound.json")
                claim["status"]["sandbox"] = {"name": pod["metadata"]["name"], "podIPs": [pod["status"]["podIP"]]}
                self.stamp(claim)
        self.reap()

    def _pod_of(self, ns: str, claim: dict[str, Any]) -> dict[str, Any]:
        """A new pod of the claim's pool's template."""
        pool = self.objects[("sandboxwarmpools", ns, claim["spec"]["warmPoolRef"]["name"])]
        template = self.objects[("sandboxtemplates", ns, pool["spec"]["sandboxTemplateRef"]["name"])]
        sandbox = f"{pool['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        ip = f"10.244.1.{next(self._ips)}"
        pod = shape("pod_ready.json")
        pod["metadata"] |= {"name": sandbox, "namespace": ns, "uid": str(uuid.uuid4()),
                            "creationTimestamp": now(),
                            "labels": dict(template["spec"]["podTemplate"]["metadata"]["labels"])}
        pod["spec"] = copy.deepcopy(template["spec"]["podTemplate"]["spec"])
        pod["status"] |= {"podIP": ip, "podIPs": [{"ip": ip}], "startTime": now()}
        self.stamp(pod)
        return pod

    def lose_pod(self, ns: str, name: str, *, oom: bool = False) -> None:
        """The node or the kernel went: the pod is deleted (evicted, node gone) or, with oom, its kernel killed
        (with the kubelet: its "kernel" container, else its first, is SIGKILLed and reported OOM-killed)."""
        with self.lock:
            if not oom:
                self.doomed.append(self.objects.pop(("pods", ns, name)))
            elif self.kubelet:
                pod = copy.deepcopy(self.objects[("pods", ns, name)])
            else:
                pod = self.objects[("pods", ns, name)]
                pod["status"] |= shape("pod_oom_killed_status.json")
                self.stamp(pod)
        if oom and self.kubelet:
            names = [spec["name"] for spec in pod["spec"]["containers"]]
            self.kubelet.kill(pod, "kernel" if "kernel" in names else names[0], oom=True)
            self.refresh(ns, name)
        self.reap()

    def refresh(self, ns: str, name: str | None) -> None:
        """The kubelet's report: the status of the pod `name` (or of every pod of `ns`) from its containers."""
        if not self.kubelet:
            return
        with self.lock:
            pods = [copy.deepcopy(pod) for pod in self.pods(ns) if name in (None, pod["metadata"]["name"])]
        for pod in pods:
            pod["status"] = self.kubelet.status(pod)
            with self.lock:
                current = self.objects.get(("pods", ns, pod["metadata"]["name"]))
                if current is not None and current["metadata"]["uid"] == pod["metadata"]["uid"] and \
                        current["status"] != pod["status"]:
                    current["status"] = pod["status"]
                    self.stamp(current)

    def reap(self) -> None:
        """Remove the containers of deleted pods (outside the lock: it takes a while)."""
        with self.lock:
            doomed, self.doomed = self.doomed, []
        for pod in doomed:
            if self.kubelet:
                self.kubelet.remove(pod)

    def pods(self, ns: str) -> list[dict[str, Any]]:
        with self.lock:
            return [obj for (plural, space, _), obj in self.objects.items() if plural == "pods" and space == ns]
