"""Realistic questions over the shared documents: does the passage that answers each rank in the top 10?

bench/data/questions.json holds each question, the shared document that answers it and a phrase of the answer. All
those documents go into one fresh vector store (the real parsers, chunker, model and indexes); a hit is right when
it comes from that document and holds the phrase. Reports recall@10 and MRR@10 for the default (hybrid) mode and
each question's rank, as JSON, kept in bench/results/questions.json.

Run: .venv/bin/python bench/questions.py [--out bench/results/questions.json]
To measure older code, put its checkout first on PYTHONPATH; this script only uses the engine's public verbs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, and bench/retrieval.py would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent] + [str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from retrieval.vector_store import VectorStoreEngine
from tests.datasets import DOCS

QUESTIONS = ROOT / "bench" / "data" / "questions.json"
RESULTS = ROOT / "bench" / "results" / "questions.json"
K = 10


def normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    questions = json.loads(QUESTIONS.read_text())
    documents = sorted({q["file"] for q in questions})
    with tempfile.TemporaryDirectory() as scratch:
        engine = VectorStoreEngine(Path(scratch))
        store = engine.create_store("questions")
        for document in documents:
            engine.attach(store.id, document, Path(document).name)
        engine.ingest(store.id, [(document, DOCS / document) for document in documents])
        ranks = []
        for q in questions:
            hits = engine.search([store.id], q["question"], k=K)
            rank = next((n for n, hit in enumerate(hits, 1)
                         if hit.file_id == q["file"] and normal(q["answer"]) in normal(hit.text)), None)
            ranks.append({"question": q["question"], "rank": rank})
        engine.close()
    found = [r["rank"] for r in ranks if r["rank"] is not None]
    summary = {"questions": len(questions), "documents": len(documents), "mode": "hybrid",
               f"recall_at_{K}": round(len(found) / len(questions), 4),
               f"mrr_at_{K}": round(sum(1 / rank for rank in found) / len(questions), 4), "ranks": ranks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    print(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
