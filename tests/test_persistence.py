"""A restarted (or killed) server loses nothing: files, container files, threads, annotations, vector stores."""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.datasets import DOCS

pytestmark = pytest.mark.docker


def test_restart_keeps_files_container_files_and_threads(docker_ready: None, tmp_path) -> None:  # noqa: ANN001
    server = Server(tmp_path / "server")
    server.start()
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
        uploaded = client.files.create(file=("in.txt", b"persist me"), purpose="assistants")
        code = "open('/mnt/data/out.txt', 'w').write('x')"
        call = {"thread_id": "thread_restart", "tool_call": {"id": "call_1", "type": "function", "function": {
            "name": "code_interpreter", "arguments": json.dumps({"code": code})}},
            "tool_resources": {"code_interpreter": {"file_ids": [uploaded.id]}}}
        before = httpx.post(f"{server.base_url}/v1/tool_calls", json=call, timeout=60).json()
        [artifact] = before["files"]

        server.stop()
        server.start()

        assert client.files.content(uploaded.id).read() == b"persist me"
        assert client.files.content(artifact["file_id"]).read() == b"x"
        paths = sorted(f.path for f in client.containers.files.list(container_id=before["container_id"]))
        assert paths == ["/mnt/data/in.txt", "/mnt/data/out.txt"]
        text = "Saved to sandbox:/mnt/data/out.txt"
        part = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": "thread_restart", "text": text})
        [annotation] = part.json()["text"]["annotations"]
        assert annotation["file_path"]["file_id"] == artifact["file_id"]

        call["tool_call"]["function"]["arguments"] = json.dumps({"code": "print(open('/mnt/data/out.txt').read())"})
        after = httpx.post(f"{server.base_url}/v1/tool_calls", json=call, timeout=60).json()
        assert after["container_id"] == before["container_id"] and after["output"] == "x\n"
        assert after["files"] == []  # nothing new: the registry survived the restart
    finally:
        server.stop()
        server.remove_containers()


def test_killed_mid_indexing_the_server_resumes_and_stores_stay_searchable(docker_ready: None,
                                                                          tmp_path) -> None:  # noqa: ANN001
    server = Server(tmp_path / "server")
    server.start()
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
        store = client.vector_stores.create(name="resume")
        with open(DOCS / "md" / "duck.md", "rb") as fh:
            client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=fh)
        with open(DOCS / "pdf" / "arxiv-2203.02155-instructgpt-68p.pdf", "rb") as fh:
            uploaded = client.files.create(file=fh, purpose="assistants")
        attached = client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id)
        assert attached.status == "in_progress"

        server.stop(kill=True)  # kill -9 while the 68-page PDF is being embedded
        server.start()

        done = client.vector_stores.files.poll(uploaded.id, vector_store_id=store.id, poll_interval_ms=250)
        assert done.status == "completed", done.last_error
        hits = client.vector_stores.search(store.id, query="reinforcement learning from human feedback").data
        assert hits[0].file_id == uploaded.id
        assert client.vector_stores.search(store.id, query="what do ducks eat").data[0].filename == "duck.md"
        counts = client.vector_stores.retrieve(store.id).file_counts
        assert (counts.completed, counts.in_progress, counts.failed) == (2, 0, 0)
    finally:
        server.stop()
        server.remove_containers()


def test_a_container_left_by_a_server_with_another_data_dir_does_not_stop_start_up(docker_ready: None,
                                                                                    tmp_path) -> None:  # noqa: ANN001
    """Issue 15's start-up crash: recovery met a running container of its namespace whose disk image lives in
    another data dir, and died on FileNotFoundError."""
    first = Server(tmp_path / "first", TOOLSHED_POOL_SIZE="0")
    first.start()
    try:
        client = OpenAI(base_url=f"{first.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
        left = client.containers.create(name="left behind").id
        first.stop(kill=True)  # its container keeps running
        second = Server(tmp_path / "second", TOOLSHED_POOL_SIZE="0", TOOLSHED_NAMESPACE=first.namespace)
        second.namespace = first.namespace
        second.start()  # crashed in recovery before
        try:
            assert httpx.get(f"{second.base_url}/health").json()["status"] == "ok"
            assert "its files are not in this data dir" in second.log.read_text()
            running = httpx.get(f"{second.base_url}/v1/containers").json()["data"]
            assert left not in [c["id"] for c in running]
        finally:
            second.stop()
    finally:
        first.stop()
        first.remove_containers()


@pytest.mark.local_state
def test_a_server_killed_during_an_upload_registers_nothing_half(docker_ready: None, tmp_path) -> None:  # noqa: ANN001
    server = Server(tmp_path / "server", TOOLSHED_POOL_SIZE="0")
    server.start()
    blobs = tmp_path / "server" / "files"

    def slow_body():  # noqa: ANN202 - a multipart body that arrives over seconds
        yield b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        for _ in range(200):
            yield b"x" * (256 << 10)
            time.sleep(0.02)
        yield b"\r\n--b--\r\n"

    try:
        with ThreadPoolExecutor(1) as pool:
            upload = pool.submit(httpx.post, f"{server.base_url}/v1/files", content=slow_body(), timeout=60,
                                 headers={"content-type": "multipart/form-data; boundary=b"})
            time.sleep(1.5)
            server.stop(kill=True)
            with contextlib.suppress(httpx.HTTPError):
                upload.result()
        server.start()
        listed = httpx.get(f"{server.base_url}/v1/files").json()["data"]
        assert listed == [] and not [p for p in blobs.iterdir() if p.is_file()]
        done = httpx.post(f"{server.base_url}/v1/files", files={"file": ("small.txt", b"fine")},
                          data={"purpose": "assistants"}).json()
        assert httpx.get(f"{server.base_url}/v1/files/{done['id']}/content").content == b"fine"
    finally:
        server.stop()
        server.remove_containers()
