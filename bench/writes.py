"""Writes that cost what they add: 1,000 chunks added to (then removed from) a 100,000-chunk store against the same
on a 10,000-chunk store, same run, with hybrid searches running throughout. Prints JSON; raw samples are kept in
bench/results/writes.json.

A write's cost is its wall time until the store's indexes are settled: the rows committed, the vector and keyword
indexes in memory updated, and any background merge of keyword segments it set off finished. The stores grow by
indexing BEIR SciFact repeatedly, so its texts' cached vectors are reused and nothing is embedded after the first
run (which embeds the corpus once, ~10 min here). Searches pass the query already embedded.

Run: .venv/bin/python bench/writes.py [--dataset ../shared/datasets/scifact] [--data-dir ~/.cache/toolshed-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

from bench.retrieval import percentiles
from retrieval.embedding import embed_texts
from retrieval.evaluate import Dataset, ensure_indexed, load_beir
from retrieval.models import Document, Page
from retrieval.vector_store import VectorStoreEngine

RESULTS = ROOT / "bench" / "results" / "writes.json"
SIZES = (10_000, 100_000)
WRITE_CHUNKS = 1_000
WRITES = 5


def grown(engine: VectorStoreEngine, data: Dataset, size: int) -> str:
    """A store of at least `size` chunks of repeated SciFact (kept in the data dir between runs)."""
    name = f"writes-{size}"
    stores = engine.stores(name=name)
    store_id = stores[0].id if stores else engine.create_store(name).id
    copy = len(engine.files(store_id))
    while (have := engine.chunk_count(store_id)) < size:
        documents = []
        for doc_id, text in data.corpus.items():
            if have + len(documents) * 2 >= size:
                break
            file_id = f"{copy}:{doc_id}"
            engine.attach(store_id, file_id, f"{doc_id}.txt")
            documents.append(Document(file_id, [Page(None, text)]))
            copy += 1
        engine.index_documents(store_id, documents)
    engine.checkpoint(store_id)
    return store_id


def one_write(engine: VectorStoreEngine, data: Dataset, store_id: str, round_: int) -> tuple[float, float, float]:
    """When the removal started, and the seconds to add about WRITE_CHUNKS chunks until settled, and to remove
    them again until settled."""
    documents, chunks = [], 0
    for doc_id, text in data.corpus.items():
        if chunks >= WRITE_CHUNKS:
            break
        file_id = f"write{round_}:{doc_id}"
        engine.attach(store_id, file_id, f"{doc_id}.txt")
        documents.append(Document(file_id, [Page(None, text)]))
        chunks += 2  # SciFact abstracts average about two chunks
    started = time.perf_counter()
    engine.index_documents(store_id, documents)
    engine.warm(store_id)
    added = time.perf_counter() - started
    started = time.perf_counter()
    for document in documents:
        engine.remove_file(store_id, document.file_id)
    engine.warm(store_id)
    return started, added, time.perf_counter() - started


def measure(engine: VectorStoreEngine, data: Dataset, stores: dict[int, str]) -> dict:
    texts = list(data.queries.values())[:200]
    vectors = embed_texts(engine.embedder, texts)
    for store_id in stores.values():
        engine.warm(store_id)
    samples: dict[str, dict[str, list[float]]] = {
        str(size): {"add_s": [], "remove_s": [], "search_while_adding_s": [], "search_while_removing_s": []}
        for size in stores}
    for round_ in range(WRITES):
        for size, store_id in stores.items():  # alternated, so both stores see the same machine
            searches: list[tuple[float, float]] = []
            done = threading.Event()

            def search(store_id: str = store_id, searches: list[tuple[float, float]] = searches,
                       done: threading.Event = done) -> None:
                i = 0
                while not done.is_set():
                    started = time.perf_counter()
                    engine.search([store_id], texts[i % len(texts)], k=10, query_vector=vectors[i % len(texts)])
                    searches.append((started, time.perf_counter() - started))
                    i += 1

            searcher = threading.Thread(target=search)
            searcher.start()
            try:
                removing_from, added, removed = one_write(engine, data, store_id, round_)
            finally:
                done.set()
                searcher.join()
            figures = samples[str(size)]
            figures["add_s"].append(added)
            figures["remove_s"].append(removed)
            for started, seconds in searches:
                figures["search_while_removing_s" if started >= removing_from else "search_while_adding_s"].append(
                    seconds)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "datasets" / "scifact")
    parser.add_argument("--data-dir", type=Path, default=Path(os.path.expanduser("~/.cache/toolshed-bench")))
    args = parser.parse_args()
    engine = VectorStoreEngine(args.data_dir / "retrieval")
    data = load_beir(args.dataset)
    ensure_indexed(engine, data, f"beir:{args.dataset.resolve()}")  # fills the vector cache the stores reuse
    stores = {size: grown(engine, data, size) for size in SIZES}
    samples = measure(engine, data, stores)
    report: dict = {"write_chunks": WRITE_CHUNKS, "writes": WRITES, "search": "hybrid, k=10, query pre-embedded"}
    for size, store_id in stores.items():
        figures = samples[str(size)]
        report[str(size)] = {"chunks": engine.chunk_count(store_id),
                             "add_s_median": round(statistics.median(figures["add_s"]), 3),
                             "remove_s_median": round(statistics.median(figures["remove_s"]), 3),
                             "search_while_adding": percentiles(figures["search_while_adding_s"]),
                             "search_while_removing": percentiles(figures["search_while_removing_s"])}
    small, big = (report[str(size)] for size in SIZES)
    report["add_cost_ratio"] = round(big["add_s_median"] / small["add_s_median"], 2)
    report["remove_cost_ratio"] = round(big["remove_s_median"] / small["remove_s_median"], 2)
    print(json.dumps(report, indent=1))
    RESULTS.write_text(json.dumps({**report, "samples": samples}))
    engine.close()


if __name__ == "__main__":
    main()
