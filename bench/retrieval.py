"""Retrieval benchmark on BEIR SciFact: prints JSON. Everything is measured in one run.

- fusion weight: swept on the *train* split only (809 queries); the best weight is then used on test;
- quality on the test split (300 queries) for dense, keyword and hybrid: nDCG@10, Recall@10/@100, MRR@10;
- search latency on a 100,000-chunk store, excluding query embedding (reported separately).

Run: .venv/bin/python bench/retrieval.py [--dataset ../shared/datasets/scifact] [--data-dir ~/.cache/toolshed-bench]
The data dir keeps the embedding cache, so only the first run pays for embedding the corpus (~10 min here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `retrieval` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from retrieval.embedding import embed_texts
from retrieval.evaluate import CHUNK_CANDIDATES, ensure_indexed, evaluate, load_beir, ndcg_at
from retrieval.fusion import fuse
from retrieval.models import Document, Page
from retrieval.vector_store import VectorStoreEngine

WEIGHTS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7]


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    pick = lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 2)  # noqa: E731
    return {"n": len(ms), "p50_ms": pick(0.5), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "mean_ms": round(statistics.fmean(ms), 2)}


def sweep_weights(engine: VectorStoreEngine, store_id: str, dataset_dir: Path) -> dict:
    """nDCG@10 on the train split for each dense weight, from one dense and one keyword search per query."""
    train = load_beir(dataset_dir, "train")
    runs = []
    for query_id, text in train.queries.items():
        dense = engine.search([store_id], text, k=CHUNK_CANDIDATES, mode="dense", candidates=CHUNK_CANDIDATES)
        keyword = engine.search([store_id], text, k=CHUNK_CANDIDATES, mode="keyword", candidates=CHUNK_CANDIDATES)
        owner = {h.chunk_id: h.file_id for h in dense + keyword}
        runs.append((train.qrels[query_id], [(h.chunk_id, h.score) for h in dense],
                     [(h.chunk_id, h.score) for h in keyword], owner))
    scores = {}
    for weight in WEIGHTS:
        values = []
        for relevant, dense, keyword, owner in runs:
            ranking = list(dict.fromkeys(owner[hit.chunk_id] for hit in fuse(dense, keyword, weight, CHUNK_CANDIDATES)))
            values.append(ndcg_at(ranking, relevant, 10))
        scores[str(weight)] = round(statistics.fmean(values), 4)
    best = max(WEIGHTS, key=lambda w: scores[str(w)])
    return {"split": "train", "queries": len(runs), "ndcg_at_10_by_dense_weight": scores, "best_dense_weight": best}


def latency_at_100k(engine: VectorStoreEngine, dataset_dir: Path, target_chunks: int, queries: int) -> dict:
    """Search latency with the query already embedded, on a store grown to `target_chunks` by indexing the corpus
    repeatedly (identical texts reuse cached vectors, so this costs no embedding)."""
    data = load_beir(dataset_dir)
    stores = engine.stores(name="latency-100k")
    store_id = stores[0].id if stores else engine.create_store("latency-100k").id
    copy = len(engine.files(store_id))
    have = engine.chunk_count(store_id)
    while have < target_chunks:
        batch = []
        for doc_id, text in data.corpus.items():
            file_id = f"{copy}:{doc_id}"
            engine.attach(store_id, file_id, f"{doc_id}.txt")
            batch.append(Document(file_id, [Page(None, text)]))
        engine.index_documents(store_id, batch)
        copy += len(batch)
        have = engine.chunk_count(store_id)
    engine.checkpoint(store_id)
    texts = list(data.queries.values())[:queries]
    started = time.perf_counter()
    vectors = embed_texts(engine.embedder, texts)
    embed_ms = (time.perf_counter() - started) * 1000 / len(texts)
    engine.warm(store_id)
    result = {"chunks": have, "query_embedding_ms_mean": round(embed_ms, 2)}
    for mode in ("dense", "keyword", "hybrid"):
        samples = []
        for text, vector in zip(texts, vectors, strict=True):
            started = time.perf_counter()
            engine.search([store_id], text, k=10, mode=mode, query_vector=vector)
            samples.append(time.perf_counter() - started)
        result[mode] = percentiles(samples)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
                        / "scifact")
    parser.add_argument("--data-dir", type=Path, default=Path(os.path.expanduser("~/.cache/toolshed-bench")))
    parser.add_argument("--latency-chunks", type=int, default=100_000)
    args = parser.parse_args()
    engine = VectorStoreEngine(args.data_dir / "retrieval")
    test = load_beir(args.dataset, "test")
    store_id, indexing = ensure_indexed(engine, test, f"beir:{args.dataset.resolve()}")
    result: dict = {"dataset": str(args.dataset), "corpus_indexing": indexing}
    result["fusion_weight"] = sweep_weights(engine, store_id, args.dataset)
    engine.dense_weight = result["fusion_weight"]["best_dense_weight"]
    result["test"] = {}
    for mode in ("dense", "keyword", "hybrid"):
        report = evaluate(engine, store_id, test, mode)
        result["test"][mode] = {"ndcg_at_10": report.ndcg_at_10, "recall_at_10": report.recall_at_10,
                                "recall_at_100": report.recall_at_100, "mrr_at_10": report.mrr_at_10,
                                "query_ms_p50": report.query_ms_p50, "query_ms_p95": report.query_ms_p95}
    result["search_latency"] = latency_at_100k(engine, args.dataset, args.latency_chunks, 300)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
