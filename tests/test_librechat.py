"""The LibreChat Code API face, driven by LibreChat's own code-execution tool (`createCodeExecutionTool` from
npm `@librechat/agents`, run with the machine's Node.js) and by LibreChat's upload and download calls (the host's
code is not published on npm, so its wire calls are made here as it makes them)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from orchestrator.localserver import Server
from tests.conftest import running_server

KEY = "k-librechat"
# Installed by `make test` from tests/librechat/ (package.json, lock file, run_tool.mjs) into build/.
CLIENT = Path(__file__).resolve().parents[1] / "build" / "librechat-client"
SIGNING_KEY = Ed25519PrivateKey.generate()
PUBLIC_PEM = SIGNING_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("node") is None or not (CLIENT / "node_modules" / "@librechat" / "agents").is_dir():
        pytest.fail("LibreChat's client is not installed: `make test` installs it into build/librechat-client")
    with running_server(tmp_path_factory.mktemp("librechat"), TOOLSHED_API_KEYS=f'{{"{KEY}": "lc"}}',
                        TOOLSHED_POOL_SIZE="1", TOOLSHED_LIBRECHAT_JWT_PUBLIC_KEY=PUBLIC_PEM,
                        TOOLSHED_LIBRECHAT_PROJECT="lc") as srv:
        yield srv


def librechat_tool(server: Server, args: dict[str, Any], files: list[dict[str, Any]] | None = None,
                   auth: dict[str, str] | None = None) -> dict[str, Any]:
    request = {"baseUrl": f"{server.base_url}/librechat/v1", "authHeaders": auth or {"x-api-key": KEY},
               "args": args, "session_id": "conversation-1", "files": files or []}
    done = subprocess.run(["node", str(CLIENT / "run_tool.mjs")], input=json.dumps(request), capture_output=True,
                          text=True, timeout=180, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_librechats_tool_runs_python_and_gets_its_files(server: Server) -> None:
    ran = librechat_tool(server, {"lang": "py", "code": (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2]); plt.savefig('/mnt/data/chart.png')\n"
        "open('/mnt/data/table.csv', 'w').write('a,b\\n1,2\\n')\nprint('made two files')")})
    assert ran["content"].startswith("stdout:\nmade two files\n")
    assert "2 persisted file(s)" in ran["content"]  # LibreChat's own summary of the files we returned
    files = {f["name"]: f for f in ran["artifact"]["files"]}
    assert set(files) == {"chart.png", "table.csv"}
    session = ran["artifact"]["session_id"]
    download = httpx.get(f"{server.base_url}/librechat/v1/download/{session}/{files['table.csv']['id']}",
                         headers={"x-api-key": KEY})
    assert download.content == b"a,b\n1,2\n"
    assert 'filename="table.csv"' in download.headers["content-disposition"]
    png = httpx.get(f"{server.base_url}/librechat/v1/download/{session}/{files['chart.png']['id']}",
                    headers={"x-api-key": KEY})
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"

    # The next call, as LibreChat makes it: the earlier output injected by reference, in a fresh sandbox.
    injected = [{"id": files["table.csv"]["id"], "session_id": session, "name": "table.csv"}]
    again = librechat_tool(server, {"lang": "py", "code": "import pandas as pd\nprint(pd.read_csv('table.csv').b[0])"},
                           files=injected)
    assert again["content"] == "stdout:\n2", again
    shell = librechat_tool(server, {"lang": "bash", "code": "wc -c < table.csv; echo oops >&2"}, files=injected)
    assert shell["content"] == "stdout:\n8\n\nstderr:\noops", shell  # LibreChat adds a line after each part

    failed = librechat_tool(server, {"lang": "py", "code": "1/0"})
    assert "stdout: Empty" in failed["content"] and "ZeroDivisionError" in failed["content"]
    assert failed["content"].count("division by zero") == 1  # the traceback once, not again from the error


def test_uploads_listings_probe_and_delete(server: Server) -> None:
    base, headers = f"{server.base_url}/librechat/v1", {"x-api-key": KEY}
    uploaded = httpx.post(f"{base}/upload", headers=headers, files={"file": ("notes.txt", b"hello")},
                          data={"kind": "user", "id": "file-abc"}).json()
    assert uploaded["message"] == "success" and uploaded["files"][0]["filename"] == "notes.txt"
    session, file_id = uploaded["storage_session_id"], uploaded["files"][0]["fileId"]
    batch = httpx.post(f"{base}/upload/batch", headers=headers,
                       files=[("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))]).json()
    assert (batch["succeeded"], batch["failed"]) == (2, 0)

    assert httpx.get(f"{base}/files/{session}", headers=headers).json() == [
        {"id": file_id, "name": "notes.txt", "path": "/mnt/data/notes.txt"}]
    full = httpx.get(f"{base}/files/{session}?detail=full", headers=headers).json()[0]
    assert full["size"] == 5 and full["contentType"] == "text/plain"
    assert httpx.get(f"{base}/sessions/{session}/objects/{file_id}", headers=headers).json()["lastModified"]

    read = librechat_tool(server, {"lang": "py", "code": "print(open('notes.txt').read())"},
                          files=[{"id": file_id, "storage_session_id": session, "name": "notes.txt"}])
    assert read["content"] == "stdout:\nhello", read

    assert httpx.delete(f"{base}/files/{session}/{file_id}", headers=headers).status_code == 200
    gone = httpx.get(f"{base}/sessions/{session}/objects/{file_id}", headers=headers)
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"


def test_auth_forms_and_bad_input(server: Server) -> None:
    base = f"{server.base_url}/librechat/v1"
    basic = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    token = jwt.encode({"iss": "librechat", "aud": "codeapi", "sub": "user-1", "tenant_id": "legacy",
                        "exp": int(time.time()) + 300}, SIGNING_KEY, algorithm="EdDSA",
                       headers={"kid": "lc-codeapi-2026-05"})
    for auth in ({"Authorization": basic}, {"Authorization": f"Bearer {token}"}):
        ran = librechat_tool(server, {"lang": "py", "code": "print('ok')"}, auth=auth)
        assert ran["content"] == "stdout:\nok", ran

    wrong = jwt.encode({"iss": "librechat", "aud": "other", "sub": "u", "exp": int(time.time()) + 300},
                       SIGNING_KEY, algorithm="EdDSA")
    for auth in ({"x-api-key": "wrong"}, {"Authorization": f"Bearer {wrong}"}, {}):
        refused = httpx.post(f"{base}/exec", json={"lang": "py", "code": "1"}, headers=auth)
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    assert "not authorized" in librechat_tool(server, {"lang": "py", "code": "1"}, auth={"x-api-key": "no"})["error"]

    headers = {"x-api-key": KEY}
    unsupported = httpx.post(f"{base}/exec", json={"lang": "rs", "code": "fn main() {}"}, headers=headers)
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_language"
    bad_json = httpx.post(f"{base}/exec", content=b"{not json", headers={**headers, "content-type": "application/json"})
    assert bad_json.status_code == 400 and set(bad_json.json()) == {"error", "message"}
    unknown_file = httpx.post(f"{base}/exec", headers=headers, json={
        "lang": "py", "code": "1", "files": [{"id": "file-nope", "session_id": "s", "name": "x"}]})
    assert unknown_file.status_code == 404 and unknown_file.json()["error"] == "not_found"
    assert httpx.get(f"{base}/download/s/file-nope", headers=headers).status_code == 404


def test_a_long_execution_sends_whitespace_before_its_json(server: Server) -> None:
    with httpx.stream("POST", f"{server.base_url}/librechat/v1/exec", headers={"x-api-key": KEY}, timeout=60,
                      json={"lang": "py", "code": "import time; time.sleep(4); print('late')"}) as response:
        chunks = [(time.monotonic(), chunk) for chunk in response.iter_bytes()]
    body = b"".join(chunk for _, chunk in chunks)
    assert body.startswith(b" ") and json.loads(body)["stdout"] == "late\n"
    assert chunks[-1][0] - chunks[0][0] > 0.5  # the space came while the cell still ran
