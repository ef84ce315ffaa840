"""The Responses API's text carries no 【…】 markers: a cited search result is a `file_citation` at the point where
its marker stood. `MarkerFilter` takes the model's text as it streams and passes on only what can no longer turn
out to be part of a marker, noting where each marker stood; what it passes on is the final text, so the deltas a
client sees join to exactly that text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orchestrator.tools.citations import MARKER

# What a marker can begin as, before its closing bracket arrives: 【, 【12, 【12:, 【12:3, 【12:3†a name.
_OPENING = re.compile(r"【(?:\d+(?::\d*)?)?$|【\d+(?::\d+)?†[^】]*$")
# A marker is a few numbers and a file name: text held longer than this was never one, and is let go (holding
# it would stall the stream, and rescanning it would cost time growing with its square).
MAX_MARKER = 300


@dataclass(frozen=True)
class Marker:
    text: str
    index: int  # where it stood in the text without markers


@dataclass
class MarkerFilter:
    markers: list[Marker] = field(default_factory=list)
    _held: str = ""
    _length: int = 0  # of the text passed on so far

    def feed(self, piece: str) -> str:
        """The part of the text so far that is certain: markers taken out, a possible marker's start held back."""
        text = self._held + piece
        start = text.rfind("】") + 1
        hold = next((at for at in _starts(text, start)
                     if len(text) - at <= MAX_MARKER and _OPENING.fullmatch(text[at:])), len(text))
        self._held = text[hold:]
        return self._take(text[:hold])

    def flush(self) -> str:
        """What is held at the end: a marker never closed is plain text."""
        rest, self._held = self._held, ""
        return self._take(rest)

    def _take(self, text: str) -> str:
        kept, last = [], 0
        for match in MARKER.finditer(text):
            kept.append(text[last:match.start()])
            self._length += match.start() - last
            self.markers.append(Marker(match.group(0), self._length))
            last = match.end()
        kept.append(text[last:])
        self._length += len(text) - last
        return "".join(kept)


def _starts(text: str, start: int) -> list[int]:
    at, found = text.find("【", start), []
    while at != -1:
        found.append(at)
        at = text.find("【", at + 1)
    return found


def strip(text: str) -> str:
    return MARKER.sub("", text)
