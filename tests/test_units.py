"""Fast checks of pure pieces: layering, sizes, filenames, pagination, the file store, image tags."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import pytest

from orchestrator.api.schemas import paginate
from orchestrator.db import Database, PageRequest
from orchestrator.db.migrations import MIGRATIONS
from orchestrator.sandbox.image import recipe_hash
from orchestrator.sandbox.workspace import parse_size
from orchestrator.services.storage import FileNotFound, FileStore, FileTooLarge, safe_filename
from retrieval.sqlite import keyset_page

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    return _imported(path.read_text(), ".".join(path.relative_to(ROOT).parts[:-1]))


def _imported(source: str, package: str) -> set[str]:
    """Every module `source` imports, by full dotted name (relative imports resolved, `from a import b` counting
    both `a` and `a.b`), wherever the import statement stands (lazy imports inside functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def _python_files(target: str) -> list[Path]:
    path = ROOT / target
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def test_the_import_reader_sees_every_spelling() -> None:
    found = _imported("import orchestrator.api.x\nfrom .. import api\nfrom ..api import deps\n"
                      "def f():\n    import fastapi\n", "orchestrator.sandbox")
    assert {"orchestrator.api.x", "orchestrator.api", "orchestrator.api.deps", "fastapi"} <= found


@pytest.mark.parametrize("engine", ["orchestrator/sandbox", "retrieval", "orchestrator/tools", "orchestrator/services",
                                    "orchestrator/db", "orchestrator/errors.py", "orchestrator/assistants",
                                    "orchestrator/agent"])
def test_engines_are_plain_libraries(engine: str) -> None:
    for path in _python_files(engine):
        imported = _imports(path)
        assert not {"fastapi", "starlette", "uvicorn"} & {name.split(".")[0] for name in imported}, path
        assert not {name for name in imported if name.startswith(("orchestrator.api", "orchestrator.app"))}, path


ROUTERS = {path.stem for path in (ROOT / "orchestrator" / "api").glob("*.py")
           if "APIRouter(" in path.read_text()}


def test_no_router_imports_another_router_or_reaches_into_an_engine() -> None:
    assert {"containers", "files", "tools", "vector_stores", "container_files"} <= ROUTERS
    for name in ROUTERS:
        imported = _imports(ROOT / "orchestrator" / "api" / f"{name}.py")
        assert not {f"orchestrator.api.{other}" for other in ROUTERS - {name}} & imported, name
        engine_internals = {module for module in imported if module.startswith("retrieval") or (
            module.startswith("orchestrator.sandbox.")
            and (ROOT / "orchestrator" / "sandbox" / f"{module.split('.')[2]}.py").exists())}
        assert not engine_internals, name


def test_app_state_holds_the_service_container_only() -> None:
    used = {name for path in (ROOT / "orchestrator").rglob("*.py")
            for name in re.findall(r"app\.state\.(\w+)", path.read_text())}
    assert used == {"services"}


# Each foreign library is imported by exactly one module, which maps its exceptions to ours; `openai` also by the
# module that documents the Assistants face's answers with its type models (it calls nothing).
# A remote engine (issue 33) is reached through Docker's API alone: its containers, files and kernel channels; a
# kernel pod through the API server's, its execs included.
REMOTE_ENGINE = {f"orchestrator/sandbox/{name}.py"
                 for name in ("kernel_channel", "remote_container", "remote_files", "remote_host")}
FOREIGN = {"docker": {"orchestrator/sandbox/runtime.py", *REMOTE_ENGINE},
           "kubernetes": {f"orchestrator/sandbox/kubernetes/{name}.py"
                          for name in ("api_errors", "backend", "pod_exec")},
           "jupyter_client": {"orchestrator/sandbox/kernel.py"},
           "faiss": {"retrieval/index.py"}, "sentence_transformers": {"retrieval/embedding.py"},
           "pypdf": {"retrieval/parsing.py"},
           "openai": {"orchestrator/agent/chat.py", "orchestrator/api/openai_shapes.py"}}


def test_each_foreign_library_is_imported_by_one_module() -> None:
    importers: dict[str, set[str]] = {library: set() for library in FOREIGN}
    for path in _python_files("orchestrator") + _python_files("retrieval"):
        for library in FOREIGN.keys() & {name.split(".")[0] for name in _imports(path)}:
            importers[library].add(str(path.relative_to(ROOT)))
    assert importers == FOREIGN


@pytest.mark.parametrize(("text", "expected"), [("1g", 1 << 30), ("64m", 64 << 20), ("512MiB", 512 << 20),
                                                ("1024", 1024), ("1.5k", 1536)])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(("name", "expected"), [("../../etc/passwd", "passwd"), ("a\\b\\c.txt", "c.txt"),
                                                ("..", "file"), ("rep ort (1).csv", "rep ort (1).csv"),
                                                ("x;rm -rf $(y).py", "x_rm -rf _(y).py"), ("", "file")])
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_paginate_walks_both_orders() -> None:
    class Item:
        def __init__(self, id: str) -> None:
            self.id = id

    items = [Item(str(i)) for i in range(5)]
    page, more = paginate(items, after=None, limit=2, order="asc")
    assert ([i.id for i in page], more) == (["0", "1"], True)
    page, more = paginate(items, after="1", limit=10, order="asc")
    assert ([i.id for i in page], more) == (["2", "3", "4"], False)
    page, more = paginate(items, after="3", limit=2, order="desc")
    assert ([i.id for i in page], more) == (["2", "1"], True)


def test_keyset_pages_walk_both_orders_and_both_cursors(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "pages.db")
    conn.execute("CREATE TABLE items (seq INTEGER PRIMARY KEY, id TEXT, kind TEXT)")
    conn.executemany("INSERT INTO items (id, kind) VALUES (?, ?)", [(str(i), "odd" if i % 2 else "even")
                                                                    for i in range(10)])

    def ids(**page: object) -> tuple[list[str], bool]:
        rows, more = keyset_page(conn, PageRequest(**page), select="id", table="items")  # type: ignore[arg-type]
        return [row[0] for row in rows], more

    assert ids(limit=3, order="asc") == (["0", "1", "2"], True)
    assert ids(limit=3, order="asc", after="7") == (["8", "9"], False)
    assert ids(limit=3, order="desc") == (["9", "8", "7"], True)
    assert ids(limit=3, order="desc", after="7") == (["6", "5", "4"], True)
    assert ids(limit=3, order="asc", before="5") == (["2", "3", "4"], True)
    assert ids(limit=3, order="desc", before="5") == (["8", "7", "6"], True)
    assert ids(limit=10, order="asc", after="2", before="6") == (["3", "4", "5"], False)
    assert ids(limit=3, after="nope") == ([], False)
    odd, _ = keyset_page(conn, PageRequest(limit=10, order="asc", after="3"), select="id", table="items",
                         where="kind = ?", args=("odd",))
    assert [row[0] for row in odd] == ["5", "7", "9"]


def _file_store(root: Path) -> tuple[Database, FileStore]:
    db = Database(root / "toolshed.db")
    return db, FileStore(db, root)


def test_file_store_streams_lists_and_deletes(tmp_path: Path) -> None:
    db, store = _file_store(tmp_path)
    first = store.write([b"ab", b"cd"], "../a.txt", "assistants", project="p")
    second = store.write(iter([b"x"]), "b.txt", "assistants_output", project="p")
    assert (first.filename, first.bytes) == ("a.txt", 4)
    assert store.blob_path(first.id).read_bytes() == b"abcd"
    assert [f.id for f in store.page(PageRequest(), scope=None)[0]] == [second.id, first.id]
    assert [f.id for f in store.page(PageRequest(), scope=None, purpose="assistants")[0]] == [first.id]
    assert [f.id for f in store.page(PageRequest(order="asc", after=first.id), scope=None)[0]] == [second.id]
    store.delete(first.id)
    assert not store.blob_path(first.id).exists()
    with pytest.raises(FileNotFound):
        store.get(first.id)
    db.close()
    assert [f.id for f in _file_store(tmp_path)[1].page(PageRequest(), scope=None)[0]] == [second.id]


def test_a_full_disk_is_a_507_that_leaves_nothing_and_passes_when_space_is_back(tmp_path: Path) -> None:
    """The blobs on a real 1 MiB tmpfs: a 2 MiB upload fails whole, and the next small one is stored."""
    import subprocess

    from orchestrator.errors import DiskFull
    from orchestrator.web.errors import envelope

    root = tmp_path / "root"
    (root / "files").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root / "files")], check=True)
    try:
        db, store = _file_store(root)
        with pytest.raises(DiskFull) as caught:
            store.write([b"x" * (256 << 10)] * 8, "big.bin", "assistants", project="p")
        assert envelope(caught.value)[0] == 507
        assert envelope(caught.value)[1]["error"]["code"] == "insufficient_storage"
        assert store.page(PageRequest(), scope=None)[0] == [] and list((root / "files").iterdir()) == []
        small = store.write([b"fits"], "small.txt", "assistants", project="p")
        assert store.blob_path(small.id).read_bytes() == b"fits"
        db.close()
    finally:
        subprocess.run(["umount", str(root / "files")], check=False)


def test_file_store_rejects_oversize_and_leaves_nothing(tmp_path: Path) -> None:
    _, store = _file_store(tmp_path)
    with pytest.raises(FileTooLarge):
        store.write([b"x" * 10, b"y" * 10], "big.bin", "assistants", project="p", max_bytes=15)
    assert store.page(PageRequest(), scope=None)[0] == [] and list((tmp_path / "files").iterdir()) == []


def test_recipe_hash_follows_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy==2\n")
    before = recipe_hash(tmp_path)
    assert recipe_hash(tmp_path) == before
    (tmp_path / "requirements.txt").write_text("numpy==3\n")
    assert recipe_hash(tmp_path) != before


def test_a_database_from_before_migrations_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "toolshed.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((ROOT / "tests" / "data" / "database-before-migrations.sql").read_text())
    db = Database(path)
    assert db.version == len(MIGRATIONS)
    # Tool-call thread names, and the files, became the default project's.
    assert db.all("SELECT scope, key, container_id FROM sandbox_bindings") == [
        ("tool_calls", "default/thread-from-v0", "cntr_0123456789abcdef0123456789abcdef")]
    # The old binding table is gone; `threads` now holds the Assistants API's threads.
    assert [row[1] for row in db.all("PRAGMA table_info(threads)")] == ["seq", "id", "body"]
    assert db.all("SELECT scope, key, marker, filename FROM citations") == [
        ("tool_calls", "default/thread-from-v0", 0, "data.csv")]
    assert {project for (project,) in db.all("SELECT project FROM owners")} == {"default"}
    assert len(db.all("SELECT id FROM owners")) == len(db.all("SELECT id FROM files")) > 0
    # A container file naming a file deleted long ago no longer points at it; the other keeps its file.
    kept = dict(db.all("SELECT path, file_id FROM container_files"))
    owners = len(db.all("SELECT id FROM owners"))
    assert kept["gone.csv"] is None and kept["data.csv"].startswith("file-")
    # Foreign keys are on: deleting a file clears the container files that named it.
    FileStore(db, tmp_path).delete(kept["data.csv"])
    assert db.one("SELECT file_id FROM container_files WHERE path = 'data.csv'") == (None,)
    assert len(db.all("SELECT id FROM owners")) == owners - 1  # and its owner row
    db.close()
    again = Database(path)  # a second start changes nothing
    assert again.version == len(MIGRATIONS) and len(again.all("SELECT * FROM sandbox_bindings")) == 1
    again.close()


def test_a_failed_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "toolshed.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE threads (oops INTEGER);")  # not the shape migration 2 expects
    with pytest.raises(sqlite3.Error):
        Database(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'sandbox_bindings'").fetchone() is None


def test_a_start_sweeps_what_a_killed_upload_left(tmp_path: Path) -> None:
    db, store = _file_store(tmp_path)
    kept = store.write([b"keep"], "kept.txt", "assistants", project="p")
    blobs = store.blob_path(kept.id).parent
    (blobs / "file-orphan").write_bytes(b"bytes whose row was never written")
    (blobs / "file-half.part").write_bytes(b"half an upload")
    FileStore(db, tmp_path)  # the next start
    assert sorted(p.name for p in blobs.iterdir()) == [kept.id]
    assert store.blob_path(kept.id).read_bytes() == b"keep"
