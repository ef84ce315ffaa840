"""A fake kubelet for tests/kubernetes_fake.py: the pods the fake API server binds really run, each container of a
pod a Docker container of the local engine and each emptyDir one tmpfs volume its containers share, under the
pod spec's security context and limits. The network is off (everything goes through exec, tests/kubernetes_exec.py)
and the OCI runtime is runc whatever runtimeClassName says. Readiness probes are not run: a running container is a
ready one.

Everything made carries the label `toolshed-fake-kubelet=<label>`, so close() finds it all, leftovers of an
earlier run with the same label included."""

from __future__ import annotations

import base64
import copy
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
from docker.types import Mount

LABEL = "toolshed-fake-kubelet"
POD_LABEL = f"{LABEL}.pod"
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")
_SUFFIXES = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
             "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
# Docker's "not finished yet".
_ZERO_TIME = "0001-01-01T00:00:00Z"

# (namespace, secret name, key) -> the value, or None: how `valueFrom.secretKeyRef` is resolved.
SecretLookup = Callable[[str, str, str], "str | None"]


def quantity(text: str | int) -> float:
    """A Kubernetes quantity ("1Gi", "512Mi", "128M", "500m", "1.5") as a number."""
    found = _QUANTITY.match(str(text))
    if not found:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, suffix = float(found[1]), found[2]
    return number / 1000 if suffix == "m" else number * _SUFFIXES[suffix]


def k8s_time(docker_time: str) -> str | None:
    """Docker's RFC 3339 time with nanoseconds as the API's (seconds); None for Docker's zero time."""
    return None if docker_time.startswith(_ZERO_TIME[:10]) else docker_time[:19] + "Z"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_name(pod: str, container: str) -> str:
    return f"fakepod-{pod}-{container}"


@dataclass(frozen=True)
class Run:
    """What Docker says of one container of a pod (None: the container is gone)."""

    name: str
    state: dict[str, Any] | None
    container_id: str = ""
    image_id: str = ""


class Kubelet:
    """Runs pods (dicts as the API server stores them) as Docker containers, and reports on them."""

    def __init__(self, client: docker.DockerClient, *, label: str = "tests", runtime: str = "runc",
                 pod_pids_limit: int | None = 256) -> None:
        # The node's kubelet `podPidsLimit` (docs/kubernetes.md asks it of a cluster), here per container.
        self.docker, self.label, self.runtime, self.pod_pids_limit = client, label, runtime, pod_pids_limit
        # Containers lose_pod(oom=True) killed: reported as the kernel's OOM killer's work.
        self.oom_killed: set[str] = set()
        self.close()

    @property
    def api(self) -> docker.APIClient:
        return self.docker.api

    def _labels(self, pod: dict[str, Any]) -> dict[str, str]:
        return {LABEL: self.label, POD_LABEL: f"{pod['metadata']['namespace']}.{pod['metadata']['name']}"}

    # ---- starting -------------------------------------------------------------------------------------------

    def start(self, pod: dict[str, Any], secret: SecretLookup) -> None:
        """Create the pod's volumes and containers and start them all; on any failure remove what was made."""
        try:
            volumes = self._volumes(pod)
            made = [self._create(pod, spec, volumes, secret) for spec in pod["spec"]["containers"]]
            for container in made:
                container.start()
        except Exception:
            self.remove(pod)
            raise

    def _volumes(self, pod: dict[str, Any]) -> dict[str, str]:
        """One tmpfs volume per emptyDir (Docker's local driver mounts it once, shared by every container):
        pod volume name -> Docker volume name."""
        made = {}
        fs_group = (pod["spec"].get("securityContext") or {}).get("fsGroup")
        for volume in pod["spec"].get("volumes") or []:
            if "emptyDir" not in volume:
                raise ValueError(f"the fake kubelet has only emptyDir volumes, not {sorted(volume)}")
            # An emptyDir is world-writable; with an fsGroup it belongs to that group, setgid (the kubelet's
            # SetVolumeOwnership), so files made in it do too.
            options = ["nosuid", "nodev", f"mode=2777,gid={fs_group}" if fs_group is not None else "mode=0777"]
            if size := volume["emptyDir"].get("sizeLimit"):
                options.append(f"size={int(quantity(size))}")
            name = container_name(pod["metadata"]["name"], volume["name"])
            self.docker.volumes.create(name, driver="local", labels=self._labels(pod), driver_opts={
                "type": "tmpfs", "device": "tmpfs", "o": ",".join(options)})
            made[volume["name"]] = name
        return made

    def _create(self, pod: dict[str, Any], spec: dict[str, Any], volumes: dict[str, str],
                secret: SecretLookup) -> Any:
        pod_security = pod["spec"].get("securityContext") or {}
        security = pod_security | (spec.get("securityContext") or {})
        user = security.get("runAsUser")
        group = security.get("runAsGroup")
        limits = (spec.get("resources") or {}).get("limits") or {}
        memory = int(quantity(limits["memory"])) if "memory" in limits else None
        capabilities = security.get("capabilities") or {}
        return self.docker.containers.create(
            spec["image"], name=container_name(pod["metadata"]["name"], spec["name"]),
            # Kubernetes' command replaces the image's ENTRYPOINT and args its CMD.
            entrypoint=spec.get("command"), command=spec.get("args"), working_dir=spec.get("workingDir"),
            environment=self._env(pod["metadata"]["namespace"], spec, secret),
            user=None if user is None else f"{user}:{group}" if group is not None else str(user),
            group_add=[str(pod_security["fsGroup"])] if "fsGroup" in pod_security else None,
            read_only=bool(security.get("readOnlyRootFilesystem")),
            cap_drop=capabilities.get("drop"), cap_add=capabilities.get("add"),
            security_opt=["no-new-privileges"] if security.get("allowPrivilegeEscalation") is False else None,
            network_mode="none", mem_limit=memory, memswap_limit=memory,  # no swap, as on a kubelet's node
            nano_cpus=int(quantity(limits["cpu"]) * 1e9) if "cpu" in limits else None,
            runtime=self.runtime, init=False, labels=self._labels(pod), pids_limit=self.pod_pids_limit,
            mounts=[Mount(mount["mountPath"], volumes[mount["name"]], type="volume",
                          read_only=bool(mount.get("readOnly"))) for mount in spec.get("volumeMounts") or []])

    @staticmethod
    def _env(namespace: str, spec: dict[str, Any], secret: SecretLookup) -> dict[str, str]:
        env = {}
        for var in spec.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
            elif ref := (var.get("valueFrom") or {}).get("secretKeyRef"):
                value = secret(namespace, ref["name"], ref["key"])
                if value is None and not ref.get("optional"):
                    raise ValueError(f'secret "{ref["name"]}" (key {ref["key"]}) not found for {var["name"]}')
                if value is not None:
                    env[var["name"]] = value
        return env

    # ---- reporting ------------------------------------------------------------------------------------------

    def runs(self, pod: dict[str, Any]) -> list[Run]:
        found = []
        for spec in pod["spec"]["containers"]:
            name = container_name(pod["metadata"]["name"], spec["name"])
            try:
                attrs = self.api.inspect_container(name)
            except docker.errors.NotFound:
                found.append(Run(spec["name"], None))
                continue
            state = dict(attrs["State"], OOMKilled=attrs["State"]["OOMKilled"] or name in self.oom_killed)
            found.append(Run(spec["name"], state, attrs["Id"], attrs["Image"]))
        return found

    def status(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The pod's status (the one stored is the base) as its containers make it now."""
        runs = self.runs(pod)
        status = copy.deepcopy(pod["status"])
        template = (status.get("containerStatuses") or [{}])[0]
        images = {spec["name"]: spec["image"] for spec in pod["spec"]["containers"]}
        status["containerStatuses"] = [_container_status(template, run, images[run.name]) for run in runs]
        running = [bool(run.state and run.state["Running"]) for run in runs]
        failed = any(not run.state or run.state["ExitCode"] != 0 for run in runs)
        waiting = any(run.state and run.state["Status"] == "created" for run in runs)
        status["phase"] = ("Running" if any(running) else "Pending" if waiting else "Failed" if failed
                           else "Succeeded")
        ready = all(running)
        reason = "ContainersNotReady" if any(running) else "PodFailed" if failed else "PodCompleted"
        for condition in status.get("conditions") or []:
            if condition["type"] in ("Ready", "ContainersReady"):
                if condition["status"] != str(ready):
                    condition["lastTransitionTime"] = now()
                condition["status"] = str(ready)
                if ready:
                    condition.pop("reason", None)
                else:
                    condition["reason"] = reason
        return status

    # ---- ending ---------------------------------------------------------------------------------------------

    def kill(self, pod: dict[str, Any], container: str, *, oom: bool = False) -> None:
        """SIGKILL one container; with oom, report it as OOM-killed (a real OOM kill needs the memory spent)."""
        name = container_name(pod["metadata"]["name"], container)
        if oom:
            self.oom_killed.add(name)
        try:
            self.api.kill(name)
            self.api.wait(name, timeout=30)
        except docker.errors.APIError:
            pass  # gone or already stopped

    def remove(self, pod: dict[str, Any]) -> None:
        """Remove the pod's containers (forcibly: a grace period of 0), then its volumes."""
        self._remove({POD_LABEL: self._labels(pod)[POD_LABEL]})

    def close(self) -> None:
        """Remove every container and volume of this label."""
        self._remove({})

    def _remove(self, match: dict[str, str]) -> None:
        labels = [f"{key}={value}" for key, value in ({LABEL: self.label} | match).items()]
        for container in self.docker.containers.list(all=True, filters={"label": labels}):
            try:
                container.remove(force=True, v=True)
            except docker.errors.APIError as error:
                if error.status_code not in (404, 409):  # 409: another request's reap is removing it already
                    raise
            self.oom_killed.discard(container.name)
        for volume in self.docker.volumes.list(filters={"label": labels}):
            try:
                volume.remove(force=True)
            except docker.errors.APIError as error:
                if error.status_code not in (404, 409):  # 409: in use by a container the other reap is removing
                    raise


def _container_status(template: dict[str, Any], run: Run, image: str) -> dict[str, Any]:
    status = copy.deepcopy(template) | {"name": run.name, "image": image, "restartCount": 0, "lastState": {}}
    if run.container_id:
        status |= {"containerID": f"docker://{run.container_id}", "imageID": f"docker-pullable://{run.image_id}"}
    state = run.state
    if state is None:  # what the kubelet says of a container it lost track of
        status["state"] = {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                          "message": "The container could not be located when the pod was "
                                                     "terminated", "startedAt": None, "finishedAt": None}}
    elif state["Running"]:
        status["state"] = {"running": {"startedAt": k8s_time(state["StartedAt"])}}
    elif state["Status"] == "created":
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
    else:
        code = state["ExitCode"]
        reason = "OOMKilled" if state["OOMKilled"] else "Completed" if code == 0 else "Error"
        status["state"] = {"terminated": {"exitCode": code, "reason": reason,
                                          "startedAt": k8s_time(state["StartedAt"]),
                                          "finishedAt": k8s_time(state["FinishedAt"]),
                                          **({"containerID": status["containerID"]} if run.container_id else {})}}
    running = bool(state and state["Running"])
    return status | {"ready": running, "started": running}


def secret_value(objects: dict[tuple[str, str, str], dict[str, Any]], lock: threading.RLock) -> SecretLookup:
    """How a fake cluster's stored Secrets resolve a secretKeyRef (data is base64, stringData plain)."""
    def lookup(namespace: str, name: str, key: str) -> str | None:
        with lock:
            found = copy.deepcopy(objects.get(("secrets", namespace, name)) or {})
        if key in (found.get("stringData") or {}):
            return str(found["stringData"][key])
        data = (found.get("data") or {}).get(key)
        return None if data is None else base64.b64decode(data).decode()
    return lookup
