"""Hostile uploads: zip bombs posing as Office files and PDFs that make the parser run or allocate without end.

Parsing runs in a child process under a time and a memory limit (retrieval.isolation): each file below ends
`failed` with a clear last_error, the next file is indexed normally, and the parsing process never touches the
server's memory. Without the limits each of these tests either takes minutes or takes the machine's memory.
"""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from pathlib import Path

import docx
import pptx
import pytest

from retrieval.embedding import Embedder
from retrieval.isolation import IsolatedParser, ParseLimits
from retrieval.vector_store import VectorStoreEngine
from tests.conftest import Evidence

SMALL_MEMORY = ParseLimits(seconds=60, memory_bytes=512 << 20)


def zip_bomb(path: Path, size: int) -> Path:
    """A real Office file (made by python-docx or python-pptx; any zip for xlsx) of a few MB whose main part
    inflates to `size` bytes."""
    template, inner = io.BytesIO(), "word/document.xml"
    if path.suffix == ".docx":
        docx.Document().save(template)
    else:
        presentation = pptx.Presentation()
        presentation.slides.add_slide(presentation.slide_layouts[6])
        presentation.save(template)
        inner = "ppt/slides/slide1.xml"
    block = b"<a:t>" + b"a" * (1 << 20) + b"</a:t>"
    with zipfile.ZipFile(template) as source, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for entry in source.infolist():
            if entry.filename != inner:
                archive.writestr(entry, source.read(entry))
        with archive.open(inner, "w", force_zip64=True) as part:
            for _ in range(size // len(block)):
                part.write(block)
    return path


def pdf_of(content: bytes) -> bytes:
    """A one-page PDF whose page shows `content` (compressed), with a correct cross-reference table."""
    stream = zlib.compress(content, 9)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_operators(count: int) -> bytes:
    return b"BT /F1 12 Tf " + b"(a) Tj " * count + b"ET"


@pytest.mark.attack("hostile uploads: zip bombs (1 GiB inflated)")
@pytest.mark.parametrize("suffix", ["docx", "pptx", "xlsx"])
def test_a_zip_bomb_ends_failed_within_the_memory_limit(tmp_path: Path, suffix: str, evidence: Evidence) -> None:
    bomb = zip_bomb(tmp_path / f"bomb.{suffix}", 1 << 30)
    assert bomb.stat().st_size < 4 << 20
    parser = IsolatedParser(SMALL_MEMORY)
    try:
        with pytest.raises(Exception) as caught:
            parser.parse(bomb, bomb.name)
        assert type(caught.value).__name__ == "FileProblem"
        if suffix != "xlsx":  # not a format file_search reads: refused unopened
            assert "more than 512 MB of memory" in str(caught.value)
        (tmp_path / "after.md").write_text("# Fine\n\nThe next file parses normally.")
        assert parser.parse(tmp_path / "after.md", "after.md")[0].text.startswith("# Fine")
        evidence(f"{bomb.stat().st_size >> 10} KiB .{suffix}: {str(caught.value)[:70]}")
    finally:
        parser.close()


@pytest.mark.attack("hostile uploads: PDFs inflating to millions of operators")
@pytest.mark.parametrize("operators", [10_000_000, 40_000_000])
def test_a_pdf_that_inflates_to_millions_of_operators_fails_and_the_next_file_parses(tmp_path: Path,
                                                                                      operators: int,
                                                                                      evidence: Evidence) -> None:
    """pypdf caps what one stream may inflate to (75 MB) and hold (tokens); past either, or past the worker's
    memory, the file fails."""
    bomb = tmp_path / "inflating.pdf"
    bomb.write_bytes(pdf_of(text_operators(operators)))
    assert bomb.stat().st_size < 4 << 20
    parser = IsolatedParser(SMALL_MEMORY)
    try:
        with pytest.raises(Exception, match=r"Limit reached|maximum number of tokens|more than 512 MB of memory"):
            parser.parse(bomb, bomb.name)
        small = tmp_path / "small.pdf"
        small.write_bytes(pdf_of(b"BT /F1 12 Tf 72 700 Td (still works) Tj ET"))
        assert "still works" in parser.parse(small, small.name)[0].text
        evidence(f"{operators:,} operators: failed, the next PDF parsed")
    finally:
        parser.close()


@pytest.mark.attack("hostile uploads: a PDF that keeps the parser busy")
def test_a_pdf_that_keeps_the_parser_busy_is_given_up_at_the_time_limit(tmp_path: Path, evidence: Evidence) -> None:
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(pdf_of(text_operators(3_000_000)))
    parser = IsolatedParser(ParseLimits(seconds=2, memory_bytes=8 << 30))
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="longer than 2 seconds"):
            parser.parse(slow, slow.name)
        assert time.monotonic() - started < 10
        evidence(f"given up after {time.monotonic() - started:.1f} s (limit 2 s)")
    finally:
        parser.close()


def test_in_a_store_the_hostile_file_fails_and_its_neighbour_is_indexed(
        tmp_path: Path, embedder: Embedder) -> None:
    engine = VectorStoreEngine(tmp_path / "engine", embedder=embedder, parse_limits=SMALL_MEMORY)
    try:
        store = engine.create_store("hostile")
        bomb = zip_bomb(tmp_path / "bomb.docx", 1 << 30)
        fine = tmp_path / "fine.md"
        fine.write_text("Toolshed indexes the files next to a bomb.")
        engine.attach(store.id, "file-bomb", "bomb.docx")
        engine.attach(store.id, "file-fine", "fine.md")
        engine.ingest(store.id, [("file-bomb", bomb), ("file-fine", fine)])
        failed = engine.file(store.id, "file-bomb")
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.code == "invalid_file" and "memory" in failed.error.message
        assert engine.file(store.id, "file-fine").status == "completed"
    finally:
        engine.close()
