"""Bearer API keys, and the refusal to serve openly on a non-loopback address."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server


@pytest.fixture(scope="module")
def keyed_server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("keyed"), TOOLSHED_API_KEYS='["k-one", "k-two"]')
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


@pytest.mark.docker
def test_requests_without_a_valid_key_are_401(keyed_server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic k-one"}):
        response = httpx.get(f"{keyed_server.base_url}/v1/containers", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{keyed_server.base_url}/v1", api_key="nope", max_retries=0).containers.list()


@pytest.mark.docker
def test_any_configured_key_is_accepted(keyed_server: Server) -> None:
    for key in ("k-one", "k-two"):
        page = OpenAI(base_url=f"{keyed_server.base_url}/v1", api_key=key, max_retries=0).containers.list()
        assert page.data == []
    assert httpx.get(f"{keyed_server.base_url}/health").status_code == 200


def test_open_access_on_a_public_address_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "serve", "--host", "0.0.0.0", "--no-build"],
        check=False, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "TOOLSHED_DATA_DIR": str(tmp_path), "TOOLSHED_API_KEYS": "[]"},
    )
    assert result.returncode == 2
    assert "TOOLSHED_API_KEYS" in result.stderr
