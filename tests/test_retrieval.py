"""The retrieval engine as a library: parsing, chunking, the real embedding model, FAISS + BM25, persistence."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfWriter

from retrieval import filters
from retrieval.chunking import chunk_pages
from retrieval.embedding import Embedder, embed_texts
from retrieval.errors import FileProblem, InvalidRequest
from retrieval.evaluate import ensure_indexed, evaluate, load_beir, ndcg_at
from retrieval.fusion import fuse
from retrieval.models import ChunkingStrategy
from retrieval.parsing import parse
from retrieval.vector_store import VectorStoreEngine
from tests.datasets import DATASETS, DOCS, scifact_abstracts

PDF = DOCS / "pdf" / "arxiv-1706.03762-attention-is-all-you-need.pdf"


class CountingEmbedder:
    """The real model, counting what it is asked to encode (to prove the cache works)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.encoded = inner, 0
        self.name, self.dimension, self.window = inner.name, inner.dimension, inner.window

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.inner.token_spans(text)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += len(texts)
        return self.inner.encode(texts)


@pytest.fixture
def engine(tmp_path: Path, embedder: Embedder) -> VectorStoreEngine:
    return VectorStoreEngine(tmp_path, embedder=CountingEmbedder(embedder))


def test_parsers_read_every_format_page_aware() -> None:
    pages = parse(PDF, PDF.name)
    assert [p.number for p in pages][:3] == [1, 2, 3] and "Scaled Dot-Product Attention" in pages[3].text
    slides = parse(DOCS / "office" / "sample-presentation.pptx", "deck.pptx")
    assert all(p.number is not None for p in slides)
    assert "Duck" in parse(DOCS / "html" / "wikipedia-duck.html", "duck.html")[0].text
    html = parse(DOCS / "html" / "wikipedia-duck.html", "duck.html")[0].text
    assert "<script" not in html and "function(" not in html
    assert parse(DOCS / "office" / "word_sample.docx", "w.docx")[0].text.strip()
    assert "swim" in parse(DOCS / "md" / "duck.md", "duck.md")[0].text


@pytest.mark.parametrize(("data", "name", "code"), [
    (b"%PDF-1.7 garbage", "broken.pdf", "invalid_file"),
    (PDF.read_bytes()[:4000], "truncated.pdf", "invalid_file"),
    (b"PK\x03\x04 not really a zip", "fake.docx", "invalid_file"),
    (b"\x00\x01\x02binary", "blob.bin", "unsupported_file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image.png", "unsupported_file"),
    (b"   \n\n  ", "empty.txt", "unsupported_file"),
])
def test_unreadable_files_fail_with_openai_codes(tmp_path: Path, data: bytes, name: str, code: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(FileProblem) as caught:
        parse(path, name)
    assert caught.value.code == code


def test_scanned_pdf_is_unsupported_and_empty_password_pdf_opens(tmp_path: Path) -> None:
    with pytest.raises(FileProblem) as caught:
        parse(DOCS / "pdf" / "scanned-no-text-layer-4p.pdf", "scan.pdf")
    assert caught.value.code == "unsupported_file"
    writer = PdfWriter(clone_from=str(DOCS / "pdf" / "backus-1977-turing-lecture-p21.pdf"))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    encrypted = tmp_path / "encrypted.pdf"
    encrypted.write_bytes(buffer.getvalue())
    plain = parse(DOCS / "pdf" / "backus-1977-turing-lecture-p21.pdf", "plain.pdf")
    assert parse(encrypted, "encrypted.pdf") == plain


def test_chunks_are_exact_spans_that_lose_no_text(embedder: Embedder) -> None:
    pages = parse(PDF, PDF.name)
    for strategy in (ChunkingStrategy(), ChunkingStrategy.static(100, 50), ChunkingStrategy.static(1000, 0)):
        chunks = chunk_pages(pages, strategy, window=embedder.window, token_spans=embedder.token_spans)
        limit = embedder.window if strategy.type == "auto" else strategy.max_chunk_size_tokens
        assert max(c.tokens for c in chunks) <= limit
        for page in pages:
            covered = bytearray(len(page.text))
            for chunk in (c for c in chunks if c.page == page.number):
                assert page.text[chunk.start:chunk.end] == chunk.text
                covered[chunk.start:chunk.end] = b"\x01" * (chunk.end - chunk.start)
            lost = [ch for ch, seen in zip(page.text, covered, strict=True) if not seen and not ch.isspace()]
            assert not lost, f"page {page.number} lost {''.join(lost)[:40]!r}"


def test_static_chunking_limits_follow_openai() -> None:
    with pytest.raises(InvalidRequest):
        ChunkingStrategy.static(99, 0)
    with pytest.raises(InvalidRequest):
        ChunkingStrategy.static(800, 401)
    assert ChunkingStrategy.static(4096, 2048).max_chunk_size_tokens == 4096


def test_long_chunks_are_embedded_whole_not_truncated(embedder: Embedder) -> None:
    head = "The mitochondria is the powerhouse of the cell. " * 40  # about 400 word pieces
    tail = " Quarterly revenue of the retail segment grew by twelve percent."
    with_tail, without_tail = embed_texts(embedder, [head + tail, head])
    # Truncating at the window would make both identical; the tail must move the vector.
    assert float(with_tail @ without_tail) < 0.999
    assert abs(float(np.linalg.norm(with_tail)) - 1.0) < 1e-5


def test_dense_keyword_and_hybrid_find_the_right_passage(engine: VectorStoreEngine) -> None:
    store = engine.create_store("papers")
    files = (("pdf", PDF), ("md", DOCS / "md" / "duck.md"), ("docx", DOCS / "office" / "word_sample.docx"))
    for file_id, path in files:
        engine.attach(store.id, file_id, path.name, attributes={"kind": path.suffix.lstrip("."), "n": len(file_id)})
    engine.ingest(store.id, list(files))
    assert {f.status for f in engine.files(store.id)} == {"completed"}
    for mode in ("dense", "keyword", "hybrid"):
        [top] = engine.search([store.id], "scaled dot-product attention formula with softmax", k=1, mode=mode)
        assert (top.file_id, top.page) == ("pdf", 4), mode
        assert "softmax" in top.text.lower()
    ducks = engine.search([store.id], "what does a duck eat", k=3, filters={"type": "eq", "key": "kind", "value": "md"})
    assert ducks and {h.file_id for h in ducks} == {"md"}
    both = {"type": "or", "filters": [{"type": "in", "key": "kind", "value": ["docx"]},
                                      {"type": "gte", "key": "n", "value": 3}]}
    assert {h.file_id for h in engine.search([store.id], "document", k=50, filters=both)} == {"docx", "pdf"}
    engine.remove_file(store.id, "pdf")
    assert all(h.file_id != "pdf" for h in engine.search([store.id], "scaled dot-product attention", k=10))


def test_the_same_text_is_embedded_once_across_stores(engine: VectorStoreEngine) -> None:
    path = DOCS / "md" / "docling-README.md"
    counts = []
    for name in ("one", "two"):
        store = engine.create_store(name)
        engine.attach(store.id, "readme", path.name)
        engine.ingest(store.id, [("readme", path)])
        counts.append(engine.embedder.encoded)
    assert counts[0] >= len(engine.chunks(store.id, "readme")) > 0
    assert counts[1] == counts[0]  # the second store reused every vector


def test_a_restarted_engine_loads_checkpoint_plus_later_writes(tmp_path: Path,
                                                              embedder: Embedder) -> None:
    engine = VectorStoreEngine(tmp_path, embedder=embedder)
    store = engine.create_store("persist")
    engine.attach(store.id, "md", "duck.md")
    engine.ingest(store.id, [("md", DOCS / "md" / "duck.md")])
    engine.checkpoint(store.id)
    engine.attach(store.id, "pdf", PDF.name)
    engine.ingest(store.id, [("pdf", PDF)])  # after the checkpoint: only in the database
    engine.remove_file(store.id, "md")
    engine.close()

    reopened = VectorStoreEngine(tmp_path, embedder=embedder)
    hits = reopened.search([store.id], "multi-head attention", k=5, mode="dense")
    assert hits and {h.file_id for h in hits} == {"pdf"}
    checkpoints = list((tmp_path / "indexes").glob("*.faiss"))
    assert len(checkpoints) == 1
    # A corrupt checkpoint is rebuilt from the database rather than trusted.
    checkpoints[0].write_bytes(b"garbage")
    again = VectorStoreEngine(tmp_path, embedder=embedder)
    assert {h.file_id for h in again.search([store.id], "multi-head attention", k=5, mode="dense")} == {"pdf"}


def test_filters_and_fusion_units() -> None:
    attrs = {"year": 2024, "team": "search", "public": True}
    assert filters.matches({"type": "gt", "key": "year", "value": 2020}, attrs)
    assert not filters.matches({"type": "eq", "key": "public", "value": 1}, attrs)  # bool is not a number
    assert filters.matches({"type": "nin", "key": "missing", "value": ["x"]}, attrs)
    assert not filters.matches({"type": "lt", "key": "team", "value": 3}, attrs)
    with pytest.raises(InvalidRequest):
        filters.validate({"type": "between", "key": "year", "value": 1})
    with pytest.raises(InvalidRequest):
        filters.validate({"type": "and", "filters": []})
    fused = fuse([(1, 0.9), (2, 0.8), (4, 0.1)], [(2, 0.6), (3, 0.2)], dense_weight=0.5, depth=3)
    assert [hit.chunk_id for hit in fused] == [2, 1, 3, 4] and fused[0].score == pytest.approx(0.7)
    # 3 was no dense candidate: it scores at most the dense cutoff (0.1) there, and reports it as unknown
    assert fused[2].score == pytest.approx(0.5 * 0.1 + 0.5 * 0.2) and fused[2].dense is None
    assert fused[1].keyword is None and fused[1].score == pytest.approx(0.45)  # the keyword list was complete


def test_eval_on_a_slice_of_scifact(tmp_path: Path, embedder: Embedder) -> None:
    """The BEIR pipeline end to end on 300 real SciFact documents and the test queries that judge them."""
    full = load_beir(DATASETS / "scifact")
    wanted = {d for rel in full.qrels.values() for d in rel}
    keep = sorted(wanted)[:150] + [d for d in full.corpus if d not in wanted][:150]
    folder = tmp_path / "slice"
    (folder / "qrels").mkdir(parents=True)
    with open(DATASETS / "scifact" / "corpus.jsonl") as fh, open(folder / "corpus.jsonl", "w") as out:
        out.writelines(line for line in fh if json.loads(line)["_id"] in set(keep))
    queries = {q for q, rel in full.qrels.items() if set(rel) <= set(keep)}
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": full.queries[q]}) + "\n"
                                                  for q in sorted(queries)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{s}\n" for q in sorted(queries) for d, s in full.qrels[q].items()))
    engine = VectorStoreEngine(tmp_path / "engine", embedder=embedder)
    data = load_beir(folder)
    store_id, indexing = ensure_indexed(engine, data, "slice")
    assert indexing["documents_indexed"] == 300
    reports = {mode: evaluate(engine, store_id, data, mode) for mode in ("dense", "keyword", "hybrid")}
    for report in reports.values():
        assert report.queries == len(queries) and 0.5 < report.ndcg_at_10 <= 1.0
        assert report.recall_at_100 >= report.recall_at_10
    assert ensure_indexed(engine, data, "slice")[1]["documents_indexed"] == 0  # nothing re-embedded


def test_ndcg_matches_a_hand_computed_value() -> None:
    assert ndcg_at(["a", "b", "c"], {"b": 1}, 10) == pytest.approx(1 / np.log2(3))
    assert ndcg_at(["x"], {"b": 1}, 10) == 0.0


def test_identical_passages_fill_one_slot_not_several(engine: VectorStoreEngine) -> None:
    store = engine.create_store("twice")
    path = DOCS / "md" / "duck.md"
    for file_id in ("first-upload", "second-upload"):  # the same document uploaded twice
        engine.attach(store.id, file_id, path.name)
        engine.ingest(store.id, [(file_id, path)])
    hits = engine.search([store.id], "what do ducks eat", k=4)
    texts = [" ".join(hit.text.split()) for hit in hits]
    assert len(texts) == len(set(texts)) and len(hits) == min(4, engine.chunk_count(store.id) // 2)


def test_hybrid_scores_are_absolute_so_junk_scores_low(engine: VectorStoreEngine) -> None:
    store = engine.create_store("scores")
    for file_id, path in (("attention", PDF), ("duck", DOCS / "md" / "duck.md")):
        engine.attach(store.id, file_id, path.name)
        engine.ingest(store.id, [(file_id, path)])
    nonsense = engine.search([store.id], "asdkjh qwpoeiru", k=10)
    unanswerable = engine.search([store.id], "who won the world cup in 2018", k=10)
    assert max(h.score for h in nonsense + unanswerable) < 0.2  # min-max scaling gave these 0.5 to 1.0
    [best, *_] = engine.search([store.id], "how is dot-product attention scaled", k=10)
    assert best.file_id == "attention" and best.score > 0.3
    assert best.dense_score is not None and best.keyword_score is not None
    weight = engine.dense_weight
    assert best.score == pytest.approx(weight * best.dense_score + (1 - weight) * best.keyword_score, abs=1e-6)
    assert engine.search([store.id], "asdkjh qwpoeiru", k=10, score_threshold=0.2) == []


def test_a_full_disk_during_an_index_write_leaves_nothing_behind(tmp_path: Path,
                                                                 embedder: Embedder) -> None:
    """The index on a real 4 MiB tmpfs, filled to the last byte: indexing a file raises DiskFull and leaves none
    of its chunks, in the database or in the loaded vector index (whose chunk ids SQLite hands out again: a
    stale vector would make another file's chunk answer for this one); with space back, indexing works."""
    import subprocess

    from retrieval.errors import DiskFull

    root = tmp_path / "index"
    root.mkdir()
    sources = {name: tmp_path / f"{name}.md" for name in ("a", "b", "c")}
    for path, (first, count) in zip(sources.values(), ((0, 1), (1, 60), (100, 60)), strict=True):
        path.write_text(scifact_abstracts(first, count))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], check=True)
    try:
        engine = VectorStoreEngine(root, embedder=embedder)
        store = engine.create_store("s").id
        for name in sources:
            engine.attach(store, name, f"{name}.md")
        engine.ingest(store, [("a", sources["a"])])
        assert engine.file(store, "a").status == "completed"
        b_sentence = scifact_abstracts(1, 1).split("\n\n")[1][:300]
        assert engine.search([store], b_sentence, mode="dense")[0].file_id == "a"  # loads the vector index
        with open(root / "filler", "wb", buffering=0) as filler:
            try:
                while filler.write(b"\0" * (64 << 10)):
                    pass
            except OSError:
                pass
        with pytest.raises(DiskFull):
            engine.ingest(store, [("b", sources["b"])])
        assert engine.chunk_count(store, "b") == 0 and engine.file(store, "b").status == "in_progress"

        (root / "filler").unlink()
        engine.ingest(store, [("c", sources["c"])])  # takes the chunk ids b's rolled-back rows had
        assert engine.file(store, "c").status == "completed"
        best = engine.search([store], b_sentence, mode="dense")[0]
        assert best.dense_score is not None and best.dense_score < 0.6, best  # no stale vector of b's text
        engine.ingest(store, [("b", sources["b"])])
        best = engine.search([store], b_sentence, mode="dense")[0]
        assert (best.file_id, engine.file(store, "b").status) == ("b", "completed")
        assert b_sentence[:100] in best.text
        engine.close()
    finally:
        subprocess.run(["umount", "--lazy", str(root)], check=False)
