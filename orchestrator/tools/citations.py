"""What each conversation's file searches returned, so the markers a model keeps in its answer can be cited later.

Markers are numbered per thread (`【0†a.pdf】`, `【1†b.md】`, ...) and never reused, so markers from different
searches in one conversation cannot collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.db import Database

# 【n†name】 with the ASCII fallbacks some models produce ([n†name]); the name part is informational only.
MARKER = re.compile(r"【(\d+)(?::\d+)?†([^】]*)】")


@dataclass(frozen=True)
class Source:
    marker: int
    file_id: str
    filename: str
    page: int | None
    quote: str

    @property
    def label(self) -> str:
        return f"【{self.marker}†{self.filename}】"


@dataclass(frozen=True)
class CitationAnnotation:
    text: str
    start_index: int
    end_index: int
    source: Source


class CitationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def remember(self, scope: str, key: str, results: list[tuple[str, str, int | None, str]]) -> list[Source]:
        """Number (file_id, filename, page, quote) results for the conversation; returns them with markers."""
        with self._db.transaction() as conn:
            first = conn.execute("SELECT COALESCE(MAX(marker) + 1, 0) FROM citations WHERE scope = ? AND key = ?",
                                 (scope, key)).fetchone()[0]
            sources = [Source(first + i, *result) for i, result in enumerate(results)]
            conn.executemany("INSERT INTO citations (scope, key, marker, file_id, filename, page, quote) VALUES "
                             "(?, ?, ?, ?, ?, ?, ?)",
                             [(scope, key, s.marker, s.file_id, s.filename, s.page, s.quote) for s in sources])
        return sources

    def annotations(self, scope: str, key: str, text: str) -> list[CitationAnnotation]:
        """A file_citation for every marker in `text` that this conversation's searches produced."""
        found = []
        for match in MARKER.finditer(text):
            row = self._db.one("SELECT marker, file_id, filename, page, quote FROM citations WHERE scope = ? AND "
                               "key = ? AND marker = ?", (scope, key, int(match.group(1))))
            if row is not None:
                found.append(CitationAnnotation(match.group(0), match.start(), match.end(), Source(*row)))
        return found
