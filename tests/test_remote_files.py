"""RemoteFiles (issue 33): /mnt/data of sandboxes on a Docker engine that shares no path with the server, reached
through an exec of the file agent in a keeper container, on a second dockerd over mutual TLS. Hostile entries are
planted from inside the keeper, as the sandbox uid, the way code in the sandbox would plant them."""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import partial

import docker
import docker.errors
import docker.types
import pytest

from orchestrator.sandbox.errors import SandboxNotFound
from orchestrator.sandbox.hardening import Limits
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.remote_container import create_data_volume
from orchestrator.sandbox.remote_files import SCAN_LIMIT, RemoteFiles, docker_agents
from orchestrator.sandbox.runtime import CONTAINER_DATA_DIR, hardened_host_config
from orchestrator.sandbox.safefs import FileStat, Scan, UnsafePath
from tests.conftest import Evidence
from tests.second_dockerd import SecondDockerd
from tests.test_remote_docker import engine  # noqa: F401 - the module fixture: one second dockerd per module

pytestmark = pytest.mark.docker

UID = 1000
KEEPER_LIMITS = Limits(128 << 20, 0.5, 32, "1m")
MiB = 1 << 20


def keeper_of(sandbox_id: str) -> str:
    return f"tsf-keeper-{sandbox_id}"


@contextmanager
def keeper(api: docker.APIClient, size_bytes: int) -> Iterator[str]:
    """A sandbox's files as a remote host keeps them (a tmpfs volume in a hardened `sleep`); the sandbox id."""
    sandbox_id = f"rf{uuid.uuid4().hex[:10]}"
    volume = create_data_volume(api, sandbox_id, size_bytes=size_bytes, uid=UID, labels={"test": "remote-files"})
    try:
        config = hardened_host_config(api, KEEPER_LIMITS, "runc",
                                      mounts=[docker.types.Mount(CONTAINER_DATA_DIR, volume, type="volume")])
        created = api.create_container(default_tag(), ["sleep", "infinity"], name=keeper_of(sandbox_id),
                                       user=f"{UID}:{UID}", host_config=config)
        api.start(created["Id"])
        yield sandbox_id
    finally:
        with suppress(docker.errors.NotFound):
            api.remove_container(keeper_of(sandbox_id), force=True)
        api.remove_volume(volume, force=True)


@pytest.fixture(scope="module")
def api(engine: SecondDockerd) -> docker.APIClient:  # noqa: F811 - pytest's fixture injection
    return engine.client().api


@pytest.fixture
def sandbox(api: docker.APIClient) -> Iterator[str]:
    with keeper(api, 64 * MiB) as sandbox_id:
        yield sandbox_id


@pytest.fixture
def files(api: docker.APIClient) -> RemoteFiles:
    return RemoteFiles(docker_agents(api, keeper_of, uid=UID))


def inside(api: docker.APIClient, sandbox_id: str, code: str) -> str:
    """Run Python in the keeper as the sandbox uid, in /mnt/data; its output."""
    exec_id = api.exec_create(keeper_of(sandbox_id), ["python3", "-c", code], user=f"{UID}:{UID}",
                              workdir=CONTAINER_DATA_DIR)["Id"]
    out = api.exec_start(exec_id).decode()
    assert api.exec_inspect(exec_id)["ExitCode"] == 0, out
    return out


def test_a_nested_file_is_written_read_scanned_and_removed(api: docker.APIClient, sandbox: str,
                                                           files: RemoteFiles) -> None:
    stat = files.write(sandbox, "a/b/c.txt", [b"hello ", b"", b"world"])
    got, chunks = files.read(sandbox, "a/b/c.txt")
    assert (stat.size, got, b"".join(chunks)) == (11, stat, b"hello world")
    assert files.scan(sandbox, max_entries=100, max_depth=8) == Scan({"a/b/c.txt": stat}, True)
    seen = inside(api, sandbox, "import os\ns = os.stat('a/b/c.txt')\nd = os.stat('a/b')\n"
                                "print(s.st_uid, s.st_ino, s.st_size, s.st_mtime_ns, oct(s.st_mode), d.st_uid)")
    assert seen.split() == ["1000", str(stat.inode), "11", str(stat.mtime_ns), "0o100644", "1000"]
    assert files.write(sandbox, "empty", []) == files.read(sandbox, "empty")[0]
    assert b"".join(files.read(sandbox, "empty")[1]) == b""
    assert [files.remove(sandbox, p) for p in ("a/b/c.txt", "a/b/c.txt", "nowhere/x")] == [True, False, False]
    with pytest.raises(UnsafePath):
        files.read(sandbox, "a/b/c.txt")


def test_a_5_mb_file_is_streamed_both_ways_without_being_held(api: docker.APIClient, sandbox: str,
                                                              files: RemoteFiles) -> None:
    data = os.urandom(5_000_000)
    cuts = [0, 2 * MiB, 2 * MiB + 1, 2 * MiB + 12_346, *range(3 * MiB, len(data), 256 << 10), len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]  # uneven, one over the agent's 1 MiB chunk
    tracemalloc.start()  # from here on, only what RemoteFiles allocates (and the chunks it returns)
    try:
        stat = files.write(sandbox, "big.bin", iter(pieces))
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        got, chunks = files.read(sandbox, "big.bin")
        received, sizes = hashlib.sha256(), []
        for chunk in chunks:
            received.update(chunk)
            sizes.append(len(chunk))
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    digest = hashlib.sha256(data).hexdigest()
    assert (stat.size, got.size, sum(sizes), received.hexdigest()) == (len(data), len(data), len(data), digest)
    assert inside(api, sandbox, "import hashlib\nprint(hashlib.sha256(open('big.bin', 'rb').read()).hexdigest())"
                  ).strip() == digest
    assert max(sizes) <= MiB and len(sizes) >= 5
    # A batch or a chunk or two in flight, never the whole 4.8 MiB.
    assert write_peak < 2 * MiB and read_peak < 4 * MiB, (write_peak, read_peak)


@pytest.mark.attack("links, a fifo, a folder and odd names in /mnt/data, scanned and read by the remote file agent")
def test_only_regular_files_are_scanned_or_read(api: docker.APIClient, sandbox: str, files: RemoteFiles,
                                                evidence: Evidence) -> None:
    inside(api, sandbox, "import os\nos.symlink('/etc/passwd', 'passwd')\nos.mkfifo('pipe')\nos.makedirs('folder/e')\n"
                         "os.symlink('/etc', 'etc')\nos.symlink('folder', 'flink')\nos.symlink('nowhere', 'dangling')\n"
                         "open('folder/e/f', 'w').write('f')\nopen('new\\nline \"q\".txt', 'w').write('nl')\n"
                         "open(b'\\xff.bin', 'w').close()")
    scan = files.scan(sandbox, max_entries=100, max_depth=8)
    assert scan is not None and scan.complete
    assert sorted(scan.files) == ["folder/e/f", 'new\nline "q".txt']
    stat, chunks = files.read(sandbox, 'new\nline "q".txt')  # a newline in a name does not break the framing
    assert (stat, b"".join(chunks)) == (scan.files['new\nline "q".txt'], b"nl")
    size, mtime_ns, inode = inside(api, sandbox, "import os\ns = os.stat('folder/e/f')\n"
                                                 "print(s.st_size, s.st_mtime_ns, s.st_ino)").split()
    assert scan.files["folder/e/f"] == FileStat(int(size), int(mtime_ns), int(inode))
    refused = {}
    for name in ("passwd", "pipe", "folder", "missing", "etc/passwd", "flink/e/f", "dangling", "folder/e/f/x"):
        start = time.monotonic()
        with pytest.raises(UnsafePath) as caught:
            files.read(sandbox, name)
        assert time.monotonic() - start < 10, f"{name} blocked the reader"
        refused[name] = str(caught.value)
    evidence(f"scan saw only {sorted(scan.files)}; refused: {refused!r}")


@pytest.mark.attack("a symlink planted where the server will write or remove a file on a remote host")
def test_a_planted_symlink_is_replaced_or_removed_never_followed(api: docker.APIClient, sandbox: str,
                                                                 files: RemoteFiles, evidence: Evidence) -> None:
    inside(api, sandbox, "import os\nos.symlink('/tmp/escaped', 'upload.txt')\nopen('victim.txt', 'w').write('v')\n"
                         "os.symlink('victim.txt', 'alias.txt')\nos.symlink('/tmp', 'tmplink')\n"
                         "os.symlink('victim.txt', 'doomed')")
    files.write(sandbox, "upload.txt", [b"data"])
    files.write(sandbox, "alias.txt", [b"new"])
    with pytest.raises(OSError) as caught:
        files.write(sandbox, "tmplink/x.txt", [b"x"])
    assert files.remove(sandbox, "doomed") is True
    seen = inside(api, sandbox, "import os\nprint(os.path.islink('upload.txt'), open('upload.txt').read(), "
                                "os.path.lexists('/tmp/escaped'), os.path.islink('alias.txt'), "
                                "open('alias.txt').read(), open('victim.txt').read(), os.path.lexists('/tmp/x.txt'), "
                                "os.path.lexists('doomed'))")
    assert seen.split() == ["False", "data", "False", "False", "new", "v", "False", "False"]
    evidence(f"links replaced or removed, targets untouched; a write through a linked folder: {caught.value!r}")


@pytest.mark.attack("paths out of /mnt/data given to the remote file operations")
def test_paths_out_of_the_sandbox_folder_are_refused(sandbox: str, files: RemoteFiles, evidence: Evidence) -> None:
    for path in ("../x", "/etc/passwd", "", ".", "a/../../x", "x\0y", "a\udcffb"):
        for operation in (partial(files.write, chunks=[b"x"]), files.read, files.remove):
            with pytest.raises(UnsafePath):
                operation(sandbox, path)
    assert files.scan(sandbox, max_entries=100, max_depth=8) == Scan({}, True)
    evidence("absolute, '..', '.', empty, NUL and unencodable paths refused; nothing was written")


@pytest.mark.attack("a planted module named like one the file agent imports")
def test_the_agent_imports_nothing_from_the_sandbox_folder(api: docker.APIClient, sandbox: str, files: RemoteFiles,
                                                          evidence: Evidence) -> None:
    trap = "open('/tmp/imported', 'w').write(__name__)\n"
    inside(api, sandbox, "".join(f"open({name!r}, 'w').write({trap!r})\n" for name in
                                 ("json.py", "types.py", "pathlib.py", "secrets.py", "stat.py", "dataclasses.py")))
    assert files.write(sandbox, "x.txt", [b"x"]) == files.read(sandbox, "x.txt")[0]
    assert files.scan(sandbox, max_entries=100, max_depth=8) is not None
    assert inside(api, sandbox, "import os\nprint(os.path.exists('/tmp/imported'))").strip() == "False"
    evidence("json.py, types.py, pathlib.py... planted in /mnt/data were not imported by the agent")


def test_a_failed_write_says_why_and_keeps_the_old_file(api: docker.APIClient, files: RemoteFiles) -> None:
    with keeper(api, 2 * MiB) as sandbox:
        old = files.write(sandbox, "keep.txt", [b"old"])
        inside(api, sandbox, "import os\nos.makedirs('dir/sub')")
        taken: list[int] = []
        upload = (taken.append(1) or os.urandom(256 << 10) for _ in range(1024))  # 256 MiB: far more than the disk
        def broken() -> Iterator[bytes]:
            yield b"x" * (300 << 10)
            raise RuntimeError("the client went away")

        with pytest.raises(OSError) as caught:
            files.write(sandbox, "keep.txt", upload)
        assert (caught.value.errno, caught.value.strerror) == (errno.ENOSPC, "No space left on device")
        # The agent answers as soon as the disk is full: the rest of the upload is not sent.
        assert len(taken) < 128, f"{len(taken) / 4} MiB taken from the upload"
        for path, error in (("dir", IsADirectoryError), ("keep.txt/below", NotADirectoryError)):
            with pytest.raises(error):
                files.write(sandbox, path, [b"x"])
        with pytest.raises(RuntimeError):
            files.write(sandbox, "keep.txt", broken())
        deadline = time.monotonic() + 10  # the agent drops the partial file once it sees the connection end
        while (scan := files.scan(sandbox, max_entries=100, max_depth=8)) != Scan({"keep.txt": old}, True):
            assert time.monotonic() < deadline, scan
            time.sleep(0.1)
        got, chunks = files.read(sandbox, "keep.txt")
        assert (got, b"".join(chunks)) == (old, b"old")


def test_a_keeper_stopped_or_gone_is_a_missing_sandbox(api: docker.APIClient, files: RemoteFiles) -> None:
    with keeper(api, MiB) as stopped, keeper(api, 64 * MiB) as gone:
        files.write(stopped, "x", [b"x"])
        api.stop(keeper_of(stopped), timeout=0)
        stat = files.write(gone, "big", (os.urandom(MiB) for _ in range(48)))
        _, chunks = files.read(gone, "big")
        received = len(next(chunks))
        api.remove_container(keeper_of(gone), force=True)
        with pytest.raises(SandboxNotFound):  # never a short file
            for chunk in chunks:
                received += len(chunk)
        assert received < stat.size
        for sandbox in (stopped, gone):
            for operation in (partial(files.write, path="x", chunks=[b"y"]), partial(files.read, path="x"),
                              partial(files.remove, path="x")):
                with pytest.raises(SandboxNotFound):
                    operation(sandbox)
            assert files.scan(sandbox, max_entries=10, max_depth=4) is None


@pytest.mark.attack("a tree made wide, deep, or of names long enough to swamp the server's scan")
def test_scans_are_bounded_and_say_so(api: docker.APIClient, sandbox: str, files: RemoteFiles,
                                      evidence: Evidence) -> None:
    inside(api, sandbox, "import os\nfor i in range(50): open(f'f{i}', 'w').close()\nos.makedirs('1/2/3')\n"
                         "os.chdir('1/2/3')\nfor _ in range(30): os.mkdir('d' * 250); os.chdir('d' * 250)\n"
                         "for i in range(2200): open(f'{i:05}' + 'f' * 240, 'w').close()")
    shallow = files.scan(sandbox, max_entries=1000, max_depth=2)
    assert shallow is not None and not shallow.complete and sorted(shallow.files) == sorted(f"f{i}" for i in range(50))
    wide = files.scan(sandbox, max_entries=10, max_depth=8)
    assert wide is not None and not wide.complete and 0 < len(wide.files) <= 10
    scan = files.scan(sandbox, max_entries=10_000, max_depth=40)
    assert scan is not None and not scan.complete
    listed = sum(len(name) for name in scan.files)
    assert 50 < len(scan.files) < 2250 and SCAN_LIMIT // 2 < listed < SCAN_LIMIT
    evidence(f"{len(scan.files)} of 2250 files listed, {listed} bytes of names (paths of up to "
             f"{max(map(len, scan.files))} bytes), marked incomplete")
