"""Retrieval quality on a BEIR-format dataset: nDCG@10, Recall@10/@100, MRR@10, plus speed.

A dataset folder holds `corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id", "text"}) and
`qrels/<split>.tsv` (query-id, corpus-id, score, with a header). Each document becomes one file of a vector
store (title and text as one page); a document's score for a query is its best chunk's score.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.models import ChunkingStrategy, Document, Page, SearchMode
from retrieval.vector_store import VectorStoreEngine

DOC_CANDIDATES = 100
# Chunks fetched per query so that at least DOC_CANDIDATES distinct documents survive grouping.
CHUNK_CANDIDATES = 400


@dataclass(frozen=True)
class Dataset:
    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass
class Report:
    dataset: str
    split: str
    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    mrr_at_10: float
    query_ms_p50: float
    query_ms_p95: float
    indexing: dict[str, float] = field(default_factory=dict)


def load_beir(folder: Path, split: str = "test") -> Dataset:
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[str(doc["_id"])] = f"{doc.get('title', '')}\n{doc.get('text', '')}".strip()
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        queries = {str(q["_id"]): q["text"] for q in map(json.loads, fh)}
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
        next(fh)  # header
        for line in fh:
            query_id, doc_id, score = line.rstrip("\n").split("\t")[:3]
            qrels[query_id][doc_id] = int(score)
    return Dataset(folder.name, corpus, {q: queries[q] for q in qrels if q in queries}, dict(qrels))


def ensure_indexed(engine: VectorStoreEngine, dataset: Dataset, store_name: str,
                   progress: Callable[[int], None] | None = None) -> tuple[str, dict[str, float]]:
    """The store holding the corpus, indexing whatever is missing; returns (store id, indexing figures)."""
    stores = engine.stores(name=store_name)
    store_id = stores[0].id if stores else engine.create_store(store_name).id
    done = {f.file_id for f in engine.files(store_id, status="completed")}
    missing = [doc_id for doc_id in dataset.corpus if doc_id not in done]
    if progress and len(done):
        progress(len(dataset.corpus) - len(missing))
    started = time.perf_counter()
    for doc_id in missing:
        engine.attach(store_id, doc_id, f"{doc_id}.txt", chunking=ChunkingStrategy())
    engine.index_documents(store_id, [Document(d, [Page(None, dataset.corpus[d])]) for d in missing], progress)
    engine.checkpoint(store_id)
    seconds = time.perf_counter() - started
    engine.warm(store_id)
    figures = {"documents_indexed": len(missing), "seconds": round(seconds, 1)}
    if missing:
        figures["documents_per_second"] = round(len(missing) / seconds, 1)
    return store_id, figures


def evaluate(engine: VectorStoreEngine, store_id: str, dataset: Dataset, mode: SearchMode,
             progress: Callable[[int], None] | None = None) -> Report:
    latencies, ndcg, recall10, recall100, mrr = [], [], [], [], []
    for query_id, text in dataset.queries.items():
        started = time.perf_counter()
        hits = engine.search([store_id], text, k=CHUNK_CANDIDATES, mode=mode, candidates=CHUNK_CANDIDATES)
        latencies.append(time.perf_counter() - started)
        ranking = _documents(hits)
        relevant = dataset.qrels[query_id]
        ndcg.append(ndcg_at(ranking, relevant, 10))
        recall10.append(recall_at(ranking, relevant, 10))
        recall100.append(recall_at(ranking, relevant, 100))
        mrr.append(mrr_at(ranking, relevant, 10))
        if progress:
            progress(1)
    ms = sorted(s * 1000 for s in latencies)
    return Report(dataset.name, "", mode, len(ndcg), _mean(ndcg), _mean(recall10), _mean(recall100), _mean(mrr),
                  round(ms[len(ms) // 2], 2), round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2))


def _documents(hits: list) -> list[str]:
    """Documents in order of their best chunk."""
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.file_id, None)
    return list(seen)[:DOC_CANDIDATES]


def ndcg_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranking[:k]))
    ideal = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return dcg / ideal if ideal else 0.0


def recall_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    wanted = {doc for doc, gain in relevant.items() if gain > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranking: list[str], relevant: dict[str, int], k: int) -> float:
    for rank, doc in enumerate(ranking[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0
