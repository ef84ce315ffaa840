"""The retrieval engine's bookkeeping with a deterministic embedder (no model): incremental writes, another
process's writes seen by a running engine, deletions; and the API's error table. The real model is proven in
test_retrieval.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import errors
from orchestrator.sandbox import errors as sandbox_errors
from orchestrator.services.storage import FileNotFound, FileTooLarge
from orchestrator.web.errors import envelope
from retrieval import errors as retrieval_errors
from retrieval.models import Document, Page
from retrieval.vector_store import VectorStoreEngine
from tests.fakes import HashEmbedder


def engine_at(root: Path) -> VectorStoreEngine:
    return VectorStoreEngine(root, embedder=HashEmbedder())


def add(engine: VectorStoreEngine, store_id: str, file_id: str, text: str) -> None:
    engine.attach(store_id, file_id, f"{file_id}.txt")
    engine.index_documents(store_id, [Document(file_id, [Page(1, text)])])


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_a_running_engine_sees_what_another_process_adds_and_removes(tmp_path: Path, mode: str) -> None:
    server, cli = engine_at(tmp_path), engine_at(tmp_path)
    store = server.create_store("shared")
    add(server, store.id, "ducks", "ducks eat grass seeds and small insects near ponds")
    assert [h.file_id for h in server.search([store.id], "ducks ponds", k=3, mode=mode)] == ["ducks"]
    add(cli, store.id, "docling", "docling converts documents: pdf docx pptx into markdown")
    assert server.search([store.id], "docling converts documents", k=1, mode=mode)[0].file_id == "docling"
    cli.remove_file(store.id, "docling")
    assert {h.file_id for h in server.search([store.id], "docling converts documents", k=5, mode=mode)} <= {"ducks"}
    server.close()
    cli.close()


def test_a_checkpoint_written_elsewhere_is_taken_in(tmp_path: Path) -> None:
    server, cli = engine_at(tmp_path), engine_at(tmp_path)
    store = server.create_store("shared")
    for n in range(3):
        add(server, store.id, f"f{n}", f"file number {n} about topic{n}")
    server.search([store.id], "topic1", k=1, mode="dense")
    cli.remove_file(store.id, "f1")
    cli.checkpoint(store.id)  # prunes the deletions it covers: the server must reload, not miss them
    assert "f1" not in {h.file_id for h in server.search([store.id], "topic1", k=5, mode="dense")}
    server.close()
    cli.close()


def test_a_growing_store_switches_to_inverted_lists_and_keeps_its_answers(tmp_path: Path) -> None:
    engine = VectorStoreEngine(tmp_path, embedder=HashEmbedder(), ivf_from=1500)
    store = engine.create_store("growing")
    documents = []
    for n in range(2000):
        engine.attach(store.id, f"f{n}", f"f{n}.txt")
        documents.append(Document(f"f{n}", [Page(1, f"record {n} mentions token{n} and token{n % 97}")]))
    engine.index_documents(store.id, documents)
    before = [h.file_id for h in engine.search([store.id], "token1234", k=3, mode="dense")]
    engine.remove_file(store.id, "f7")
    engine.checkpoint(store.id)  # the checkpoint is where the index changes shape
    assert engine._indexes.get(store.id).index.lists == 31
    assert [h.file_id for h in engine.search([store.id], "token1234", k=3, mode="dense")] == before
    restarted = VectorStoreEngine(tmp_path, embedder=HashEmbedder(), ivf_from=1500)
    assert restarted._indexes.get(store.id).index.lists == 31
    assert [h.file_id for h in restarted.search([store.id], "token1234", k=3, mode="dense")] == before
    assert "f7" not in {h.file_id for h in restarted.search([store.id], "record 7 token7", k=10, mode="hybrid")}
    engine.close()
    restarted.close()


@pytest.mark.parametrize(("error", "status", "code"), [
    (FileNotFound("file-x"), 404, "not_found"),
    (FileTooLarge(10), 413, "file_too_large"),
    (errors.Conflict("busy"), 409, "conflict"),
    (errors.Unavailable("down"), 503, "unavailable"),
    (errors.InvalidRequest("bad", param="name"), 400, "invalid_value"),
    (sandbox_errors.SandboxNotFound("cntr_x"), 404, "not_found"),
    (sandbox_errors.CapacityExhausted("full"), 503, "sandbox_capacity"),
    (sandbox_errors.EngineUnavailable("down"), 503, "engine_unavailable"),
    (retrieval_errors.StoreNotFound("vs_x"), 404, "not_found"),
    (retrieval_errors.InvalidRequest("bad k", "max_num_results"), 400, "invalid_value"),
    (RuntimeError("secret detail"), 500, None),
])
def test_the_error_table_maps_each_tree_to_openai_envelopes(error: Exception, status: int, code: str | None) -> None:
    got_status, body = envelope(error)
    assert got_status == status and body["error"]["code"] == code
    assert set(body["error"]) == {"message", "type", "param", "code"}
    if status == 500:
        assert "secret" not in body["error"]["message"]
    if isinstance(error, errors.InvalidRequest):
        assert body["error"]["param"] == "name"
