"""A store's BM25 postings in memory, as segments that writes add to and merges fold together.

A write adds one small segment built from its own rows and marks removed chunks dead where they lie, so its cost
is what it adds, not the store's size. Segments of a similar size are merged in the background, FANOUT at a time
(numpy concatenation and one sort, no re-analysis), so a store keeps O(FANOUT · log size) segments and each chunk
is merged O(log size) times. Scores are FTS5's BM25 (k1=1.2, b=0.75) over the live chunks, with document
frequencies and the average length taken across all segments at query time, so the ranking never depends on how
the store happens to be segmented.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.atomic_file import write_atomically

K1, B = 1.2, 0.75  # FTS5's bm25() constants
FANOUT = 8


def _idf(total: int, frequency: int) -> float:
    return max(math.log((total - frequency + 0.5) / (frequency + 0.5)), 1e-6)


def ceiling(total: int, frequencies: dict[str, int]) -> float:
    """The most BM25 a chunk could score for these query terms (each at saturating frequency): dividing by it
    makes a keyword score absolute, 0 to 1, comparable across queries. A term no chunk has counts at its full
    weight, so a query of words nobody wrote scores low instead of being judged on its one common word."""
    return sum(_idf(total, frequency) for frequency in frequencies.values()) * (K1 + 1) or 1.0


@dataclass
class Segment:
    """Postings grouped by term (CSR: a term's postings are docs[offsets[t]:offsets[t+1]]); a doc is a position
    in `chunk_ids`. Only `alive` (and the live totals) change after construction."""

    terms: list[str]  # term id -> term
    offsets: np.ndarray
    docs: np.ndarray
    freqs: np.ndarray
    chunk_ids: np.ndarray
    lengths: np.ndarray
    alive: np.ndarray

    def __post_init__(self) -> None:
        self.vocabulary = {term: i for i, term in enumerate(self.terms)}
        # Each posting's document length, beside it: scoring then reads the lengths in order instead of gathering
        # them from random places (chunks are far shorter than 65,535 words).
        self.posting_lengths = np.minimum(self.lengths[self.docs], 65535).astype(np.uint16)
        self.live = int(self.alive.sum())
        self.live_length = float(self.lengths[self.alive].sum())

    @classmethod
    def build(cls, rows: list[tuple[int, str]]) -> Segment:
        """From (chunk id, analysed body: terms separated by spaces)."""
        vocabulary: dict[str, int] = {}
        terms, docs, freqs = array("i"), array("i"), array("f")
        lengths = np.zeros(len(rows), dtype=np.float32)
        for position, (_, body) in enumerate(rows):
            words = body.split()
            lengths[position] = len(words)
            for word, count in Counter(words).items():
                terms.append(vocabulary.setdefault(word, len(vocabulary)))
                docs.append(position)
                freqs.append(count)
        return cls._grouped(list(vocabulary), np.frombuffer(terms, dtype=np.int32),
                            np.frombuffer(docs, dtype=np.int32), np.frombuffer(freqs, dtype=np.float32),
                            np.array([chunk_id for chunk_id, _ in rows], dtype=np.int64), lengths)

    @classmethod
    def _grouped(cls, names: list[str], terms: np.ndarray, docs: np.ndarray, freqs: np.ndarray,
                 chunk_ids: np.ndarray, lengths: np.ndarray) -> Segment:
        order = np.argsort(terms, kind="stable")
        terms = terms[order]
        return cls(names, np.searchsorted(terms, np.arange(len(names) + 1)), docs[order], freqs[order], chunk_ids,
                   lengths, np.ones(len(chunk_ids), dtype=bool))

    @classmethod
    def merge(cls, segments: list[Segment], alive: list[np.ndarray]) -> Segment:
        """One segment of the live docs of `segments` (`alive`: their masks as of the merge), in order."""
        vocabulary: dict[str, int] = {}
        term_parts, doc_parts, freq_parts, id_parts, length_parts = [], [], [], [], []
        base = 0
        for segment, keep in zip(segments, alive, strict=True):
            mapping = np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for t in segment.terms),
                                  dtype=np.int32, count=len(segment.terms))
            posting_terms = np.repeat(np.arange(len(segment.terms), dtype=np.int32), np.diff(segment.offsets))
            kept = keep[segment.docs]
            position = np.cumsum(keep, dtype=np.int64) - 1
            term_parts.append(mapping[posting_terms[kept]])
            doc_parts.append((position[segment.docs[kept]] + base).astype(np.int32))
            freq_parts.append(segment.freqs[kept])
            id_parts.append(segment.chunk_ids[keep])
            length_parts.append(segment.lengths[keep])
            base += int(keep.sum())
        terms = np.concatenate(term_parts) if term_parts else np.zeros(0, np.int32)
        used = np.bincount(terms, minlength=len(vocabulary)) > 0  # drop the terms only dead docs had
        renumber = np.cumsum(used, dtype=np.int64) - 1
        names = [name for name, keep in zip(vocabulary, used.tolist(), strict=True) if keep]
        return cls._grouped(names, renumber[terms].astype(np.int32), np.concatenate(doc_parts),
                            np.concatenate(freq_parts), np.concatenate(id_parts), np.concatenate(length_parts))

    def kill(self, chunk_ids: np.ndarray) -> None:
        dead = np.isin(self.chunk_ids, chunk_ids) & self.alive
        if dead.any():
            self.alive[dead] = False
            self.live -= int(dead.sum())
            self.live_length -= float(self.lengths[dead].sum())

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The live docs with `term`, its frequency in each, and each doc's length."""
        term_id = self.vocabulary.get(term)
        if term_id is None:
            return None
        span = slice(self.offsets[term_id], self.offsets[term_id + 1])
        docs, freqs, lengths = self.docs[span], self.freqs[span], self.posting_lengths[span]
        if self.live == len(self.chunk_ids):
            return docs, freqs, lengths
        live = self.alive[docs]
        return docs[live], freqs[live], lengths[live]


class Bm25Postings:
    """One store's keyword index in memory. Thread-safe; merges run on a background thread."""

    def __init__(self, segments: list[Segment] | None = None, *, fanout: int = FANOUT) -> None:
        self._segments = segments or []
        self._fanout = fanout
        self._lock = threading.Lock()
        self._merging: threading.Thread | None = None

    def __len__(self) -> int:
        return sum(segment.live for segment in self._segments)

    @property
    def segments(self) -> int:
        return len(self._segments)

    def add(self, rows: list[tuple[int, str]]) -> None:
        if rows:
            segment = Segment.build(rows)
            with self._lock:
                self._segments = [*self._segments, segment]
            self._merge_later()

    def remove(self, chunk_ids: np.ndarray) -> None:
        if len(chunk_ids):
            with self._lock:
                for segment in self._segments:
                    segment.kill(chunk_ids)
            self._merge_later()

    def search(self, terms: list[str], k: int, allowed: set[int] | None) -> list[tuple[int, float]]:
        """(chunk id, BM25 over its ceiling for the query, 0 to 1) best first."""
        with self._lock:
            segments = self._segments
            found = [{term: segment.postings(term) for term in set(terms)} for segment in segments]
        total = sum(segment.live for segment in segments)
        average = sum(segment.live_length for segment in segments) / max(total, 1)
        frequencies = dict.fromkeys(set(terms), 0)
        for postings in found:
            for term, found_term in postings.items():
                frequencies[term] += 0 if found_term is None else len(found_term[0])
        top = ceiling(total, frequencies)
        allowed_ids = None if allowed is None else np.fromiter(allowed, dtype=np.int64, count=len(allowed))
        hits: list[tuple[int, float]] = []
        # BM25's term weight idf·f·(k1+1) / (f + k1·(1 - b + b·len/avg)), with the constants folded first.
        per_length, constant = np.float32(K1 * B / max(average, 1e-9)), np.float32(K1 * (1 - B))
        for segment, postings in zip(segments, found, strict=True):
            scores = np.zeros(len(segment.chunk_ids), dtype=np.float32)
            for term, triple in postings.items():
                if triple is not None:
                    docs, freqs, lengths = triple
                    weight = np.float32(_idf(total, frequencies[term]) * (K1 + 1))
                    # add.at: a term's docs are distinct, and it is ~3x faster than scores[docs] += ...
                    np.add.at(scores, docs, freqs * weight / (freqs + (lengths * per_length + constant)))
            if allowed_ids is not None:
                scores[~np.isin(segment.chunk_ids, allowed_ids)] = 0
            matched = np.flatnonzero(scores > 0)  # a boolean mask is scanned ~2x faster than the floats
            if len(matched) > k:
                matched = matched[np.argpartition(-scores[matched], k)[:k]]
            hits += zip(segment.chunk_ids[matched].tolist(), (scores[matched] / top).tolist(), strict=True)
        hits.sort(key=lambda hit: (-hit[1], hit[0]))
        return hits[:k]

    # ---- merging -------------------------------------------------------------------------------------------

    def _plan(self) -> list[Segment]:
        """The newest run of at least `fanout` segments of one size class (a power of fanout), or a segment more
        than half dead."""
        for segment in self._segments:
            if len(segment.chunk_ids) >= 64 and segment.live < len(segment.chunk_ids) // 2:
                return [segment]
        level = lambda segment: int(math.log(max(segment.live, 1), self._fanout))  # noqa: E731
        run: list[Segment] = []
        for segment in reversed(self._segments):
            if run and level(segment) != level(run[0]):
                break
            run.insert(0, segment)
        return run if len(run) >= self._fanout else []

    def _merge_later(self) -> None:
        with self._lock:
            if self._merging is not None or not self._plan():
                return
            self._merging = threading.Thread(target=self._merge_all, name="bm25-merge", daemon=True)
            self._merging.start()

    def _merge_all(self) -> None:
        try:
            while True:
                with self._lock:
                    inputs = self._plan()
                    if not inputs:
                        return
                    alive = [segment.alive.copy() for segment in inputs]
                merged = Segment.merge(inputs, alive)
                with self._lock:
                    # Chunks removed while the merge ran are dead in the inputs' masks now.
                    gone = [segment.chunk_ids[~segment.alive] for segment in inputs]
                    merged.kill(np.concatenate(gone))
                    first = self._segments.index(inputs[0])
                    self._segments = [*self._segments[:first], merged, *self._segments[first + len(inputs):]]
        finally:
            with self._lock:
                self._merging = None

    def wait(self) -> None:
        """Until no merge is running (benchmarks and tests measure the settled state)."""
        while (merging := self._merging) is not None:
            merging.join()

    # ---- checkpoints ---------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        with self._lock:
            segments = self._segments
            arrays: dict[str, np.ndarray] = {"segments": np.array(len(segments))}
            for i, s in enumerate(segments):
                arrays |= {f"{i}.terms": np.frombuffer("\n".join(s.terms).encode(), dtype=np.uint8),
                           f"{i}.offsets": s.offsets, f"{i}.docs": s.docs, f"{i}.freqs": s.freqs,
                           f"{i}.chunk_ids": s.chunk_ids, f"{i}.lengths": s.lengths, f"{i}.alive": s.alive.copy()}

        def write(temporary: Path) -> None:
            with open(temporary, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stubs cannot type **kwargs of arrays

        write_atomically(path, write)

    @classmethod
    def load(cls, path: Path) -> Bm25Postings | None:
        try:
            with np.load(path) as data:
                segments = []
                for i in range(int(data["segments"])):
                    text = data[f"{i}.terms"].tobytes().decode()
                    segments.append(Segment(text.split("\n") if text else [], data[f"{i}.offsets"],
                                            data[f"{i}.docs"], data[f"{i}.freqs"], data[f"{i}.chunk_ids"],
                                            data[f"{i}.lengths"], data[f"{i}.alive"]))
        except (OSError, ValueError, KeyError):
            return None
        return cls(segments)
