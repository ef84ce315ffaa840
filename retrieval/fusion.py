"""Hybrid ranking on absolute scores: each hit's dense cosine and its keyword score (BM25 over the query's ceiling,
so 0 to 1) are weighed into one score that means the same across queries, so a `score_threshold` can turn junk
away and a nonsense query scores near 0.

A candidate one list did not return scores at most that list's cutoff (its last score) there, or 0 when the
keyword list holds every chunk that matched any term; that bound stands in for the missing score in the ranking,
and the hit reports the side as unknown (None). The default weight was chosen on SciFact's train split (see
bench/retrieval.py); the test split is never used to choose anything.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DENSE_WEIGHT = 0.45


@dataclass(frozen=True)
class Fused:
    chunk_id: int
    score: float
    dense: float | None  # cosine similarity, if the chunk was among the dense candidates
    keyword: float | None  # calibrated BM25, if the chunk was among the keyword candidates


def rank(mode: str, dense: list[tuple[int, float]], keyword: list[tuple[int, float]], dense_weight: float,
         depth: int) -> list[Fused]:
    """A search's candidates best first: fused for hybrid, or the one list a single mode asked for."""
    if mode == "hybrid":
        return fuse(dense, keyword, dense_weight, depth)
    if mode == "dense":
        return [Fused(cid, score, score, None) for cid, score in sorted(dense, key=lambda h: (-h[1], h[0]))]
    return [Fused(cid, score, None, score) for cid, score in sorted(keyword, key=lambda h: (-h[1], h[0]))]


def fuse(dense: list[tuple[int, float]], keyword: list[tuple[int, float]],
         dense_weight: float = DEFAULT_DENSE_WEIGHT, depth: int | None = None) -> list[Fused]:
    """Candidates of both lists by weighted absolute score, best first. `depth`: how many each list was asked
    for (a shorter keyword list is complete: whatever it lacks matched no query term)."""
    d, k = dict(dense), dict(keyword)
    dense_floor = max(min(d.values()), 0.0) if d else 0.0
    keyword_floor = min(k.values()) if k and depth is not None and len(k) >= depth else 0.0
    fused = [Fused(cid, dense_weight * max(d.get(cid, dense_floor), 0.0)
                   + (1 - dense_weight) * k.get(cid, keyword_floor), d.get(cid), k.get(cid))
             for cid in d.keys() | k.keys()]
    return sorted(fused, key=lambda hit: (-hit.score, hit.chunk_id))
