"""Parsing fidelity: the text Toolshed extracts from every shared document that has ground-truth Markdown
(`../shared/datasets/docs/groundtruth/`), scored per document with word-level precision, recall, F1 and reading
order (retrieval/fidelity.py). Prints JSON and keeps it in bench/results/parsing.json. The scanned PDF has no text
layer: it must fail clearly, and is reported as such.

Run: .venv/bin/python bench/parsing.py [--out bench/results/parsing.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, and bench/retrieval.py would shadow the package.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent)]

from retrieval.errors import FileProblem
from retrieval.fidelity import fidelity
from retrieval.parsing import parse
from tests.datasets import DOCS

RESULTS = ROOT / "bench" / "results" / "parsing.json"
# Each ground truth and the shared document it describes.
PAIRS = {
    "docling__2305.03393v1-pg9.md": "pdf/arxiv-2305.03393-otsl-page9.pdf",
    "docling__amt_handbook_sample.md": "pdf/faa-amt-handbook-sample-1p.pdf",
    "docling__multi_page.md": "pdf/word-processor-history-5p.pdf",
    "docling__normal_4pages.md": "pdf/korean-insurance-report-4p.pdf",
    "docling__redp5110_sampled.md": "pdf/ibm-redp5110-sampled-18p.pdf",
    "docling__nemotron_multipage.nemotron_ocr.full_page.md": "pdf/scanned-no-text-layer-4p.pdf",
    "docling__word_sample.docx.md": "office/word_sample.docx",
    "docling__powerpoint_sample.pptx.md": "office/powerpoint_sample.pptx",
    "docling__wiki_duck.html.md": "html/wikipedia-duck.html",
}


def score(truth: str, document: str) -> dict:
    path = DOCS / document
    started = time.perf_counter()
    try:
        pages = parse(path, path.name)
    except FileProblem as problem:
        return {"document": document, "failed": f"{problem.code}: {problem}"}
    text = "\n".join(page.text for page in pages)
    return {"document": document, **fidelity(text, (DOCS / "groundtruth" / truth).read_text()).as_dict(),
            "seconds": round(time.perf_counter() - started, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = [score(truth, document) for truth, document in PAIRS.items()]
    scored = [r for r in results if "f1" in r]
    summary = {"documents": results, "min_f1": min(r["f1"] for r in scored),
               "mean_f1": round(sum(r["f1"] for r in scored) / len(scored), 4),
               "min_order": min(r["order"] for r in scored)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
