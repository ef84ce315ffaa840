"""The Responses API's text carries no 【…】 markers: a cited search result is a `file_citation` at the point where
its marker stood. `MarkerFilter` takes the model's text as it streams and passes on only what can no longer turn
out to be part of a marker, so the deltas a client sees join to exactly the final text; `cite` maps each marker
the search tool handed out to its point in that text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.tools.citations import MARKER, CitationAnnotation

# What a marker can begin as, before its closing bracket arrives: 【, 【12, 【12:, 【12:3, 【12:3†anything.
_OPENING = re.compile(r"【(?:\d+(?::\d*)?)?$|【\d+(?::\d+)?†[^】]*$")


class MarkerFilter:
    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        """The part of the text so far that is certain: markers removed, a possible marker's start held back."""
        text = self._held + piece
        start = text.rfind("】") + 1
        hold = next((at for at in _starts(text, start) if _OPENING.fullmatch(text[at:])), len(text))
        self._held = text[hold:]
        return MARKER.sub("", text[:hold])

    def flush(self) -> str:
        """What is held at the end: a marker never closed is plain text."""
        rest, self._held = MARKER.sub("", self._held), ""
        return rest


def _starts(text: str, start: int) -> list[int]:
    at, found = text.find("【", start), []
    while at != -1:
        found.append(at)
        at = text.find("【", at + 1)
    return found


def strip(text: str) -> str:
    return MARKER.sub("", text)


@dataclass(frozen=True)
class Citation:
    file_id: str
    filename: str
    index: int  # in the text without markers


def cite(raw: str, found: list[CitationAnnotation]) -> list[Citation]:
    """Each resolved marker of `raw` (the model's text) as a point in the text without markers."""
    removed_before: list[tuple[int, int]] = []  # (start in raw, characters removed up to and including it)
    total = 0
    for match in MARKER.finditer(raw):
        total += match.end() - match.start()
        removed_before.append((match.start(), total - (match.end() - match.start())))
    shift = dict(removed_before)
    return [Citation(a.source.file_id, a.source.filename, a.start_index - shift[a.start_index]) for a in found]
