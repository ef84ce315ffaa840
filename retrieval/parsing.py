"""Files to text: one `Page` per PDF page or slide, one page for everything else.

Each format's library is imported here and nowhere else, and its exceptions become a FileProblem:
`unsupported_file` for a type we cannot read or a file with no extractable text (a scanned PDF), `invalid_file`
for a file that claims a type it does not have (a corrupt PDF, a docx that is not a zip).
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import BinaryIO

from retrieval.errors import FileProblem
from retrieval.html_text import html_text
from retrieval.models import Page
from retrieval.office import docx_text, pptx_pages

# pypdf reports every odd font and broken xref on its logger; the page text is what matters here.
logging.getLogger("pypdf").setLevel(logging.ERROR)

TEXT_SUFFIXES = frozenset((
    ".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".yaml", ".yml", ".toml",
    ".ini", ".cfg", ".log", ".tex", ".py", ".js", ".ts", ".tsx", ".jsx", ".java", ".c", ".h", ".cpp", ".hpp",
    ".cc", ".cs", ".go", ".rs", ".rb", ".php", ".sh", ".bash", ".sql", ".css", ".scss", ".swift", ".kt",
    ".scala", ".r", ".m", ".pl", ".lua", ".ipynb", ".vue", ".svelte"
))
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
_SNIFF_BYTES = 8192
_GLYPH_NAMES = re.compile(r"(?:/[A-Za-z]{1,3}\d{1,5}){2,}")
_DIGITS = re.compile(r"\d+|\b[ivxlc]+\b")


# A file to parse: its path, or a binary file open for reading (as a parse worker gets it).
Source = Path | BinaryIO


def parse(path: Source, filename: str) -> list[Page]:
    """The text of the file at `path`, page by page; `filename` decides the format (as OpenAI's does)."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".pdf":
        pages = _pdf(path)
    elif suffix == ".docx":
        pages = [Page(None, docx_text(path))]
    elif suffix == ".pptx":
        pages = pptx_pages(path)
    elif suffix in HTML_SUFFIXES:
        pages = [Page(None, html_text(_read_text(path)))]
    elif suffix == ".json":
        pages = [Page(None, _json(_read_text(path)))]
    elif suffix in TEXT_SUFFIXES or _looks_like_text(path):
        pages = [Page(None, _read_text(path))]
    else:
        raise FileProblem("unsupported_file", f"Files of type '{suffix or 'unknown'}' are not supported.")
    pages = [page for page in pages if page.text.strip()]
    if not pages and suffix == ".pdf":
        raise FileProblem("unsupported_file", "The PDF has no extractable text (a scanned PDF needs OCR, "
                                              "which is not supported).")
    if not pages:
        raise FileProblem("unsupported_file", "The file has no text to index (it is empty or only whitespace).")
    return pages


def _pdf(path: Source) -> list[Page]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileProblem("invalid_file", "The PDF is encrypted with a password.")
        return without_running_lines([Page(number, _clean(page.extract_text() or ""))
                                      for number, page in enumerate(reader.pages, 1)])
    except FileProblem:
        raise
    except (PdfReadError, FileNotDecryptedError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError) as exc:
        raise FileProblem("invalid_file", f"The PDF could not be read: {exc}") from exc


def _json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=1, ensure_ascii=False)
    except json.JSONDecodeError as exc:
        raise FileProblem("invalid_file", f"The JSON could not be parsed: {exc}") from exc


def _read_text(path: Source) -> str:
    data = path.read_bytes() if isinstance(path, Path) else path.read()
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise FileProblem("invalid_file", "The file is binary, not text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _looks_like_text(path: Source) -> bool:
    """Unknown suffix: accept it only if it is valid UTF-8 without NUL bytes."""
    if isinstance(path, Path):
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    else:
        head = path.read(_SNIFF_BYTES)
        path.seek(0)
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a multi-byte character cut by the sniff window
    return True


def _clean(text: str) -> str:
    # pypdf keeps hyphenated line breaks and NULs from some fonts; both hurt tokenisation. A font without a
    # Unicode map comes out as its glyph names (/g72/g86/g3...), which are no text at all.
    return _GLYPH_NAMES.sub(" ", text.replace("\x00", "").replace("-\n", ""))


def without_running_lines(pages: list[Page]) -> list[Page]:
    """Pages without their running headers and footers: a line (page numbers aside) that recurs on a quarter of
    the pages (three at least) of a document of four or more is the page's furniture, not its text. Books put
    one header on even pages and another on odd ones, hence a quarter."""
    if len(pages) < 4:
        return pages
    seen: Counter[str] = Counter()
    for page in pages:
        seen.update({_running_key(line) for line in page.text.splitlines() if line.strip()})
    running = {key for key, count in seen.items() if count >= max(3, len(pages) / 4) and key}
    return [Page(page.number, "\n".join(line for line in page.text.splitlines() if _running_key(line) not in running))
            for page in pages]


def _running_key(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split())).casefold()
