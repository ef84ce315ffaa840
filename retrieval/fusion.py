"""Hybrid ranking: min-max normalise the dense and the keyword scores over their candidates, then weigh them.

Score fusion beats reciprocal-rank fusion on SciFact because it keeps how *much* better the top hits are.
The default weight was chosen on SciFact's train split (see bench/retrieval.py); the test split is never used
to choose anything.
"""

from __future__ import annotations

DEFAULT_DENSE_WEIGHT = 0.5


def normalise(ranked: list[tuple[int, float]]) -> dict[int, float]:
    if not ranked:
        return {}
    scores = [score for _, score in ranked]
    low, high = min(scores), max(scores)
    if high == low:
        return {chunk_id: 1.0 for chunk_id, _ in ranked}
    return {chunk_id: (score - low) / (high - low) for chunk_id, score in ranked}


def fuse(dense: list[tuple[int, float]], keyword: list[tuple[int, float]],
         dense_weight: float = DEFAULT_DENSE_WEIGHT) -> list[tuple[int, float]]:
    """Candidates of both lists by weighted normalised score, best first; a list missing a candidate adds 0."""
    d, k = normalise(dense), normalise(keyword)
    fused = {cid: dense_weight * d.get(cid, 0.0) + (1 - dense_weight) * k.get(cid, 0.0) for cid in d.keys() | k.keys()}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
