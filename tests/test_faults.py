"""Faults that must not leak host resources or lose data."""

from __future__ import annotations

import glob
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import logs, run, running_server, sdk_client
from tests.datasets import scifact_abstracts


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


def fill(directory: Path, leave: int) -> Path:
    """Write zeros into `directory` until its filesystem has only `leave` bytes left."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while out.write(b"\0" * (64 << 10)):
                pass
        except OSError:
            pass
        out.truncate(max(0, out.tell() - leave))
    return filler


@pytest.mark.local_state
@pytest.mark.docker
def test_a_full_disk_while_indexing_fails_the_file_clearly_and_indexing_resumes(docker_ready: None,
                                                                                tmp_path: Path) -> None:
    """The server's index on a real 4 MiB tmpfs with room for adding a file but not for indexing it: the file
    ends `failed` with a server_error saying so, none of it is searchable, search keeps answering from what was
    indexed, and once space is back the same file is added again and found."""
    data = tmp_path / "data"
    (data / "retrieval").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(data / "retrieval")], check=True)
    try:
        with running_server(data, TOOLSHED_POOL_SIZE="0") as srv:
            client = sdk_client(srv)
            first, second = (client.files.create(file=(f"{name}.md", scifact_abstracts(*span).encode()),
                                                 purpose="assistants")
                             for name, span in (("first", (0, 1)), ("second", (1, 60))))
            store = client.vector_stores.create(name="small disk")
            indexed = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=first.id,
                                                                 poll_interval_ms=200)
            assert indexed.status == "completed", indexed.last_error
            question = scifact_abstracts(1, 1).split("\n\n")[1][:300]
            filler = fill(data / "retrieval", leave=128 << 10)
            added = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=second.id,
                                                               poll_interval_ms=200)
            assert added.status == "failed" and added.last_error is not None, added
            assert added.last_error.code == "server_error" and "disk was full" in added.last_error.message
            found = client.vector_stores.search(store.id, query=question)
            assert {hit.file_id for hit in found.data} == {first.id}
            filler.unlink()
            added = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=second.id,
                                                               poll_interval_ms=200)
            assert added.status == "completed", added.last_error
            assert client.vector_stores.search(store.id, query=question).data[0].file_id == second.id
    finally:
        subprocess.run(["umount", "--lazy", str(data / "retrieval")], check=False)
