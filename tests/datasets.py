"""Where the shared evaluation data lives: `../shared/datasets` beside the checkout, wherever it was cloned."""

from __future__ import annotations

import json
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


def scifact_abstracts(first: int, count: int) -> str:
    """`count` SciFact abstracts from the `first`th on, as one Markdown document (a heading per abstract)."""
    with open(DATASETS / "scifact" / "corpus.jsonl") as corpus:
        docs = [json.loads(line) for _, line in zip(range(first + count), corpus, strict=False)][first:]
    return "\n\n".join(f"# {doc['title']}\n\n{doc['text']}" for doc in docs)
