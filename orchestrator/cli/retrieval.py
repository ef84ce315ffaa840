"""`toolshed index`, `toolshed search`, `toolshed eval`: offline retrieval experiments, no server needed.

They use the same engine and data dir as the server (`TOOLSHED_DATA_DIR/retrieval`), so a store indexed from the
command line is searchable over HTTP too, and embeddings computed once are reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from orchestrator.cli.settings import load_settings
from orchestrator.config import Settings
from retrieval.models import SearchMode

console = Console(stderr=True, soft_wrap=True)
MODES: tuple[SearchMode, ...] = ("dense", "keyword", "hybrid")


def _engine(settings: Settings):  # noqa: ANN202 - imported lazily: torch and faiss are slow to import
    from retrieval.vector_store import VectorStoreEngine

    return VectorStoreEngine(settings.data_dir / "retrieval", **settings.engine_options())


@contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal; elsewhere (a log file, CI) a plain line at every tenth of the way."""
    if not console.is_terminal:
        done, step = 0, max(1, total // 10)

        def advance(n: int) -> None:
            nonlocal done
            before, done = done, done + n
            if done // step > before // step or done == total:
                console.print(f"{description}: {done}/{total}", highlight=False)

        yield advance
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A mistake on the command line (a missing folder or split, a bad -k) is one red line and exit 1."""
    from retrieval.errors import RetrievalError

    try:
        yield
    except (FileNotFoundError, NotADirectoryError) as exc:
        console.print(f"[red]{exc.strerror or 'Not found'}: {exc.filename}[/red]")
        raise typer.Exit(1) from None
    except RetrievalError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _files(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            found.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return found


def index(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    store: Annotated[str, typer.Option("--store", help="Name of the vector store (created if missing).")],
) -> None:
    """Index files into a named vector store (files already indexed and unchanged are skipped)."""
    with _one_line_errors():
        _index(paths, store)


def _index(paths: list[Path], store: str) -> None:
    found = _files(paths)
    engine = _engine(load_settings())
    stores = engine.stores(name=store)
    store_id = stores[0].id if stores else engine.create_store(store).id
    todo = []
    for path in found:
        stat = path.stat()
        file_id = "local-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
        attributes = {"path": str(path.resolve()), "size": stat.st_size, "mtime": int(stat.st_mtime)}
        existing = {f.file_id: f for f in engine.files(store_id)}.get(file_id)
        if existing is not None and existing.status == "completed" and existing.attributes == attributes:
            continue
        if existing is not None:
            engine.remove_file(store_id, file_id)
        engine.attach(store_id, file_id, path.name, attributes=attributes)
        todo.append((file_id, path))
    with _progress(f"indexing into '{store}'", len(todo)) as advance:
        engine.ingest(store_id, todo, advance)
    engine.checkpoint(store_id)
    for record in engine.files(store_id, status="failed"):
        console.print(f"[yellow]{record.attributes.get('path', record.filename)}: {record.error.message}[/yellow]")
    counts = engine.store(store_id).file_counts
    console.print(f"{store}: {counts.completed} files indexed, {counts.failed} failed ({store_id})")


def search(
    store: Annotated[str, typer.Argument(help="Name (or id) of the vector store.")],
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="Number of results.")] = 10,
    mode: Annotated[str, typer.Option(help="dense, keyword or hybrid.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Search a vector store from the command line."""
    with _one_line_errors():
        _search(store, query, k, mode, as_json)


def _search(store: str, query: str, k: int, mode: str, as_json: bool) -> None:
    engine = _engine(load_settings())
    stores = engine.stores(name=store) or [s for s in engine.stores() if s.id == store]
    if not stores:
        console.print(f"[red]No vector store named '{store}'.[/red]")
        raise typer.Exit(1)
    hits = engine.search([stores[0].id], query, k=k, mode=_mode(mode))
    if as_json:
        print(json.dumps([asdict(hit) for hit in hits], indent=1))
        return
    table = Table("#", "score", "file", "page", "text")
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())[:160]
        table.add_row(str(rank), f"{hit.score:.3f}", hit.filename, str(hit.page or ""), snippet)
    Console().print(table)


def evaluate(
    dataset: Annotated[Path, typer.Argument(help="A BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/).")],
    mode: Annotated[str, typer.Option(help="dense, keyword, hybrid, or all.")] = "all",
    split: Annotated[str, typer.Option(help="Which qrels file to score against.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Score retrieval on a BEIR dataset: nDCG@10, Recall@10/@100, MRR@10, indexing speed, query latency."""
    with _one_line_errors():
        _evaluate(dataset, mode, split, as_json)


def _evaluate(dataset: Path, mode: str, split: str, as_json: bool) -> None:
    from retrieval.evaluate import ensure_indexed, load_beir
    from retrieval.evaluate import evaluate as run

    data = load_beir(dataset, split)
    engine = _engine(load_settings())
    with _progress(f"indexing {data.name}", len(data.corpus)) as advance:
        store_id, indexing = ensure_indexed(engine, data, f"beir:{dataset.resolve()}", advance)
    reports = []
    for name in (MODES if mode == "all" else (_mode(mode),)):
        with _progress(f"{name} queries", len(data.queries)) as advance:
            report = run(engine, store_id, data, name, advance)
        report.split, report.indexing = split, indexing
        reports.append(report)
    if as_json:
        print(json.dumps([asdict(r) for r in reports], indent=1))
        return
    table = Table("mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "query p50 ms", "query p95 ms",
                  title=f"{data.name} ({split}, {len(data.queries)} queries)")
    for r in reports:
        table.add_row(r.mode, f"{r.ndcg_at_10:.4f}", f"{r.recall_at_10:.4f}", f"{r.recall_at_100:.4f}",
                      f"{r.mrr_at_10:.4f}", f"{r.query_ms_p50}", f"{r.query_ms_p95}")
    Console().print(table)
    console.print(f"indexing: {indexing}")


def _mode(mode: str) -> SearchMode:
    for known in MODES:
        if mode == known:
            return known
    raise typer.BadParameter(f"mode must be one of {', '.join(MODES)}")


def register(app: typer.Typer) -> None:
    app.command()(index)
    app.command()(search)
    app.command("eval")(evaluate)
