"""What every HTTP face does before and around a request (issue 27, items 3, 4, 5, 22, 23): keys are checked
before a body is read, uploads are capped while they stream, no key reaches a log line, client ids cannot forge
log lines, /docs works offline, and a bad setting is one short line. A real `toolshed serve` process; none of this
needs a sandbox, so it runs with or without the Docker engine."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from orchestrator import logs
from orchestrator.localserver import Server
from tests.conftest import Evidence, running_server

pytestmark = pytest.mark.server

KEY = "k-hygiene-5f3a9c"
UPLOAD_LIMIT = 4 << 20
MIB = 1 << 20
BOUNDARY = "toolshed-hygiene"
FORGED = "2031-01-01 00:00:00,000 WARNING toolshed: FORGED"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("hygiene"), TOOLSHED_API_KEYS=f'["{KEY}"]',
                        TOOLSHED_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT), TOOLSHED_POOL_SIZE="1") as srv:
        yield srv


def written(server: Server) -> int:
    """Bytes the server process has passed to write() so far: temp files a multipart body is spooled to count."""
    assert server.process is not None
    fields = dict(line.split(": ") for line in Path(f"/proc/{server.process.pid}/io").read_text().splitlines())
    return int(fields["wchar"])


def multipart(mebibytes: int) -> Iterator[bytes]:
    """A /v1/files upload form (purpose + file) of `mebibytes` MiB, generated as it is sent."""
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nassistants\r\n"
           f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
           "Content-Type: application/octet-stream\r\n\r\n").encode()
    for _ in range(mebibytes):
        yield b"x" * MIB
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def upload(server: Server, path: str, mebibytes: int, headers: dict[str, str]) -> tuple[httpx.Response, int]:
    """POST a multipart body of that size without a Content-Length (chunked, so only counting can stop it);
    the response and the bytes the server wrote meanwhile."""
    before = written(server)
    response = httpx.post(f"{server.base_url}{path}", content=multipart(mebibytes), timeout=120,
                          headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}", **headers})
    return response, written(server) - before


@pytest.mark.attack("resources: a 64 MB upload with no key, spooled to disk before the key check")
def test_a_body_without_a_valid_key_is_refused_before_it_is_read(server: Server, evidence: Evidence) -> None:
    seen = []
    for path, headers, status in (("/v1/files", {}, 401), ("/v1/files", {"Authorization": "Bearer wrong"}, 401),
                                  ("/librechat/v1/upload", {"x-api-key": "wrong"}, 401),
                                  ("/jupyter/api/kernels", {}, 403)):
        response, wrote = upload(server, path, 64, headers)
        assert response.status_code == status, response.text
        assert wrote < 64 << 10  # an access line, not a temp file
        seen.append(f"{path} {status} after {wrote} bytes written")
    assert httpx.post(f"{server.base_url}/v1/files", content=b"x" * MIB,
                      headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"}).json()["error"][
        "code"] == "invalid_api_key"
    evidence("; ".join(seen))


@pytest.mark.attack("resources: a keyed 40 MB upload over TOOLSHED_MAX_UPLOAD_BYTES, read whole before the check")
def test_an_upload_over_the_limit_is_refused_while_it_streams(server: Server, evidence: Evidence) -> None:
    response, wrote = upload(server, "/v1/files", 40, {"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 413
    assert wrote <= UPLOAD_LIMIT + 2 * MIB  # the limit, the form's framing, and a few log lines
    assert response.json()["error"]["code"] == "file_too_large"
    librechat, librechat_wrote = upload(server, "/librechat/v1/upload", 40, {"x-api-key": KEY})
    assert librechat.status_code == 413
    assert librechat.json()["error"] == "file_too_large"  # LibreChat's error shape
    assert librechat_wrote <= UPLOAD_LIMIT + 2 * MIB
    within, _ = upload(server, "/v1/files", 2, {"Authorization": f"Bearer {KEY}"})
    assert (within.status_code, within.json()["bytes"]) == (200, 2 * MIB)
    evidence(f"413 after {wrote} bytes written (/v1/files) and {librechat_wrote} (LibreChat) of 40 MiB; "
             "a 2 MiB upload still stored")


def _log_when(server: Server, needle: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while needle not in (text := server.log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return text


@pytest.mark.attack("secrets: an API key given as ?token= in the access log and the websocket handshake line")
def test_no_key_appears_in_any_log_line(server: Server, evidence: Evidence) -> None:
    base = f"{server.base_url}/jupyter/api"
    httpx.post(f"{base}/kernels?token={KEY}", json={"name": "python3"}, timeout=120)
    httpx.post(f"{server.base_url}/v1/tool_calls?token={KEY}&x=1", json={}, headers={"Authorization": f"Bearer {KEY}"})

    async def handshake() -> None:
        url = f"{base.replace('http://', 'ws://')}/kernels/no-such-kernel/channels?token={KEY}"
        with pytest.raises(InvalidStatus):
            async with websockets.connect(url):
                pass

    asyncio.run(handshake())
    text = _log_when(server, '"WebSocket /jupyter/api/kernels/no-such-kernel/channels')
    lines = [line for line in text.splitlines() if "token=" in line]
    assert any('"WebSocket' in line for line in lines) and any('"POST /jupyter' in line for line in lines)
    assert any('"POST /v1/tool_calls' in line for line in lines)
    assert KEY not in text
    assert all("token=[redacted]" in line for line in lines)
    evidence(f"{len(lines)} lines with a token in their URL, each written token=[redacted]")


@pytest.mark.attack("logs: a thread_id or tool call id holding a line break, forging a log line")
def test_ids_with_line_breaks_are_refused(server: Server, evidence: Evidence) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    call = {"id": "call_1", "type": "function", "function": {"name": "code_interpreter",
                                                             "arguments": '{"code": "print(1)"}'}}
    tries = {
        "thread_id": {"thread_id": f"t1\n{FORGED}", "tool_call": call},
        "tool_call.id": {"thread_id": "t1", "tool_call": {**call, "id": f"call_1\r\n{FORGED}"}},
    }
    for param, body in tries.items():
        response = httpx.post(f"{server.base_url}/v1/tool_calls", json=body, headers=auth, timeout=120)
        assert response.status_code == 400, response.text
        assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, "invalid_value")
    annotate = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": f"a\u2028{FORGED}", "text": "x"},
                          headers=auth)
    assert (annotate.status_code, annotate.json()["error"]["param"]) == (400, "thread_id")
    text = _log_when(server, '"POST /v1/annotations')
    assert not [line for line in text.splitlines() if line.startswith(FORGED)]
    evidence("thread_id, tool_call.id and annotations' thread_id with a line break: 400 each; no forged line "
             "in the log")


def test_a_line_break_in_a_logged_field_or_message_is_escaped() -> None:
    formatter = logs.TextFormatter()
    record = logging.LogRecord("toolshed", logging.INFO, __file__, 1, "ran %s", (f"cell\n{FORGED}",), None)
    record.thread_id = f"p/t1\n{FORGED}"
    line = formatter.format(record)
    assert "\n" not in line
    assert line.endswith(f'ran cell\\n{FORGED} [thread_id="p/t1\\n{FORGED}"]')


def test_docs_load_nothing_from_another_origin(server: Server) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{server.base_url}{page}").text
        urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert urls
        assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
        for url in urls:
            assert httpx.get(f"{server.base_url}{url}").status_code == 200, url
    assert "spec-url=\"/openapi.json\"" in httpx.get(f"{server.base_url}/redoc").text


def test_a_bad_setting_is_a_short_message_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli", "serve", "--no-build"], check=False,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "TOOLSHED_DATA_DIR": str(tmp_path),
                                 "TOOLSHED_MAX_SANDBOXES": "plenty"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3, result.stderr
    assert "TOOLSHED_MAX_SANDBOXES" in result.stderr and "integer" in result.stderr
    assert "Traceback" not in result.stderr
