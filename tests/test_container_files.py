"""The Files API and the Container Files API, driven by the official openai SDK."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.conftest import UPLOAD_LIMIT, Evidence, logs, run

pytestmark = pytest.mark.docker


def test_files_api_round_trip(client: OpenAI) -> None:
    created = client.files.create(file=("notes.md", b"# Notes\n"), purpose="assistants")
    assert (created.object, created.filename, created.bytes, created.purpose) == ("file", "notes.md", 8, "assistants")
    assert created.id.startswith("file-")
    assert client.files.retrieve(created.id).filename == "notes.md"
    assert client.files.content(created.id).read() == b"# Notes\n"
    assert created.id in [f.id for f in client.files.list(purpose="assistants")]
    assert created.id not in [f.id for f in client.files.list(purpose="assistants_output")]
    assert client.files.delete(created.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_files_api_pages_with_a_cursor(client: OpenAI) -> None:
    ids = [client.files.create(file=(f"p{i}.txt", b"x"), purpose="user_data").id for i in range(5)]
    page = client.files.list(purpose="user_data", limit=2, order="asc")
    assert [f.id for f in page.data] == ids[:2] and page.has_more
    assert [f.id for f in client.files.list(purpose="user_data", order="asc")] == ids  # auto-pagination


def test_file_upload_limits_and_names(server: Server, client: OpenAI) -> None:
    response = httpx.post(f"{server.base_url}/v1/files", data={"purpose": "assistants"},
                          files={"file": ("big.bin", b"x" * (UPLOAD_LIMIT + 1))})
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    sneaky = client.files.create(file=("../../etc/passwd", b"x"), purpose="assistants")
    assert sneaky.filename == "passwd"
    bad = httpx.post(f"{server.base_url}/v1/files", data={"purpose": "nonsense"}, files={"file": ("a", b"x")})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "purpose"


def test_container_files_sdk_round_trip(client: OpenAI, container: str) -> None:
    with pytest.raises(openai.BadRequestError, match="folder"):  # a traversal is refused, not silently renamed
        client.containers.files.create(container, file=("../../input.txt", b"hello sandbox"))
    uploaded = client.containers.files.create(container, file=("input.txt", b"hello sandbox"))
    assert (uploaded.object, uploaded.path, uploaded.source, uploaded.bytes) == \
        ("container.file", "/mnt/data/input.txt", "user", 13)
    assert uploaded.id.startswith("cfile_") and uploaded.container_id == container
    assert logs(run(client, container, "print(open('/mnt/data/input.txt').read())")) == "hello sandbox\n"

    stored = client.files.create(file=("table.csv", b"a,b\n1,2\n"), purpose="assistants")
    copied = client.containers.files.create(container, file_id=stored.id)
    assert copied.path == "/mnt/data/table.csv"
    assert client.containers.files.content.retrieve(copied.id, container_id=container).read() == b"a,b\n1,2\n"

    listed = client.containers.files.list(container_id=container, order="asc")
    assert [f.id for f in listed] == [uploaded.id, copied.id]
    assert client.containers.files.retrieve(uploaded.id, container_id=container).path == uploaded.path

    client.containers.files.delete(uploaded.id, container_id=container)
    assert logs(run(client, container, "import os; print(os.path.exists('/mnt/data/input.txt'))")) == "False\n"
    with pytest.raises(openai.NotFoundError):
        client.containers.files.retrieve(uploaded.id, container_id=container)


@pytest.mark.attack("hostile files: an upload onto a planted link")
def test_uploads_replace_a_planted_link_instead_of_writing_through_it(client: OpenAI, container: str,
                                                                       tmp_path,  # noqa: ANN001
                                                                       evidence: Evidence) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("host secret")
    canary.chmod(0o666)
    run(client, container, f"import os; os.symlink({str(canary)!r}, '/mnt/data/victim.txt')")
    client.containers.files.create(container, file=("victim.txt", b"overwritten?"))
    assert canary.read_text() == "host secret"
    assert logs(run(client, container, "import os; print(os.path.islink('/mnt/data/victim.txt'), "
                                       "open('/mnt/data/victim.txt').read())")) == "False overwritten?\n"
    evidence("host file unchanged; the link was replaced")


def test_container_file_errors(server: Server, client: OpenAI, container: str) -> None:
    base = f"{server.base_url}/v1/containers"
    missing = httpx.get(f"{base}/cntr_nope/files")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{base}/{container}/files/cfile_nope").status_code == 404
    assert httpx.get(f"{base}/{container}/files/cfile_nope/content").status_code == 404
    no_id = httpx.post(f"{base}/{container}/files", json={})
    assert no_id.status_code == 400 and no_id.json()["error"]["param"] == "file_id"
    unknown = httpx.post(f"{base}/{container}/files", json={"file_id": "file-nope"})
    assert unknown.status_code == 404
    wrong_field = httpx.post(f"{base}/{container}/files", files={"upload": ("a.txt", b"x")})
    assert wrong_field.status_code == 400 and wrong_field.json()["error"]["param"] == "file"
    run(client, container, "import os; os.makedirs('/mnt/data/taken.txt')")
    in_the_way = httpx.post(f"{base}/{container}/files", files={"file": ("taken.txt", b"x")})
    assert in_the_way.status_code == 400 and "folder" in in_the_way.json()["error"]["message"]


@pytest.mark.attack("hostile uploads: path traversal in names")
def test_a_name_with_a_folder_is_refused_and_downloads_say_what_they_are(server: Server, client: OpenAI,
                                                                          container: str, evidence: Evidence) -> None:
    base = f"{server.base_url}/v1/containers/{container}/files"
    nested = httpx.post(base, files={"file": ("sub/dir/x.csv", b"a,b\n")})
    assert nested.status_code == 400 and "sub/dir/x.csv" in nested.json()["error"]["message"]
    assert "x.csv" not in logs(run(client, container, "import os; print(os.listdir('/mnt/data'))"))
    made = httpx.post(base, files={"file": ("x.csv", b"a,b\n")}).json()
    download = httpx.get(f"{base}/{made['id']}/content")
    assert download.headers["content-type"].startswith("text/csv") and download.content == b"a,b\n"
    evidence(f"{nested.status_code}: {nested.json()['error']['message'][:60]}")


def test_a_tool_call_may_set_its_cells_timeout(server: Server) -> None:
    started = time.monotonic()
    slow = httpx.post(f"{server.base_url}/v1/tool_calls", timeout=60, json={
        "thread_id": "thread_timeout", "timeout": 1,
        "tool_call": {"id": "call_t", "type": "function", "function": {
            "name": "code_interpreter", "arguments": {"code": "import time\ntime.sleep(30)"}}}})
    assert slow.status_code == 200 and slow.json()["status"] == "timed_out"
    assert time.monotonic() - started < 15
