"""Revoking keys made with `toolshed keys`: a revoked key stops working at once, and revoking the last one locks
the server instead of opening it to everyone (open access is for a server that never had a key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.localserver import Server
from tests.conftest import Evidence, running_server


def keys_cli(server: Server, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "keys", *args], capture_output=True, text=True,
                          check=True, timeout=60, env={**os.environ, "TOOLSHED_DATA_DIR": str(server.data_dir)})
    return done.stdout


@pytest.mark.attack("keys: revoking the last key")
def test_revoking_the_last_key_locks_the_server(docker_ready: None, tmp_path: Path, evidence: Evidence) -> None:
    with running_server(tmp_path, TOOLSHED_API_KEYS="[]", TOOLSHED_POOL_SIZE="0") as srv:
        key = keys_cli(srv, "create", "--project", "solo").strip().splitlines()[-1]
        [key_id] = [line.split("\t")[0] for line in keys_cli(srv, "list").splitlines() if line.startswith("key_")]
        files = f"{srv.base_url}/v1/files"
        assert httpx.get(files, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(files).status_code == 401
        keys_cli(srv, "revoke", key_id)
        with_revoked = httpx.get(files, headers={"Authorization": f"Bearer {key}"})
        without = httpx.get(files)
        assert keys_cli(srv, "list").strip() == ""
    assert with_revoked.status_code == 401
    assert without.status_code == 401 and without.json()["error"]["code"] == "invalid_api_key"
    evidence("after the only key was revoked: the revoked key and no key both get 401")
