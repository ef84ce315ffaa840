"""Turning the model's final text into a message content part with exact `file_path` and `file_citation`
annotations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from orchestrator.sandbox.runtime import CONTAINER_DATA_DIR
from orchestrator.tools.citations import CitationAnnotation, CitationStore, UnresolvedMarker

PREFIX = f"sandbox:{CONTAINER_DATA_DIR}/"
# Characters that would continue a file name; anything else after a known path ends the reference.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/%")


@dataclass(frozen=True)
class FilePathAnnotation:
    text: str
    start_index: int
    end_index: int
    file_id: str


def escape_path(path: str) -> str:
    """The path with control characters percent-encoded: a file name is the sandbox's to choose, and a newline in
    it must not start a line of its own in what the model reads."""
    return "".join(char if char.isprintable() else quote(char) for char in path)


def file_path_annotations(text: str, files: dict[str, str]) -> list[FilePathAnnotation]:
    """Every `sandbox:/mnt/data/<path>` in `text` naming one of `files` (relative path -> file id).

    The longest known path wins, so `a.csv` inside `sandbox:/mnt/data/a.csv.gz` is not taken for `a.csv`
    when both exist; a path written URL-encoded (as in a markdown link) or as escape_path gave it matches too.
    Indices are Python string indices, so `text[start_index:end_index] == annotation.text`.
    """
    spellings = sorted(((spelled, file_id) for path, file_id in files.items()
                        for spelled in {path, quote(path), escape_path(path)}), key=lambda pair: -len(pair[0]))
    found = []
    start = text.find(PREFIX)
    while start != -1:
        rest = start + len(PREFIX)
        for spelled, file_id in spellings:
            end = rest + len(spelled)
            if text.startswith(spelled, rest) and _ends_name(text, end):
                found.append(FilePathAnnotation(text[start:end], start, end, file_id))
                break
        start = text.find(PREFIX, rest)
    return found


def _ends_name(text: str, end: int) -> bool:
    """Whether a path can end at `end`: not inside a longer name (`a.csv` in `a.csv.bak` or `a.csv_old`); a dot
    that ends the sentence is not part of the name."""
    if end == len(text):
        return True
    if text[end] == ".":
        return end + 1 == len(text) or text[end + 1] not in _NAME_CHARS
    return text[end] not in _NAME_CHARS


@dataclass(frozen=True)
class Annotations:
    file_paths: list[FilePathAnnotation]
    citations: list[CitationAnnotation]
    unresolved: list[UnresolvedMarker]


class SandboxLookup(Protocol):
    def container_of(self, scope: str, key: str) -> str | None:
        """The id of the sandbox bound to (scope, key), if it ever ran code."""
        ...


class SandboxFile(Protocol):
    @property
    def path(self) -> str: ...

    @property
    def file_id(self) -> str | None: ...


class SandboxFileList(Protocol):
    def all(self, container_id: str) -> Sequence[SandboxFile]:
        """Every file the sandbox wrote that Toolshed registered, oldest first."""
        ...


class Annotator:
    """Annotations for a conversation's final text: its sandbox's files and its searches' markers. `bindings` and
    `container_files` are None when the sandbox engine is down (citations still work then)."""

    def __init__(self, citations: CitationStore, bindings: SandboxLookup | None,
                 container_files: SandboxFileList | None) -> None:
        self._citations = citations
        self._bindings = bindings
        self._container_files = container_files

    def annotate(self, scope: str, key: str, text: str) -> Annotations:
        file_paths: list[FilePathAnnotation] = []
        if self._bindings is not None and self._container_files is not None:
            container_id = self._bindings.container_of(scope, key)
            records = self._container_files.all(container_id) if container_id else []
            file_paths = file_path_annotations(text, {r.path: r.file_id for r in records if r.file_id})
        citations, unresolved = self._citations.annotations(scope, key, text)
        return Annotations(file_paths, citations, unresolved)
