"""`toolshed index` and `toolshed search` as a user runs them: real subprocesses, no server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from tests.datasets import DOCS


def toolshed(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOOLSHED_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env, check=False,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.model
def test_index_then_search_offline(tmp_path: Path) -> None:
    indexed = toolshed(tmp_path, "index", str(DOCS / "md"), str(DOCS / "pdf" / "scanned-no-text-layer-4p.pdf"),
                       "--store", "notes")
    assert indexed.returncode == 0, indexed.stderr
    assert "3 files indexed, 1 failed" in indexed.stderr and "no extractable text" in indexed.stderr
    assert "indexing into 'notes': 4/4" in indexed.stderr  # stderr is no terminal here: plain progress lines
    found = toolshed(tmp_path, "search", "notes", "what do ducks eat", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 2 and hits[0]["filename"] == "duck.md" and hits[0]["attributes"]["path"].endswith("duck.md")
    again = toolshed(tmp_path, "index", str(DOCS / "md"), "--store", "notes")  # unchanged files are skipped
    assert "3 files indexed" in again.stderr
    missing = toolshed(tmp_path, "search", "nope", "x")
    assert missing.returncode == 1 and "No vector store" in missing.stderr


@pytest.mark.local_state
def test_a_store_the_cli_adds_to_is_searchable_by_the_running_server(server: Server) -> None:
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    first = toolshed(server.data_dir, "index", str(DOCS / "md" / "duck.md"), "--store", "live")
    assert first.returncode == 0, first.stderr
    [store] = [s for s in client.vector_stores.list(limit=100) if s.name == "live"]
    ducks = client.vector_stores.search(store.id, query="what do ducks eat").data
    assert ducks[0].filename == "duck.md"  # the server has now loaded this store's indexes
    second = toolshed(server.data_dir, "index", str(DOCS / "md" / "docling-README.md"), "--store", "live")
    assert second.returncode == 0, second.stderr
    for ranker in ("auto", "none", "keyword"):
        found = client.vector_stores.search(store.id, query="docling document conversion",
                                            ranking_options={"ranker": ranker}).data
        assert found[0].filename == "docling-README.md", ranker


def test_the_cli_finds_one_data_dir_wherever_it_runs_and_errors_are_one_line(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "TOOLSHED_DATA_DIR"}
    env["XDG_DATA_HOME"] = str(tmp_path / "data-home")
    run = lambda cwd, *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
        check=False, timeout=600)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert run(tmp_path / "a", "index", str(DOCS / "md" / "duck.md"), "--store", "notes").returncode == 0
    found = run(tmp_path / "b", "search", "notes", "ducks", "--json")  # started elsewhere: the same data
    assert found.returncode == 0 and json.loads(found.stdout)[0]["filename"] == "duck.md"
    for args, says in ((("index", str(tmp_path / "nowhere"), "--store", "x"), "does not exist"),
                       (("eval", str(DOCS.parent / "scifact"), "--split", "nosuch"), "No such file"),
                       (("eval", str(tmp_path / "nowhere")), "No such file"),
                       (("search", "notes", "ducks", "-k", "0"), "greater than or equal to 1")):
        failed = run(tmp_path / "b", *args)
        said = " ".join(failed.stderr.replace("│", " ").split())  # typer boxes and wraps its usage errors
        assert failed.returncode != 0 and says in said, (args, failed.stderr)
        assert "Traceback" not in failed.stderr

