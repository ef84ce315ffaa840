"""How the backend reads what the cluster says: a claim's or pod's conditions, a pod's kernel container state.
Pure functions over the API's objects (dicts or the client's models)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.sandbox.kubernetes.manifests import CONTAINER_NAME
from orchestrator.sandbox.runtime import ContainerState


def condition(conditions: list[Any] | None, kind: str) -> Mapping[str, Any]:
    """A condition (as a dict) of an object's status, or {} if it has none of that type."""
    for each in conditions or []:
        found = each if isinstance(each, dict) else each.to_dict()
        if found.get("type") == kind:
            return found
    return {}


def pod_state(pod: Any | None) -> ContainerState:
    """What a pod (a V1Pod, or None for a pod that is gone) says about its kernel container."""
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return ContainerState(False, None, False)
    for container in pod.status.container_statuses or []:
        if container.name == CONTAINER_NAME and container.state and container.state.terminated:
            ended = container.state.terminated
            return ContainerState(False, ended.exit_code, ended.reason == "OOMKilled")
    return ContainerState(pod.status.phase == "Running", None, False)


def gone(pod: Any | None) -> bool:
    """A bound claim's pod that will not run a cell again (a pod still starting is not gone)."""
    return not pod_state(pod).running and (pod is None or pod.status.phase != "Pending")


def container_running(pod: Any | None, name: str) -> bool:
    """Whether the container `name` of a pod (or None: gone) runs."""
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return False
    for container in pod.status.container_statuses or []:
        if container.name == name:
            return bool(container.state and container.state.running)
    return False
