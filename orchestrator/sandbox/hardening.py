"""The limits every sandbox container gets, on whichever Docker Engine it runs, and the host paths masked in it;
runtime.hardened_host_config turns them, with the other protections, into the container's host config."""

from __future__ import annotations

from dataclasses import dataclass

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
GVISOR_TASKS_PER_PROCESS, GVISOR_OWN_TASKS = 8, 128
