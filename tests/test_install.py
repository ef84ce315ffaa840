"""The server's runtime dependencies: every third-party module that orchestrator/ or retrieval/ imports is in
[project].dependencies (a fast ast check), and a clean `pip install .` with no extras serves /health (marker
`install`: it builds a venv, so it runs under `make test` but not `make unit`).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.processes import stop

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = frozenset({"orchestrator", "retrieval"})
# What `pip install .` needs of the checkout; copied, so building the wheel writes nothing into the work tree.
SOURCE_TREE = ("pyproject.toml", "README.md", "orchestrator", "retrieval", "sandbox_image")
# Generous: a cold interpreter imports torch, openvino and the faces from a venv without bytecode.
START_TIMEOUT = 180.0


def imported_modules(roots: tuple[str, ...] = ("orchestrator", "retrieval")) -> dict[str, set[str]]:
    """Top-level names of the absolute imports in the package sources (lazy and type-only ones included),
    each with the files importing it; first-party packages and the standard library left out."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {name.split(".")[0] for name in names}:
                    if top not in FIRST_PARTY and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def declared_dependencies() -> set[str]:
    """The canonical names of the distributions in [project].dependencies (extras are not the server's)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}


def test_every_third_party_import_is_a_declared_dependency() -> None:
    imported = imported_modules()
    # The scan itself works: modules the server certainly imports are seen.
    assert {"fastapi", "openai", "docker", "faiss"} <= imported.keys()
    providers = importlib.metadata.packages_distributions()
    declared = declared_dependencies()
    undeclared = {name: sorted(files) for name, files in imported.items()
                  if not {canonicalize_name(d) for d in providers.get(name, [])} & declared}
    assert undeclared == {}


def _environment(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the test's own venv or server settings into the
    clean one."""
    leaks = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in leaks and not k.startswith("TOOLSHED_")}
    return {**env, **extra}


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=1800,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")


def clean_install(workdir: Path) -> Path:
    """A new venv (no system site-packages) holding `pip install .` of a copy of the source tree; its path."""
    source = workdir / "src"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCE_TREE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, source / name)
    venv = workdir / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=workdir)
    # --no-compile: byte-compiling torch and transformers at install would double the install's time.
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile"]
    # torch first and pinned, as the Makefile does: this release resolves to the local CPU wheel, where the
    # resolver left to itself would pull CUDA's.
    _run([*pip, "torch==2.13.0"], cwd=workdir)
    _run([*pip, str(source)], cwd=workdir)
    return venv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"toolshed serve exited {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.5)
    pytest.fail(f"toolshed serve did not answer in {START_TIMEOUT} s:\n{log.read_text()[-4000:]}")


@contextmanager
def serving(venv: Path, data_dir: Path) -> Iterator[str]:
    """`toolshed serve` from the venv's own entry point on a free loopback port, with its own data dir and
    namespace; yields its base URL once it answers, and stops it after."""
    data_dir.mkdir()
    port = _free_port()
    # --no-build and no pooled sandboxes: the test is about the Python install, not the sandbox image.
    env = _environment(TOOLSHED_DATA_DIR=str(data_dir), TOOLSHED_NAMESPACE=f"install-{port}",
                       TOOLSHED_POOL_SIZE="0")
    log = data_dir / "server.log"
    command = [str(venv / "bin" / "toolshed"), "serve", "--no-build", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=data_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(f"{base_url}/health", process, log)
        yield base_url
    finally:
        stop(process)


@pytest.mark.install
def test_a_clean_pip_install_serves_health(tmp_path: Path) -> None:
    venv = clean_install(tmp_path)
    with serving(venv, tmp_path / "data") as base_url:
        response = httpx.get(f"{base_url}/health", timeout=30)
    assert response.status_code == 200
    # Without the sandbox image (or Docker) the server still serves, and says it is degraded.
    assert response.json()["status"] in ("ok", "degraded")
