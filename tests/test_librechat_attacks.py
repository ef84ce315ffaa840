"""Attacks on the LibreChat Code API face (issue 27): another project's file ids in `/exec`, forged and
wrong-algorithm JWTs, one LibreChat user reaching another's session, and a cell left running by a client that
went away. One server, two key projects and a LibreChat JWT key, driven over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from orchestrator.localserver import Server
from tests.conftest import Evidence, running_server

SIGNING_KEY = Ed25519PrivateKey.generate()
PUBLIC_PEM = SIGNING_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
ALPHA, BETA = {"x-api-key": "ka"}, {"x-api-key": "kb"}
SECRET = b"alpha's secret: the launch code is 0451"


@pytest.fixture(scope="module")
def server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("librechat-attacks"), TOOLSHED_POOL_SIZE="1",
                        TOOLSHED_API_KEYS='{"ka": "alpha", "kb": "beta"}',
                        TOOLSHED_LIBRECHAT_JWT_PUBLIC_KEY=PUBLIC_PEM, TOOLSHED_LIBRECHAT_PROJECT="lc") as srv:
        yield srv


def claims(sub: str, **extra: Any) -> dict[str, Any]:
    """The claims LibreChat's `mintCodeApiToken` puts in a token (packages/api/src/auth/codeapi.ts)."""
    now = int(time.time())
    return {"iss": "librechat", "aud": "codeapi", "sub": sub, "iat": now, "nbf": now, "exp": now + 300,
            "jti": f"jti-{sub}-{now}", "tenant_id": "legacy", "role": "USER", "principal_source": "librechat_jwt",
            **extra}


def bearer(sub: str, **extra: Any) -> dict[str, str]:
    token = jwt.encode(claims(sub, **extra), SIGNING_KEY, algorithm="EdDSA", headers={"kid": "lc-codeapi-2026-05"})
    return {"Authorization": f"Bearer {token}"}


def hmac_token(payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token keyed with `secret` (PyJWT refuses a PEM key as an HMAC secret, an attacker need not)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing_input = f"{part(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{part(json.dumps(payload).encode())}"
    return f"{signing_input}.{part(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def exec_(server: Server, headers: dict[str, str], code: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.base_url}/librechat/v1/exec", headers=headers, timeout=120,
                      json={"lang": "py", "code": code, **body})


def upload(server: Server, headers: dict[str, str], name: str, data: bytes) -> tuple[str, str]:
    """(storage session id, file id) of a LibreChat upload."""
    done = httpx.post(f"{server.base_url}/librechat/v1/upload", headers=headers, files={"file": (name, data)},
                      data={"kind": "user", "id": "file-x"}, timeout=60).json()
    return done["storage_session_id"], done["files"][0]["fileId"]


@pytest.mark.attack("librechat: another project's file ids in /exec")
def test_exec_never_mounts_another_projects_file(server: Server, evidence: Evidence) -> None:
    session, librechat_file = upload(server, ALPHA, "secret.txt", SECRET)
    api_file = httpx.post(f"{server.base_url}/v1/files", headers={"Authorization": "Bearer ka"},
                          files={"file": ("api.txt", SECRET)}, data={"purpose": "assistants"}).json()["id"]
    read = "print(open('/mnt/data/secret.txt').read())"
    for file_id, name in ((librechat_file, "secret.txt"), (api_file, "api.txt")):
        files = [{"id": file_id, "storage_session_id": session, "session_id": session, "name": name}]
        stolen = exec_(server, BETA, f"import os; print(sorted(os.listdir('/mnt/data')))\n{read}", files=files)
        assert stolen.status_code == 404 and stolen.json()["error"] == "not_found", stolen.text
        assert "0451" not in stolen.text
    for path in (f"download/{session}/{librechat_file}", f"sessions/{session}/objects/{librechat_file}"):
        assert httpx.get(f"{server.base_url}/librechat/v1/{path}", headers=BETA).status_code == 404
    assert httpx.get(f"{server.base_url}/librechat/v1/files/{session}", headers=BETA).json() == []
    # The owner still gets its own file in its sandbox.
    own = exec_(server, ALPHA, read, files=[{"id": librechat_file, "storage_session_id": session,
                                              "name": "secret.txt"}])
    assert own.json()["stdout"] == SECRET.decode() + "\n"
    evidence("another project's file id in /exec: 404 not_found, nothing mounted; downloads and probes 404")


@pytest.mark.attack("librechat: JWTs of the wrong algorithm, forged or without a user")
def test_bad_jwts_are_401_never_500(server: Server, evidence: Evidence) -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    rs256 = jwt.encode(claims("user-1"), rsa, algorithm="RS256", headers={"kid": "lc-codeapi-2026-05"})
    confused = jwt.encode(claims("user-1"), Ed25519PrivateKey.generate(), algorithm="EdDSA")
    unsigned = jwt.encode(claims("user-1"), "", algorithm="none")
    hs256 = hmac_token(claims("user-1"), PUBLIC_PEM.encode())
    tokens = {"RS256 against the Ed25519 key": rs256, "another Ed25519 key": confused, "alg none": unsigned,
              "HS256 keyed with a public key": hs256}
    headers = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    headers |= {"empty sub": bearer(""), "no tenant": bearer("user-1", tenant_id=None),
                "blank sub": bearer("   ")}
    for name, auth in headers.items():
        refused = exec_(server, auth, "print('ran')")
        assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized"), (name, refused.text)
    assert exec_(server, bearer("user-1"), "print('ran')").json()["stdout"] == "ran\n"
    evidence(f"{len(headers)} bad tokens (wrong algorithm, foreign key, alg none, HS256, no user): 401 each")


@pytest.mark.attack("librechat: one LibreChat user naming another's session")
def test_a_jwt_user_reaches_only_its_own_sessions(server: Server, evidence: Evidence) -> None:
    alice, mallory = bearer("user-alice"), bearer("user-mallory")
    made = exec_(server, alice, "secret = 451\nopen('/mnt/data/notes.txt', 'w').write('alice only')",
                 runtime_session_hint="conversation-1").json()
    assert made["stderr"] == "" and made["files"][0]["name"] == "notes.txt"
    peek = exec_(server, mallory, "print(secret)", runtime_session_hint="conversation-1").json()
    assert "NameError" in peek["stderr"] and "451" not in peek["stdout"], peek
    session, file_id = made["session_id"], made["files"][0]["id"]
    base = f"{server.base_url}/librechat/v1"
    assert httpx.get(f"{base}/download/{session}/{file_id}", headers=mallory).status_code == 404
    assert httpx.get(f"{base}/files/{session}", headers=mallory).json() == []
    assert httpx.get(f"{base}/download/{session}/{file_id}", headers=alice).content == b"alice only"
    again = exec_(server, alice, "print(secret)", runtime_session_hint="conversation-1").json()
    assert again["stdout"] == "451\n"
    evidence("another user's runtime session: a fresh sandbox (NameError); its files 404")


@pytest.mark.attack("librechat: a long cell left running by a client that went away")
def test_a_dropped_exec_interrupts_its_cell(server: Server, evidence: Evidence) -> None:
    hint = {"runtime_session_hint": "dropped"}
    assert exec_(server, ALPHA, "print('warm')", **hint).json()["stdout"] == "warm\n"
    cell = "import time\ntime.sleep(30)\nopen('/mnt/data/late.txt', 'w').write('still ran')"
    with pytest.raises(httpx.ReadTimeout):  # the client gives up while the cell sleeps
        httpx.post(f"{server.base_url}/librechat/v1/exec", headers=ALPHA, json={"lang": "py", "code": cell, **hint},
                   timeout=httpx.Timeout(60, read=1))
    time.sleep(2)  # the server notices the closed connection
    started = time.monotonic()
    # Had the cell kept running, this would wait behind it and then see the file it wrote.
    after = exec_(server, ALPHA, "import os; print(os.path.exists('/mnt/data/late.txt'))", **hint).json()
    waited = time.monotonic() - started
    assert after["stdout"] == "False\n", after
    evidence(f"the dropped cell was interrupted: the next exec answered in {waited:.1f} s, no late file")
