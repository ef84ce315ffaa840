"""Ingestion speed (issue 17.4) on BEIR SciFact: prints JSON, keeps raw samples. Everything is measured in one run.

- ratio: the whole ingestion path (chunking, embedding with the default int8 runtime, SQLite, FTS5, postings) on a
  slice of the corpus, against raw PyTorch `model.encode` on the very same chunks, alternated to share noise;
- the whole corpus indexed the way `toolshed eval` does it, once per runtime (int8 and PyTorch), each in a fresh
  store with an empty embedding cache: the time, and nDCG@10 on the test split for each search mode.

Run: .venv/bin/python bench/ingestion.py [--dataset ../shared/datasets/scifact] [--out bench/results/ingestion.json]
It takes ~20 minutes here, most of it the PyTorch baseline of the whole corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `retrieval` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from retrieval.chunking import chunk_pages
from retrieval.embedding import Embedder, SentenceTransformerEmbedder, embed_texts
from retrieval.evaluate import ensure_indexed, evaluate, load_beir
from retrieval.models import ChunkingStrategy, Document, Page
from retrieval.runtimes import load_embedder
from retrieval.vector_store import VectorStoreEngine

MODES = ("dense", "keyword", "hybrid")


def ingestion_vs_raw_encode(fast: Embedder, trained: SentenceTransformerEmbedder, dataset_dir: Path,
                            documents: int, rounds: int) -> dict:
    """Chunks per second: ingestion with the int8 runtime (fresh store, empty cache) vs PyTorch on its chunks."""
    data = load_beir(dataset_dir)
    doc_ids = list(data.corpus)[:documents]
    chunks = [c.text for d in doc_ids for c in chunk_pages([Page(None, data.corpus[d])], ChunkingStrategy(),
                                                            window=fast.window, token_spans=fast.token_spans)]
    raw, ingest = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        embed_texts(trained, chunks)
        raw.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as scratch:
            engine = VectorStoreEngine(Path(scratch), embedder=fast)
            store = engine.create_store("throughput")
            for doc_id in doc_ids:
                engine.attach(store.id, doc_id, f"{doc_id}.txt")
            started = time.perf_counter()
            engine.index_documents(store.id, [Document(d, [Page(None, data.corpus[d])]) for d in doc_ids])
            ingest.append(time.perf_counter() - started)
            engine.close()
    raw_rate, ingest_rate = len(chunks) / statistics.median(raw), len(chunks) / statistics.median(ingest)
    return {"documents": documents, "chunks": len(chunks), "rounds": rounds,
            "raw_pytorch_encode_chunks_per_s": round(raw_rate, 1), "ingestion_chunks_per_s": round(ingest_rate, 1),
            "ratio": round(ingest_rate / raw_rate, 3), "target_ratio": 2.0,
            "samples_s": {"raw_pytorch_encode": [round(s, 3) for s in raw],
                          "ingestion": [round(s, 3) for s in ingest]}}


def whole_corpus(embedder: Embedder, dataset_dir: Path) -> dict:
    """The whole corpus into a fresh store (as `toolshed eval` indexes it), then every mode on the test split."""
    test = load_beir(dataset_dir, "test")
    with tempfile.TemporaryDirectory() as scratch:
        engine = VectorStoreEngine(Path(scratch), embedder=embedder)
        store_id, indexing = ensure_indexed(engine, test, "scifact")
        result: dict = {"indexing": indexing, "chunks": engine.chunk_count(store_id)}
        for mode in MODES:
            report = evaluate(engine, store_id, test, mode)
            result[mode] = {"ndcg_at_10": report.ndcg_at_10, "recall_at_100": report.recall_at_100,
                            "query_ms_p50": report.query_ms_p50}
        engine.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
                        / "scifact")
    parser.add_argument("--documents", type=int, default=400, help="the slice for the ratio")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ingestion.json")
    args = parser.parse_args()
    started = time.perf_counter()
    fast = load_embedder()
    load_seconds = time.perf_counter() - started
    trained = SentenceTransformerEmbedder()
    result: dict = {"machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
                    "runtime": type(fast).__name__, "int8_model_load_s": round(load_seconds, 2)}
    result["ratio"] = ingestion_vs_raw_encode(fast, trained, args.dataset, args.documents, args.rounds)
    result["corpus"] = {"int8": whole_corpus(fast, args.dataset), "pytorch": whole_corpus(trained, args.dataset)}
    result["corpus"]["hybrid_ndcg_loss"] = round(result["corpus"]["pytorch"]["hybrid"]["ndcg_at_10"]
                                                 - result["corpus"]["int8"]["hybrid"]["ndcg_at_10"], 4)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
