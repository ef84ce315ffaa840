"""What every sandbox container gets, on whichever Docker Engine it runs: no network, a non-root uid (set at
create), a read-only root filesystem, no capabilities, no privilege escalation, a private IPC namespace, masked
host paths, pid, memory and CPU limits, and the OCI runtime chosen (runsc: gVisor)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker

# Docker's own defaults, plus what would let one sandbox see the others: each sandbox's disk is a loop device
# whose sysfs entry names its backing file (the host path, with the sandbox id), and /proc/diskstats shows every
# device's activity. Folders are hidden under an empty read-only tmpfs, files behind /dev/null.
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap", "/proc/diskstats", "/proc/partitions", "/sys/block", "/sys/class/block",
    "/sys/dev/block", "/sys/devices/virtual/block"]


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to every sandbox container."""

    memory_bytes: int
    cpus: float
    pids: int
    tmp_size: str


# Under gVisor the host's pids limit counts gVisor's tasks (~55, and ~6 per sandbox process) and, reached, kills
# the whole sandbox (exit 2); so the sandbox's limit is RLIMIT_NPROC, which gVisor counts inside (fork gets EAGAIN),
# and the host's is set above what that many processes cost.
_GVISOR_TASKS_PER_PROCESS, _GVISOR_OWN_TASKS = 8, 128


def hardened_host_config(api: docker.APIClient, limits: Limits, oci_runtime: str, **storage: Any) -> dict:
    """Every protection a sandbox container gets under `oci_runtime`; `storage` is where its files live (`binds`:
    host folders, or `mounts`: a volume on an engine that shares no path with the server)."""
    gvisor = oci_runtime != "runc"
    host_config: dict[str, Any] = api.create_host_config(
        init=True,  # tini reaps orphans and exits with the kernel, so a dead kernel is a dead container
        network_mode="none",
        ipc_mode="private",
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_size},mode=1777"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        pids_limit=limits.pids * _GVISOR_TASKS_PER_PROCESS + _GVISOR_OWN_TASKS if gvisor else limits.pids,
        mem_limit=limits.memory_bytes,
        memswap_limit=limits.memory_bytes,
        nano_cpus=int(limits.cpus * 1e9),
        # Under runc, RLIMIT_NPROC would count every process of the uid on the host: gVisor only.
        ulimits=[docker.types.Ulimit(name="nofile", soft=4096, hard=4096)] + (
            [docker.types.Ulimit(name="nproc", soft=limits.pids, hard=limits.pids)] if gvisor else []),
        runtime=oci_runtime,
        **storage,
    )
    # Not in docker-py's helper; the engine replaces its default list with this one.
    host_config["MaskedPaths"] = MASKED_PATHS
    return host_config
