"""Stopping the servers tests start (PostgreSQL, SeaweedFS, a clean-install Toolshed): ask, then insist."""

from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen[bytes], ask: signal.Signals = signal.SIGTERM, grace: float = 30) -> None:
    """Send `ask`, wait up to `grace` seconds for the process to exit, then kill it."""
    process.send_signal(ask)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)
