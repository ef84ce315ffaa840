"""The keyword postings in memory score exactly as SQLite FTS5's bm25() over the same rows, however the store is
segmented, merged, trimmed by removals and checkpointed; and removed vectors stay out of dense results."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from retrieval.index import VectorIndex
from retrieval.postings import Bm25Postings, ceiling

WORDS = [f"w{i}" for i in range(300)]


def corpus(count: int, seed: int) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    # Zipf-like: a few common words and a long tail, documents of varied length.
    return [(chunk_id, " ".join(rng.choices(WORDS, weights=[1 / (i + 1) for i in range(300)],
                                            k=rng.randint(3, 60))))
            for chunk_id in range(1, count + 1)]


def fts_scores(conn: sqlite3.Connection, terms: list[str]) -> dict[int, float]:
    """What FTS5 itself scores, over the ceiling for the query (as the postings do)."""
    rows = conn.execute("SELECT rowid, -bm25(kw) FROM kw WHERE kw MATCH ?",
                        (" OR ".join(f'"{t}"' for t in terms),)).fetchall()
    total = conn.execute("SELECT COUNT(*) FROM kw").fetchone()[0]
    frequencies = {t: conn.execute("SELECT COUNT(*) FROM kw WHERE kw MATCH ?", (f'"{t}"',)).fetchone()[0]
                   for t in terms}
    top = ceiling(total, frequencies)
    return {chunk_id: score / top for chunk_id, score in rows}


def assert_same_as_fts(postings: Bm25Postings, conn: sqlite3.Connection, seed: int, k: int = 15) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        terms = sorted(set(rng.choices(WORDS[:120], k=rng.randint(1, 4))))
        expected = fts_scores(conn, terms)
        hits = postings.search(terms, k, None)
        assert len(hits) == min(k, len(expected))
        for chunk_id, score in hits:
            assert score == pytest.approx(expected[chunk_id], rel=1e-4)
        best = sorted(expected.values(), reverse=True)[:k]
        assert [s for _, s in hits] == pytest.approx(best, rel=1e-4)


@pytest.fixture
def fts() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE kw USING fts5(body)")
    return conn


def test_segmented_merged_and_trimmed_postings_score_as_fts5(fts: sqlite3.Connection) -> None:
    rows = corpus(2000, seed=1)
    postings = Bm25Postings(fanout=3)
    for start in range(0, 1500, 37):  # uneven batches, so segments of several sizes merge
        batch = rows[start:min(start + 37, 1500)]
        postings.add(batch)
        fts.executemany("INSERT INTO kw (rowid, body) VALUES (?, ?)", batch)
    postings.wait()
    assert postings.segments < 1500 // 37  # merged
    assert_same_as_fts(postings, fts, seed=2)

    removed = np.array(random.Random(3).sample(range(1, 1501), 700), dtype=np.int64)
    postings.remove(removed)
    fts.executemany("DELETE FROM kw WHERE rowid = ?", [(int(i),) for i in removed])
    postings.add(rows[1500:])
    fts.executemany("INSERT INTO kw (rowid, body) VALUES (?, ?)", rows[1500:])
    assert_same_as_fts(postings, fts, seed=4)  # before the merges settle
    postings.wait()
    assert len(postings) == 2000 - 700
    assert_same_as_fts(postings, fts, seed=4)
    assert not {chunk_id for chunk_id, _ in postings.search(WORDS[:50], 2000, None)} & set(removed.tolist())


def test_allowed_ids_restrict_the_hits(fts: sqlite3.Connection) -> None:
    rows = corpus(300, seed=5)
    postings = Bm25Postings(fanout=2)
    for start in range(0, 300, 50):
        postings.add(rows[start:start + 50])
    allowed = set(range(100, 200))
    hits = postings.search(["w0", "w1"], 50, allowed)
    assert hits and {chunk_id for chunk_id, _ in hits} <= allowed


def test_a_checkpoint_round_trips_segments_and_removals(tmp_path: Path, fts: sqlite3.Connection) -> None:
    rows = corpus(800, seed=6)
    postings = Bm25Postings(fanout=4)
    for start in range(0, 800, 100):
        postings.add(rows[start:start + 100])
    fts.executemany("INSERT INTO kw (rowid, body) VALUES (?, ?)", rows)
    postings.remove(np.arange(1, 200, dtype=np.int64))
    fts.execute("DELETE FROM kw WHERE rowid < 200")
    postings.save(tmp_path / "p.bm25.npz")
    loaded = Bm25Postings.load(tmp_path / "p.bm25.npz")
    assert loaded is not None and len(loaded) == 601
    assert_same_as_fts(loaded, fts, seed=7)
    (tmp_path / "bad.bm25.npz").write_bytes(b"not numpy")
    assert Bm25Postings.load(tmp_path / "bad.bm25.npz") is None


def test_removed_vectors_are_never_returned_before_or_after_they_are_applied(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(16)
    index.add(np.arange(1, 3001), vectors)
    index.remove(np.arange(1, 11))  # kept aside: still in FAISS, skipped by the scan
    assert len(index) == 2990
    assert index.search(vectors[0], 5)[0][0] != 1
    assert [i for i, _ in index.search(vectors[0], 5, np.array([1, 2, 3, 50]))] == [50]
    index.save(tmp_path / "v.faiss")  # applies them first
    reloaded = VectorIndex.load(tmp_path / "v.faiss", 16)
    assert reloaded is not None and len(reloaded) == 2990 and reloaded.search(vectors[0], 1)[0][0] != 1
    index.remove(np.arange(100, 1200))  # past the threshold: applied in one pass
    assert len(index) == 1890
    found = {i for i, _ in index.search(vectors[150], 50)}
    assert not found & set(range(100, 1200)) and len(found) == 50


def test_removing_ids_the_index_never_held_hides_nothing() -> None:
    vectors = np.eye(8, dtype=np.float32)[:5]
    index = VectorIndex(8)
    index.add(np.arange(1, 6), vectors)
    index.remove(np.arange(100, 110))  # a deletion replayed from the database for chunks never loaded here
    found = index.search(vectors[2], 5)
    assert len(found) == 5 and found[0][0] == 3
