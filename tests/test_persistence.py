"""A restarted server loses nothing: files, container files, thread bindings and annotations survive."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from orchestrator.localserver import Server

pytestmark = pytest.mark.docker


def test_restart_keeps_files_container_files_and_threads(docker_ready: None, tmp_path) -> None:  # noqa: ANN001
    server = Server(tmp_path / "server")
    server.start()
    try:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
        uploaded = client.files.create(file=("in.txt", b"persist me"), purpose="assistants")
        call = {"thread_id": "thread_restart", "tool_call": {"id": "call_1", "type": "function", "function": {
            "name": "code_interpreter", "arguments": json.dumps({"code": "open('/mnt/data/out.txt', 'w').write('x')"})}},
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
