"""Schemathesis against the server's own /openapi.json, on a bounded budget: whatever it generates, from valid
bodies to nonsense, no operation answers 5xx, and every answer's status, content type and body are the ones the
document describes (so the OpenAPI document says what the server really returns). Runs, cell executions and tool
calls are left to their own tests (each generated call would start a sandbox or wait on a model); bench/fuzz.py
runs longer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.localserver import Server
from tests.conftest import running_server

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def fuzzed_server(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("fuzz"), TOOLSHED_POOL_SIZE="0") as srv:
        yield srv


def test_no_generated_request_gets_a_server_error(fuzzed_server: Server) -> None:
    result = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{fuzzed_server.base_url}/openapi.json", "--checks", CHECKS,
         "--max-examples", "8", "--request-timeout", "30", "--workers", "2", "--seed", "1",
         "--exclude-path-regex", "execute|tool_calls|/runs"],
        capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-8000:]
    assert " passed" in result.stdout and "Selected: " in result.stdout
