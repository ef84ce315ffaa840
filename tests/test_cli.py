"""`toolshed index` and `toolshed search` as a user runs them: real subprocesses, no server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.datasets import DOCS


def toolshed(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOOLSHED_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_index_then_search_offline(tmp_path: Path) -> None:
    indexed = toolshed(tmp_path, "index", str(DOCS / "md"), str(DOCS / "pdf" / "scanned-no-text-layer-4p.pdf"),
                       "--store", "notes")
    assert indexed.returncode == 0, indexed.stderr
    assert "3 files indexed, 1 failed" in indexed.stderr and "no extractable text" in indexed.stderr
    found = toolshed(tmp_path, "search", "notes", "what do ducks eat", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 2 and hits[0]["filename"] == "duck.md" and hits[0]["attributes"]["path"].endswith("duck.md")
    again = toolshed(tmp_path, "index", str(DOCS / "md"), "--store", "notes")  # unchanged files are skipped
    assert "3 files indexed" in again.stderr
    missing = toolshed(tmp_path, "search", "nope", "x")
    assert missing.returncode == 1 and "No vector store" in missing.stderr
