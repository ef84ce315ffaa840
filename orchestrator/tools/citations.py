"""What each conversation's file searches returned, so the markers a model keeps in its answer can be cited later.

Markers are OpenAI's v2 form `【search:result†name】`: the conversation's search number (counting from 0, never
reused) and the result's place in it, so markers from different searches in one conversation cannot collide. The
older single-number form `【n†name】` still resolves, by the conversation-wide result number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.db import Database

# 【n:m†name】 or 【n†name】; the name part is informational only.
MARKER = re.compile(r"【(\d+)(?::(\d+))?†([^】]*)】")


@dataclass(frozen=True)
class Source:
    search: int
    result: int
    file_id: str
    filename: str
    page: int | None
    quote: str

    @property
    def label(self) -> str:
        return f"【{self.search}:{self.result}†{self.filename}】"


@dataclass(frozen=True)
class CitationAnnotation:
    text: str
    start_index: int
    end_index: int
    source: Source


@dataclass(frozen=True)
class UnresolvedMarker:
    """A marker in the answer that cites nothing: no search of this conversation gave it, or the file it names
    is not the file behind its number (the model mixed up its sources)."""

    text: str
    start_index: int
    end_index: int
    reason: str


def names_match(written: str, filename: str) -> bool:
    """Whether the name a model wrote in a marker can mean `filename`: the same name, or a part of it (models
    shorten long names), or OpenAI's placeholder `source`; never another file's name."""
    written, filename = written.strip().casefold(), filename.casefold()
    return written in ("", "source") or written in filename or filename in written


_COLUMNS = "search, result, file_id, filename, page, quote"


class CitationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def remember(self, scope: str, key: str, results: list[tuple[str, str, int | None, str]]) -> list[Source]:
        """Number one search's (file_id, filename, page, quote) results for the conversation; returns them with
        their markers."""
        with self._db.transaction() as conn:
            search, marker = conn.execute(
                "SELECT COALESCE(MAX(search) + 1, 0), COALESCE(MAX(marker) + 1, 0) FROM citations "
                "WHERE scope = ? AND key = ?", (scope, key)).fetchone()
            sources = [Source(search, i, *result) for i, result in enumerate(results)]
            conn.executemany(f"INSERT INTO citations (scope, key, marker, {_COLUMNS}) VALUES ({', '.join('?' * 9)})",
                             [(scope, key, marker + i, s.search, s.result, s.file_id, s.filename, s.page, s.quote)
                              for i, s in enumerate(sources)])
        return sources

    def annotations(self, scope: str, key: str, text: str) -> tuple[list[CitationAnnotation], list[UnresolvedMarker]]:
        """A file_citation for every marker in `text` that this conversation's searches produced and whose name
        fits the file behind it; the other markers, unresolved, with why."""
        found: list[CitationAnnotation] = []
        unresolved: list[UnresolvedMarker] = []
        for match in MARKER.finditer(text):
            if match.group(2) is None:
                row = self._db.one(f"SELECT {_COLUMNS} FROM citations WHERE scope = ? AND key = ? AND marker = ?",
                                   (scope, key, int(match.group(1))))
            else:
                row = self._db.one(f"SELECT {_COLUMNS} FROM citations WHERE scope = ? AND key = ? AND search = ? "
                                   "AND result = ?", (scope, key, int(match.group(1)), int(match.group(2))))
            if row is None:
                reason = "no search of this conversation gave this marker"
            elif not names_match(match.group(3), row[3]):
                reason = f"the marker names {match.group(3).strip()!r}, but its result is from {row[3]!r}"
            else:
                found.append(CitationAnnotation(match.group(0), match.start(), match.end(), Source(*row)))
                continue
            unresolved.append(UnresolvedMarker(match.group(0), match.start(), match.end(), reason))
        return found, unresolved
