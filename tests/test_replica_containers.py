"""A container made through replica A, used through replica B (orchestrator/web/forwarding.py): two real servers on
one PostgreSQL database, each with its TOOLSHED_REPLICA_URL, driven by the official openai client and plain httpx.
B forwards every request for A's container to A (kernel state and files are A's), streams included, and never
logs the key; a caller leaving B mid-cell interrupts A's cell; a bad key, or another project's container, is
answered by B itself; once A is killed, B answers 503 saying the holder is gone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from orchestrator.localserver import Server
from tests.replicas import KEY, client_of, replica

pytestmark = [pytest.mark.postgres, pytest.mark.docker]


@pytest.fixture
def pair(pg_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    with replica(tmp_path / "a", pg_url) as a, replica(tmp_path / "b", pg_url) as b:
        yield a, b


def execute(server: Server, container: str, code: str, **extra: object) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/containers/{container}/execute", json={"code": code, **extra},
                      headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


def test_a_container_made_through_a_is_used_through_b(pair: tuple[Server, Server]) -> None:
    a, b = pair
    container = client_of(a).containers.create(name="held by A")
    through_b = client_of(b)
    assert through_b.containers.retrieve(container.id).name == "held by A"
    assert execute(a, container.id, "x = 41").status_code == 200
    answer = execute(b, container.id, "print(x + 1)")  # A's kernel: its variables
    assert answer.status_code == 200 and answer.json()["outputs"][0]["logs"] == "42\n"
    streamed = execute(b, container.id, "print('streamed')", stream=True)
    assert streamed.headers["content-type"].startswith("text/event-stream") and "streamed" in streamed.text
    data = os.urandom(1 << 20)
    uploaded = through_b.containers.files.create(container.id, file=("blob.bin", data))
    assert client_of(a).containers.files.content.retrieve(uploaded.id, container_id=container.id).read() == data
    assert through_b.containers.files.content.retrieve(uploaded.id, container_id=container.id).read() == data
    assert [f.path for f in through_b.containers.files.list(container.id).data] == ["/mnt/data/blob.bin"]
    through_b.containers.delete(container.id)
    with pytest.raises(openai.NotFoundError):
        client_of(a).containers.retrieve(container.id)


def test_b_refuses_a_bad_key_itself_and_answers_503_once_a_is_gone(pair: tuple[Server, Server]) -> None:
    a, b = pair
    container = client_of(a).containers.create(name="short-lived")
    refused = httpx.get(f"{b.base_url}/v1/containers/{container.id}", headers={"Authorization": "Bearer sk-wrong"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    a.stop(kill=True)
    gone = httpx.get(f"{b.base_url}/v1/containers/{container.id}", headers={"Authorization": f"Bearer {KEY}"})
    assert gone.status_code == 503, gone.text
    assert "does not answer" in json.loads(gone.text)["error"]["message"]


def test_a_caller_leaving_b_mid_cell_interrupts_it_on_a_and_no_key_is_logged(pair: tuple[Server, Server]) -> None:
    a, b = pair
    container = client_of(a).containers.create(name="interrupted")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{b.base_url}/v1/containers/{container.id}/execute", json={"code": "import time; time.sleep(90)"},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
    started = time.monotonic()
    answer = execute(a, container.id, "print('free')")
    assert answer.status_code == 200 and answer.json()["outputs"][0]["logs"] == "free\n"
    assert time.monotonic() - started < 60, "A's kernel kept running the cell the caller had left"
    kernel = httpx.get(f"{b.base_url}/jupyter/api/kernels/{container.id}", params={"token": KEY})
    assert kernel.status_code == 200 and kernel.json()["id"] == container.id
    assert KEY not in b.log.read_text() and KEY not in a.log.read_text()
