"""What the user is told when the engine, not their code, changed their sandbox: one place for every text."""

from __future__ import annotations

import signal

from orchestrator.sandbox.models import Sandbox

RESET = "a fresh kernel was started. Variables and imports were lost; files in /mnt/data were kept."
LOST = "The kernel was restarted; variables and imports were lost (files in /mnt/data were kept)."
STOPPED = f"This sandbox's container stopped while idle (for example, the Docker engine restarted); {RESET}"
HOST_LOST = ("The machine running this sandbox stopped answering, and the sandbox was lost with it: its variables "
             "and its files in /mnt/data are gone. The next call starts a fresh sandbox on another machine.")
FILES_LOST = ("What held this sandbox's files is gone (its Docker engine restarted, or its pod was evicted or lost "
              "its node), and the files in /mnt/data with it: a fresh sandbox was started, with no variables, "
              "imports or files.")
CHANNEL_LOST = ("The connection to the sandbox's kernel was lost during this cell (the kernel itself still runs): "
                "the rest of the cell's output is lost, and the next call reconnects to it, variables intact.")
KERNEL_STOPPED = ("The sandbox's kernel had stopped and was restarted: variables and imports were lost (files in "
                  "/mnt/data were kept).")


def expired(sandbox: Sandbox) -> str:
    return f"This sandbox was idle for {sandbox.expires_after_minutes} minutes and was reclaimed; {RESET}"


def too_old(max_lifetime: float) -> str:
    return f"This sandbox reached the maximum lifetime of {max_lifetime / 3600:g} hours and was recycled; {RESET}"


def evicted(limit: int) -> str:
    return f"This sandbox was reclaimed to make room for others (this server runs at most {limit} at once); {RESET}"


def stuck(timeout: float) -> str:
    return (f"Execution exceeded the {timeout:g} s timeout and did not respond to an interrupt; the kernel was "
            "restarted, so variables and imports were lost (files in /mnt/data were kept).")


def describe_exit(code: int | None) -> str:
    if code is not None and code > 128:
        try:
            return f"killed by {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    return f"exit code {code}"
