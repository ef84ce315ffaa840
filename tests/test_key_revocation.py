"""Revoking keys made with `toolshed keys`: a revoked key stops working at once, and revoking the last one locks
the server instead of opening it to everyone (open access is for a server that never had a key)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import Evidence, keys_cli, running_server


@pytest.mark.attack("keys: revoking the last key")
def test_revoking_the_last_key_locks_the_server(docker_ready: None, tmp_path: Path, evidence: Evidence) -> None:
    with running_server(tmp_path, TOOLSHED_API_KEYS="[]", TOOLSHED_POOL_SIZE="0") as srv:
        key = keys_cli(srv, "create", "--project", "solo").stdout.strip().splitlines()[-1]
        listed = keys_cli(srv, "list").stdout.splitlines()
        [key_id] = [line.split("\t")[0] for line in listed if line.startswith("key_")]
        files = f"{srv.base_url}/v1/files"
        assert httpx.get(files, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(files).status_code == 401
        keys_cli(srv, "revoke", key_id)
        with_revoked = httpx.get(files, headers={"Authorization": f"Bearer {key}"})
        without = httpx.get(files)
        assert keys_cli(srv, "list").stdout.strip() == ""
    assert with_revoked.status_code == 401
    assert without.status_code == 401 and without.json()["error"]["code"] == "invalid_api_key"
    evidence("after the only key was revoked: the revoked key and no key both get 401")
