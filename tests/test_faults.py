"""Faults that must not leak host resources or lose data."""

from __future__ import annotations

import glob
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import logs, run, running_server, sdk_client


def loop_devices(data_dir: Path) -> int:
    """Loop devices attached to disk images under `data_dir` (each sandbox's /mnt/data is one)."""
    count = 0
    for backing in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            count += Path(backing).read_text().strip().startswith(str(data_dir.resolve()))
        except OSError:
            continue  # detached meanwhile
    return count


def wait_for(condition, seconds: float = 20) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.docker
def test_sandboxes_release_their_loop_devices(docker_ready: None, tmp_path: Path) -> None:
    """Deleted, reclaimed and removed-from-outside sandboxes give back their mount and loop device; an expired
    sandbox's files stay readable (its disk is mounted for the read, then let go) and its next cell runs."""
    data = tmp_path / "data"
    with running_server(data, TOOLSHED_POOL_SIZE="0", TOOLSHED_REAP_INTERVAL="1") as server:
        client = sdk_client(server)
        assert loop_devices(data) == 0
        for _ in range(5):
            created = client.containers.create(name="cycle").id
            assert loop_devices(data) == 1
            client.containers.delete(created)
        assert loop_devices(data) == 0

        kept = client.containers.create(name="kept").id
        run(client, kept, "open('/mnt/data/kept.txt', 'w').write('still here')")
        subprocess.run(["docker", "rm", "-f", f"toolshed-{kept}"], check=True, capture_output=True)
        assert wait_for(lambda: client.containers.retrieve(kept).status == "expired")
        assert wait_for(lambda: loop_devices(data) == 0), "the reclaimed sandbox kept its loop device"
        [record] = client.containers.files.list(container_id=kept).data
        assert client.containers.files.content.retrieve(record.id, container_id=kept).read() == b"still here"
        # The read mounted the disk again; the reaper lets it go while the sandbox stays expired.
        assert wait_for(lambda: loop_devices(data) == 0), "the read left the expired sandbox's disk mounted"
        assert logs(run(client, kept, "print(open('/mnt/data/kept.txt').read())")).endswith("still here\n")
        assert loop_devices(data) == 1
        client.containers.delete(kept)
        assert loop_devices(data) == 0
