"""Word and PowerPoint files to text in reading order, tables as rows (`cell | cell | cell`).

A docx body is walked as written, so a table stays beside the sentence that leads into it. A slide's shapes are
read top to bottom, left to right (group shapes opened), then the slide's notes. A merged table cell's text is
repeated in each cell it spans, so every row reads whole.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from retrieval.errors import FileProblem
from retrieval.models import Page


def docx_text(path: Path | BinaryIO) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path) if isinstance(path, Path) else path)
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise FileProblem("invalid_file", f"The docx could not be read: {exc}") from exc
    parts: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            parts += _rows([[cell.text for cell in row.cells] for row in block.rows])
        else:
            parts.append(block.text)
    return "\n".join(parts)


def pptx_pages(path: Path | BinaryIO) -> list[Page]:
    import pptx
    from pptx.exc import PackageNotFoundError

    try:
        presentation = pptx.Presentation(str(path) if isinstance(path, Path) else path)
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise FileProblem("invalid_file", f"The pptx could not be read: {exc}") from exc
    pages = []
    for number, slide in enumerate(presentation.slides, 1):
        texts = [_shape_text(shape) for shape in _reading_order(slide.shapes)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text)
        pages.append(Page(number, "\n".join(t for t in texts if t.strip())))
    return pages


def _reading_order(shapes: Any) -> Iterator[Any]:
    """Shapes top to bottom, then left to right; a group's shapes in their own order within it."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    placed = sorted(shapes, key=lambda shape: (shape.top or 0, shape.left or 0))
    for shape in placed:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _reading_order(shape.shapes)
        else:
            yield shape


def _shape_text(shape: Any) -> str:
    if getattr(shape, "has_table", False):
        table = shape.table
        grid = [[cell.text for cell in row.cells] for row in table.rows]
        for r, row in enumerate(table.rows):
            for c, cell in enumerate(row.cells):
                if cell.is_merge_origin:
                    for dr in range(cell.span_height):
                        for dc in range(cell.span_width):
                            grid[r + dr][c + dc] = cell.text
        return "\n".join(_rows(grid))
    return shape.text_frame.text if shape.has_text_frame else ""


def _rows(grid: list[list[str]]) -> list[str]:
    return [" | ".join(" ".join(cell.split()) for cell in row) for row in grid]
