"""Where the shared evaluation data lives: `../shared/datasets` beside the checkout, wherever it was cloned."""

from __future__ import annotations

import os
from pathlib import Path


def datasets_dir() -> Path:
    candidates = [Path(os.environ["TOOLSHED_DATASETS"])] if os.environ.get("TOOLSHED_DATASETS") else []
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "datasets", Path("/work/shared/datasets")]
    for candidate in candidates:
        if (candidate / "scifact" / "corpus.jsonl").exists():
            return candidate
    raise FileNotFoundError(f"the shared datasets are missing (looked in {', '.join(map(str, candidates))}); "
                            "set TOOLSHED_DATASETS")


DATASETS = datasets_dir()
DOCS = DATASETS / "docs"
