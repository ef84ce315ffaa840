"""Ingestion under hostile and huge files (issue 27, items 12 and 21): the parse worker is confined (not root, no
network, memory and CPU limits), a 12 MB one-line file is indexed in bounded memory while /health keeps
answering and another store's small file is not held up, and a long run without spaces chunks in linear time.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.conftest import Evidence, Server, running_server, sdk_client
from tests.test_hostile_uploads import zip_bomb

SENTENCE = "The quick brown fox jumps over the lazy dog while seventeen zebras contemplate philosophy. "


@pytest.fixture
def ingest_server(docker_ready: None, tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path / "server", TOOLSHED_PARSE_MEMORY="512m", TOOLSHED_PARSE_TIMEOUT="60") as srv:
        yield srv


def upload(client: OpenAI, store_id: str, name: str, data: bytes) -> str:
    """Upload a file and attach it to a store without waiting; returns the file id."""
    uploaded = client.files.create(file=(name, io.BytesIO(data)), purpose="assistants")
    client.vector_stores.files.create(vector_store_id=store_id, file_id=uploaded.id)
    return uploaded.id


def settled(client: OpenAI, store_id: str, file_id: str, timeout: float = 110) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id).status
        if status != "in_progress":
            return status
        time.sleep(0.1)
    return "in_progress"


def parse_workers(server: Server) -> list[int]:
    """The server's parse worker processes."""
    assert server.process is not None
    found = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"PPid:\t{server.process.pid}\n" in status and b"retrieval.isolation" in cmdline:
            found.append(int(entry.name))
    return found


def limit(pid: int, name: str) -> str:
    """A soft limit from /proc/<pid>/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            return line[len(name):].split()[0]
    raise AssertionError(f"no {name} limit")


@pytest.mark.attack("hostile uploads: the parse worker as root on the host's network")
def test_the_parse_worker_is_unprivileged_offline_and_limited(ingest_server: Server, evidence: Evidence,
                                                              tmp_path: Path) -> None:
    client = sdk_client(ingest_server)
    store = client.vector_stores.create(name="confined")
    first = upload(client, store.id, "fine.md", b"# Fine\n\nA file parsed by the confined worker.")
    assert settled(client, store.id, first) == "completed"
    workers = parse_workers(ingest_server)
    assert workers, "the parse worker stays up between files"
    pid = workers[0]
    uid = int((Path(f"/proc/{pid}/status").read_text().split("Uid:\t")[1]).split()[1])
    assert uid != 0
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    interfaces = [line.split(":")[0].strip() for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]]
    assert interfaces == ["lo"]
    assert limit(pid, "Max address space") == str(512 << 20)
    assert limit(pid, "Max cpu time") != "unlimited"
    assert limit(pid, "Max core file size") == "0"

    bomb = upload(client, store.id, "bomb.docx", zip_bomb(tmp_path / "bomb.docx", 1 << 30).read_bytes())
    assert settled(client, store.id, bomb) == "failed"
    error = client.vector_stores.files.retrieve(bomb, vector_store_id=store.id).last_error
    assert error is not None and "more than 512 MB of memory" in error.message
    assert httpx.get(f"{ingest_server.base_url}/health", timeout=5).status_code == 200
    after = upload(client, store.id, "after.md", b"The next file is indexed normally.")
    assert settled(client, store.id, after) == "completed"
    evidence(f"worker uid {uid}, interfaces {interfaces}, address space 512 MB; bomb: {error.message[:60]}")


class Watch:
    """Samples /health's latency and the server's RSS in a thread until stopped."""

    def __init__(self, server: Server) -> None:
        assert server.process is not None
        self._server, self._pid = server, server.process.pid
        self.base_rss = self.rss()
        self.worst_health = 0.0
        self.peak_rss = self.base_rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        status = Path(f"/proc/{self._pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) << 10

    def _run(self) -> None:
        with httpx.Client(base_url=self._server.base_url, timeout=30) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                assert http.get("/health").status_code == 200
                self.worst_health = max(self.worst_health, time.monotonic() - started)
                self.peak_rss = max(self.peak_rss, self.rss())
                self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_a_12_mb_one_line_file_does_not_stall_the_server_or_other_stores(ingest_server: Server) -> None:
    client = sdk_client(ingest_server)
    warm = client.vector_stores.create(name="warm")  # the model loads now, not inside the measurement
    assert settled(client, warm.id, upload(client, warm.id, "warm.md", b"Loads the embedding model.")) == "completed"
    line = (SENTENCE * ((12 << 20) // len(SENTENCE) + 1))[:12 << 20].encode()
    big_store, small_store = client.vector_stores.create(name="big"), client.vector_stores.create(name="small")
    watch = Watch(ingest_server)
    try:
        big = upload(client, big_store.id, "one-line.txt", line)
        time.sleep(3)  # the big file is being chunked and embedded
        started = time.monotonic()
        small = upload(client, small_store.id, "small.md", b"A small file in another store.")
        assert settled(client, small_store.id, small, timeout=60) == "completed"
        small_seconds = time.monotonic() - started
        assert settled(client, big_store.id, big) == "completed"
    finally:
        watch.stop()
    assert small_seconds < 10
    assert watch.worst_health < 0.25
    assert watch.peak_rss - watch.base_rss < 300 << 20


def test_a_long_run_without_spaces_is_chunked_in_linear_time() -> None:
    """2 MB of base64 on one line: every word piece touches the next, and a word-boundary search that scanned back
    to the start of the text made chunking quadratic (hours); streamed, it takes seconds."""
    script = ("import base64, random\n"
              "from retrieval.chunking import chunk_pages\n"
              "from retrieval.models import ChunkingStrategy, Page\n"
              "from retrieval.runtimes import load_embedder\n"
              "embedder = load_embedder()\n"
              "text = base64.b64encode(random.Random(7).randbytes(1_500_000)).decode()\n"
              "chunks = chunk_pages([Page(None, text)], ChunkingStrategy(), window=embedder.window,\n"
              "                     token_spans=embedder.token_spans)\n"
              "print(len(chunks), max(len(c.text) for c in chunks), chunks[-1].end == len(text))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=100,
                          cwd=Path(__file__).parent.parent, check=True)
    count, longest, reaches_end = done.stdout.split()
    assert int(count) > 2000 and int(longest) <= 254 * 100 and reaches_end == "True"
