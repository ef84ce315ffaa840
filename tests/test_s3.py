"""Stored files' bytes in a real S3-compatible server (SeaweedFS, tests/s3_server.py): the blob backend itself,
then a real `toolshed serve` on the bucket driven by the openai SDK, checked against the bucket with boto3."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.db import Database
from orchestrator.localserver import Server
from orchestrator.services.blob_cache import BlobCache
from orchestrator.services.projects import OverLimit
from orchestrator.services.s3_blobs import Bucket, S3Blobs
from orchestrator.services.storage import FileNotFound, FileStore
from tests.conftest import Evidence, logs, run, running_server, sdk_client
from tests.s3_server import S3Server, free_port, new_bucket_name, running_s3_server  # noqa: F401 - s3_server

pytestmark = pytest.mark.s3
_MIB = 1 << 20


def _bucket(s3: S3Server, name: str) -> Bucket:
    return Bucket(name, s3.endpoint_url, "us-east-1", s3.access_key_id, s3.secret_access_key)


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def shared(s3_server: S3Server) -> Bucket:
    """One bucket for the backend's tests, which use ids of their own (each bucket costs the server volumes)."""
    return _bucket(s3_server, new_bucket_name())


def _stage(blobs: S3Blobs, file_id: str, data: bytes) -> None:
    blobs.partial(file_id).write_bytes(data)
    blobs.put(file_id)


def test_the_backend_creates_its_bucket_and_puts_reads_and_deletes(s3_server: S3Server, tmp_path: Path) -> None:
    name = new_bucket_name()
    blobs = S3Blobs(_bucket(s3_server, name), tmp_path / "cache", 64 * _MIB)
    data = os.urandom(20 * _MIB + 5)  # past the 8 MiB part size: a multipart upload
    _stage(blobs, "file-a", data)
    assert s3_server.keys(name) == ["files/file-a"]
    assert not blobs.partial("file-a").exists()
    blobs.cache.discard("file-a")  # the next read has to come from the bucket
    assert not (tmp_path / "cache" / "file-a").exists()
    assert blobs.path("file-a").read_bytes() == data
    blobs.delete("file-a")
    assert s3_server.keys(name) == []
    assert not (tmp_path / "cache" / "file-a").exists()


def test_the_cache_keeps_the_most_recently_used_within_its_size(shared: Bucket, tmp_path: Path) -> None:
    blobs = S3Blobs(shared, tmp_path / "cache", 5 * _MIB)
    for name in ("one", "two"):
        _stage(blobs, name, name.encode() * _MIB)  # 3 MiB each
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["two"]
    assert blobs.path("one").read_bytes() == b"one" * _MIB  # fetched again, and "two" makes room
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["one"]
    assert blobs.cache.total == 3 * _MIB


def test_a_start_sweeps_cached_copies_of_deleted_files(shared: Bucket, tmp_path: Path) -> None:
    blobs = S3Blobs(shared, tmp_path / "cache", 64 * _MIB)
    for name in ("kept", "gone"):
        _stage(blobs, name, name.encode())
    (tmp_path / "cache" / "half.part").write_bytes(b"x")
    S3Blobs(shared, tmp_path / "cache", 64 * _MIB).sweep(["kept"])  # the next start: "gone" has no row
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["kept"]


def test_a_file_whose_row_cannot_be_written_leaves_no_object(s3_server: S3Server, tmp_path: Path) -> None:
    name = new_bucket_name()
    db = Database(tmp_path / "toolshed.db")
    store = FileStore(db, tmp_path, byte_limit=lambda _: 10, blobs=S3Blobs(_bucket(s3_server, name),
                                                                           tmp_path / "cache", 64 * _MIB))
    with pytest.raises(OverLimit):  # the project may store 10 bytes: the row is refused after the upload
        store.write(io.BytesIO(b"x" * 100), "big.txt", "assistants", project="p")
    assert s3_server.keys(name) == []
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_copy_cached_before_another_replica_deleted_the_file_is_not_served(shared: Bucket,
                                                                              tmp_path: Path) -> None:
    db = Database(tmp_path / "toolshed.db")
    store = FileStore(db, tmp_path, blobs=S3Blobs(shared, tmp_path / "cache", 64 * _MIB))
    stored = store.write(io.BytesIO(b"secret plan"), "plan.txt", "assistants", project="p")
    assert store.blob_path(stored.id).read_bytes() == b"secret plan"
    db.execute("DELETE FROM files WHERE id = ?", (stored.id,))  # what a replica sharing the database does
    assert (tmp_path / "cache" / stored.id).exists()
    with pytest.raises(FileNotFound):
        store.blob_path(stored.id)


def test_callers_wanting_one_missing_copy_share_one_fetch(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, 10 * _MIB)
    fetches = []

    def fetch(into: Path) -> None:
        fetches.append(into)
        time.sleep(0.3)  # long enough that every caller arrives while it runs
        into.write_bytes(b"shared")

    threads = [threading.Thread(target=cache.get, args=("blob", fetch)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fetches) == 1
    assert (tmp_path / "blob").read_bytes() == b"shared"


def _start_failure(tmp_path: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `toolshed serve` until it exits (it must, within two minutes); its exit status and output. A server
    that starts anyway (the failure is not caught) has its sandboxes removed after."""
    server = Server(tmp_path / "data", **env)  # for its own namespace and port; started here, not by start()
    try:
        done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "serve", "--no-build"], env=server.env,
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        server.remove_containers()
    return done.returncode, done.stdout + done.stderr


@pytest.mark.attack("an object-store secret leaked by a failed start")
def test_bad_credentials_stop_the_start_saying_why_without_the_secret(s3_server: S3Server, tmp_path: Path,
                                                                      evidence: Evidence) -> None:
    wrong = "wrong-secret-" + os.urandom(8).hex()
    status, output = _start_failure(tmp_path, s3_server.env(new_bucket_name(), TOOLSHED_S3_SECRET_ACCESS_KEY=wrong))
    assert status != 0
    assert "refused access" in output and "TOOLSHED_S3_SECRET_ACCESS_KEY" in output
    assert wrong not in output and s3_server.secret_access_key not in output
    evidence(output.strip().splitlines()[-1])


def test_an_unreachable_endpoint_stops_the_start_saying_why(s3_server: S3Server, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    status, output = _start_failure(tmp_path, s3_server.env(new_bucket_name(), TOOLSHED_S3_ENDPOINT_URL=nowhere))
    assert status != 0
    assert "Cannot use the object store" in output and nowhere in output
    assert s3_server.secret_access_key not in output


@pytest.fixture(scope="module")
def bucket() -> str:
    return new_bucket_name()


@pytest.fixture(scope="module")
def s3_toolshed(docker_ready: None, s3_server: S3Server, bucket: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose files live in a bucket that does not exist yet (the start creates it)."""
    with running_server(tmp_path_factory.mktemp("s3-server"), **s3_server.env(bucket)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(s3_toolshed: Server) -> OpenAI:
    return sdk_client(s3_toolshed, timeout=600)


def _uncache(server: Server, file_id: str) -> None:
    """Drop the server's cached copy, so the next read must come from the bucket."""
    (server.data_dir / "cache" / "files" / file_id).unlink()


def test_an_upload_is_an_object_that_downloads_byte_exact_and_deletes(s3_toolshed: Server, client: OpenAI,
                                                                      s3_server: S3Server, bucket: str) -> None:
    data = os.urandom(12 * _MIB + 3)
    created = client.files.create(file=("data.bin", data), purpose="assistants")
    assert f"files/{created.id}" in s3_server.keys(bucket)
    assert not (s3_toolshed.data_dir / "files" / created.id).exists()  # local disk holds no copy of its own
    _uncache(s3_toolshed, created.id)
    assert client.files.content(created.id).read() == data
    assert client.files.delete(created.id).deleted is True
    assert f"files/{created.id}" not in s3_server.keys(bucket)
    assert not (s3_toolshed.data_dir / "cache" / "files" / created.id).exists()
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)


def test_a_file_given_to_code_reaches_mnt_data(s3_toolshed: Server, client: OpenAI) -> None:
    stored = client.files.create(file=("table.csv", b"a,b\n1,2\n"), purpose="assistants")
    _uncache(s3_toolshed, stored.id)
    container = client.containers.create(name="s3", file_ids=[stored.id])
    try:
        assert logs(run(client, container.id, "print(open('/mnt/data/table.csv').read(), end='')")) == "a,b\n1,2\n"
    finally:
        client.containers.delete(container.id)


def test_a_vector_store_ingests_a_file_kept_in_the_bucket(s3_toolshed: Server, client: OpenAI) -> None:
    stored = client.files.create(file=("ducks.md", b"# Ducks\n\nDucks like to eat duckweed and seeds.\n"),
                                 purpose="assistants")
    _uncache(s3_toolshed, stored.id)
    store = client.vector_stores.create(name="s3", file_ids=[stored.id])
    deadline = time.monotonic() + 300
    while client.vector_stores.retrieve(store.id).file_counts.completed < 1:
        assert time.monotonic() < deadline, client.vector_stores.files.list(vector_store_id=store.id).data
        time.sleep(0.5)
    hits = client.vector_stores.search(store.id, query="what do ducks eat").data
    assert hits[0].file_id == stored.id


class _Generated:
    """`size` pseudo-random bytes read in chunks and made on the fly (never whole anywhere); hashes what it gave."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        chunk = os.urandom(n)
        self.left -= n
        self.digest.update(chunk)
        return chunk


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


class _PeakRSS:
    """The highest resident size of process `pid` while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, _rss(pid), threading.Event()

    def __enter__(self) -> _PeakRSS:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))


def test_a_file_larger_than_memory_allows_streams_both_ways(s3_toolshed: Server, s3_server: S3Server,
                                                            bucket: str) -> None:
    assert s3_toolshed.process is not None
    pid, size = s3_toolshed.process.pid, 300 * _MIB
    source = _Generated(size)
    before = _rss(pid)
    with _PeakRSS(pid) as upload:
        response = httpx.post(f"{s3_toolshed.base_url}/v1/files", data={"purpose": "assistants"},
                              files={"file": ("big.bin", source)}, timeout=900)  # type: ignore[dict-item]
    assert response.status_code == 200, response.text
    file_id = response.json()["id"]
    head = s3_server.client().head_object(Bucket=bucket, Key=f"files/{file_id}")
    assert head["ContentLength"] == size
    _uncache(s3_toolshed, file_id)
    received = hashlib.sha256()
    with _PeakRSS(pid) as download, httpx.stream("GET", f"{s3_toolshed.base_url}/v1/files/{file_id}/content",
                                                 timeout=900) as streamed:
        for chunk in streamed.iter_bytes(_MIB):
            received.update(chunk)
    assert received.hexdigest() == source.digest.hexdigest()
    assert upload.peak - before < 100 * _MIB, (before, upload.peak)
    assert download.peak - before < 100 * _MIB, (before, download.peak)
