"""A million chunks: which FAISS index answers hybrid search fast enough at 10^6 chunks, at what recall, memory and
start-up. Prints JSON; raw samples are kept in bench/results/million.json.

The store is SciFact's ~10,000 real chunks repeated: each copy keeps its chunk's analysed text (real keyword
statistics) and takes its real embedding plus Gaussian noise (sigma 0.04 per dimension, renormalised: cosine
~0.8 to the original), so the vectors keep the corpus's cluster structure without being duplicates. Queries are
SciFact's test queries, embedded once. Recall@10 is against exact float32 search (numpy). Search times exclude
embedding the query. Baseline: the exact float16 scan the engine uses below the switch size, same run.

Run: .venv/bin/python bench/million.py [--chunks 1000000] [--data-dir ~/.cache/toolshed-bench]
(needs the SciFact store that bench/retrieval.py or bench/writes.py leaves in the data dir)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

import numpy as np

from bench.retrieval import percentiles
from retrieval.embedding import embed_texts
from retrieval.evaluate import load_beir
from retrieval.fusion import DEFAULT_DENSE_WEIGHT, rank
from retrieval.index import VectorIndex
from retrieval.keyword import Analyzer
from retrieval.postings import Bm25Postings
from retrieval.vector_store import VectorStoreEngine

RESULTS = ROOT / "bench" / "results" / "million.json"
SIGMA = 0.04
DEPTH = 50  # candidates per side for k=10, as the engine asks
PROBES = (8, 16, 32, 64)


def real_chunks(data_dir: Path, dataset: Path, model: str) -> tuple[np.ndarray, list[str]]:
    """SciFact's chunks as indexed in the bench data dir: embeddings and analysed keyword text."""
    with sqlite3.connect(data_dir / "retrieval" / "retrieval.db") as conn:
        key, store_id = conn.execute("SELECT key, id FROM stores WHERE name = ?",
                                     (f"beir:{dataset.resolve()}",)).fetchone()
        rows = conn.execute(f"SELECT e.vector, k.body FROM chunks c JOIN embeddings e ON e.model = ? AND "
                            f"e.hash = c.hash JOIN kw_{key} k ON k.rowid = c.id WHERE c.store_id = ? ORDER BY c.id",
                            (model, store_id)).fetchall()
    vectors = np.frombuffer(b"".join(vector for vector, _ in rows), dtype=np.float32).reshape(len(rows), -1)
    return vectors, [body for _, body in rows]


def grown(vectors: np.ndarray, chunks: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    out = np.empty((chunks, vectors.shape[1]), dtype=np.float32)
    for start in range(0, chunks, 100_000):
        end = min(start + 100_000, chunks)
        block = vectors[np.arange(start, end) % len(vectors)] + rng.normal(0, SIGMA, (end - start, vectors.shape[1]))
        out[start:end] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out[:len(vectors)] = vectors[:chunks]  # the originals themselves are in the store too
    return out


def timed(fn: object, *args: object) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    return result, time.perf_counter() - started


def dense_figures(index: VectorIndex, queries: np.ndarray, truth: list[set[int]]) -> tuple[dict, list[float]]:
    seconds, recalls = [], []
    for vector, exact in zip(queries, truth, strict=True):
        started = time.perf_counter()
        hits = index.search(vector, DEPTH)
        seconds.append(time.perf_counter() - started)
        recalls.append(len({i for i, _ in hits[:10]} & exact) / 10)
    return {**percentiles(seconds), "recall_at_10": round(float(np.mean(recalls)), 4)}, seconds


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--lists", type=int, default=4096)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "datasets" / "scifact")
    parser.add_argument("--data-dir", type=Path, default=Path(os.path.expanduser("~/.cache/toolshed-bench")))
    args = parser.parse_args()
    engine = VectorStoreEngine(Path(tempfile.mkdtemp(prefix="toolshed-bench-million-")))
    base, bodies = real_chunks(args.data_dir, args.dataset, engine.model_name)
    data = load_beir(args.dataset)
    texts = list(data.queries.values())
    queries = embed_texts(engine.embedder, texts)
    vectors = grown(base, args.chunks)
    ids = np.arange(1, args.chunks + 1, dtype=np.int64)
    truth = [set((np.argpartition(-(vectors @ q), 10)[:10] + 1).tolist()) for q in queries]
    report: dict = {"chunks": args.chunks, "real_chunks": len(base), "sigma": SIGMA, "queries": len(queries),
                    "depth": DEPTH}
    samples: dict[str, list[float]] = {}

    flat = VectorIndex(base.shape[1])
    _, report["flat_build_s"] = timed(flat.add, ids, vectors)
    report["flat"], samples["flat"] = dense_figures(flat, queries, truth)
    del flat

    memory_before = rss_mib()
    ivf, build = timed(VectorIndex.inverted, ids, vectors, args.lists)
    assert isinstance(ivf, VectorIndex)
    report["ivf"] = {"lists": args.lists, "build_s": round(build, 1), "by_probes": {}}
    for probes in PROBES:
        ivf._index.nprobe = probes
        figures, samples[f"ivf_{probes}"] = dense_figures(ivf, queries, truth)
        report["ivf"]["by_probes"][str(probes)] = figures
    from retrieval.index import IVF_PROBES
    ivf._index.nprobe = IVF_PROBES

    analyzer = Analyzer()
    postings = Bm25Postings()
    started = time.perf_counter()
    for start in range(0, args.chunks, 20_000):  # as writes would add them; merges run meanwhile
        postings.add([(int(i), bodies[(i - 1) % len(bodies)]) for i in range(start + 1,
                                                                             min(start + 20_000, args.chunks) + 1)])
    postings.wait()
    report["keyword"] = {"build_s": round(time.perf_counter() - started, 1), "segments": postings.segments}
    report["resident_mib_ivf_and_postings"] = round(rss_mib() - memory_before, 1)
    terms = [sorted(set(analyzer.terms(text))) for text in texts]
    keyword_s, hybrid_s = [], []
    for vector, query_terms in zip(queries, terms, strict=True):
        started = time.perf_counter()
        postings.search(query_terms, DEPTH, None)
        keyword_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        rank("hybrid", ivf.search(vector, DEPTH), postings.search(query_terms, DEPTH, None), DEFAULT_DENSE_WEIGHT,
             DEPTH)
        hybrid_s.append(time.perf_counter() - started)
    report["keyword"] |= percentiles(keyword_s)
    report["hybrid_ivf"] = percentiles(hybrid_s)
    samples |= {"keyword": keyword_s, "hybrid_ivf": hybrid_s}

    with tempfile.TemporaryDirectory() as scratch:
        ivf.save(Path(scratch) / "m.faiss")
        postings.save(Path(scratch) / "m.bm25.npz")
        sizes = {name: (Path(scratch) / name).stat().st_size / 2**20 for name in ("m.faiss", "m.bm25.npz")}
        _, load_vectors = timed(VectorIndex.load, Path(scratch) / "m.faiss", base.shape[1])
        _, load_keyword = timed(Bm25Postings.load, Path(scratch) / "m.bm25.npz")
    report["checkpoint_mib"] = {name: round(size, 1) for name, size in sizes.items()}
    report["startup_s"] = {"vectors": round(load_vectors, 2), "keyword": round(load_keyword, 2),
                           "total": round(load_vectors + load_keyword, 2)}
    print(json.dumps(report, indent=1))
    RESULTS.write_text(json.dumps({**report, "samples_ms": {
        name: [round(x * 1000, 3) for x in values] for name, values in samples.items()}}))


if __name__ == "__main__":
    main()
