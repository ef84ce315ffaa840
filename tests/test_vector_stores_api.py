"""The Vector Stores API and file_search routing, driven by the official openai SDK against a real server."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from retrieval.embedding import Embedder, embed_texts
from tests.conftest import metric_value
from tests.datasets import DOCS

pytestmark = pytest.mark.docker

PDF = DOCS / "pdf" / "arxiv-1706.03762-attention-is-all-you-need.pdf"
DOCX = DOCS / "office" / "word_sample.docx"
MD = DOCS / "md" / "duck.md"


@pytest.fixture(scope="module")
def papers(client: OpenAI) -> str:
    """A store with a real PDF, a docx and a markdown file, each uploaded with upload_and_poll."""
    store = client.vector_stores.create(name="papers", metadata={"suite": "sdk"})
    for path, attributes in ((PDF, {"kind": "paper", "year": 2017}), (DOCX, {"kind": "office", "year": 2020}),
                             (MD, {"kind": "notes", "year": 2024})):
        with open(path, "rb") as fh:
            done = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=fh)
        assert done.status == "completed", done.last_error
        client.vector_stores.files.update(done.id, vector_store_id=store.id, attributes=attributes)
    return store.id


def test_upload_and_search_cites_the_right_file(client: OpenAI, papers: str) -> None:
    store = client.vector_stores.retrieve(papers)
    assert (store.status, store.file_counts.completed, store.file_counts.total) == ("completed", 3, 3)
    assert store.usage_bytes > 0 and store.metadata == {"suite": "sdk"}
    page = client.vector_stores.search(papers, query="How is scaled dot-product attention computed?",
                                       max_num_results=3)
    assert page.data[0].filename == PDF.name and "softmax" in page.data[0].content[0].text.lower()
    assert page.data[0].score >= page.data[-1].score
    top = page.data[0].model_dump()  # page and chunk id ride along as extra fields, as in file_search steps
    assert top["page"] == 4 and isinstance(top["chunk_id"], int)
    chunks = list(client.vector_stores.files.content(page.data[0].file_id, vector_store_id=papers))
    [same] = [c for c in chunks if c.model_dump()["chunk_id"] == top["chunk_id"]]
    assert same.text == page.data[0].content[0].text and same.model_dump()["page"] == 4
    assert {c.model_dump()["page"] for c in chunks} == set(range(1, 16))
    # The docx and the markdown file tell the same duck story; both must outrank the paper.
    ducks = client.vector_stores.search(papers, query="what do ducks like to eat", max_num_results=2)
    assert {(r.filename, r.attributes["kind"]) for r in ducks.data} == {(MD.name, "notes"), (DOCX.name, "office")}


def test_attribute_filters_and_ranking_options(client: OpenAI, papers: str) -> None:
    recent = client.vector_stores.search(papers, query="attention", max_num_results=20,
                                         filters={"type": "gte", "key": "year", "value": 2020})
    assert recent.data and {r.filename for r in recent.data} <= {DOCX.name, MD.name}
    either = client.vector_stores.search(papers, query="what do ducks eat", max_num_results=5, filters={
        "type": "or", "filters": [{"type": "eq", "key": "kind", "value": "paper"},
                                  {"type": "in", "key": "kind", "value": ["office"]}]})
    # The markdown duck story is filtered out; its docx twin and the paper remain.
    assert either.data[0].filename == DOCX.name and {r.filename for r in either.data} <= {PDF.name, DOCX.name}
    every = client.vector_stores.search(papers, query="attention", max_num_results=20).data
    threshold = (every[0].score + every[-1].score) / 2
    assert every[0].score > every[-1].score
    strict = client.vector_stores.search(papers, query="attention", max_num_results=20,
                                         ranking_options={"score_threshold": threshold}).data
    assert strict and len(strict) < len(every)
    assert all(r.score >= threshold for r in strict)
    assert [(r.file_id, r.score) for r in strict] == [(r.file_id, r.score) for r in every[:len(strict)]]


def test_ranker_none_scores_are_the_cosine_similarity(client: OpenAI, papers: str,
                                                      embedder: Embedder) -> None:
    query = "scaled dot-product attention"
    dense = client.vector_stores.search(papers, query=query, ranking_options={"ranker": "none"}).data
    assert dense
    for hit in dense[:3]:
        vectors = embed_texts(embedder, [query, hit.content[0].text])
        assert hit.score == pytest.approx(float(vectors[0] @ vectors[1]), abs=0.01)
    hybrid = client.vector_stores.search(papers, query=query).data
    assert [r.score for r in hybrid[:3]] != [r.score for r in dense[:3]]


@pytest.mark.local_state
def test_null_updates_clear_fields_and_never_poison_the_list(client: OpenAI, server: Server) -> None:
    store = client.vector_stores.create(name="to clear", metadata={"a": "b"})
    cleared = httpx.post(f"{server.base_url}/v1/vector_stores/{store.id}", json={"metadata": None, "name": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["metadata"], cleared.json()["name"]) == ({}, "")
    assert client.vector_stores.retrieve(store.id).metadata == {}
    too_many = httpx.post(f"{server.base_url}/v1/vector_stores/{store.id}",
                          json={"metadata": {f"k{i}": "v" for i in range(17)}})
    assert too_many.status_code == 400
    # A row written by a version that stored the null: every read still answers.
    with sqlite3.connect(server.data_dir / "retrieval" / "retrieval.db") as db:
        db.execute("UPDATE stores SET metadata = 'null' WHERE id = ?", (store.id,))
    assert client.vector_stores.retrieve(store.id).metadata == {}
    assert store.id in {s.id for s in client.vector_stores.list(limit=100)}


def test_file_listing_content_and_deletion(client: OpenAI, papers: str) -> None:
    listed = client.vector_stores.files.list(vector_store_id=papers, filter="completed", order="asc")
    assert len(listed.data) == 3 and all(f.object == "vector_store.file" for f in listed.data)
    pdf_id = next(f.id for f in listed.data if f.attributes["kind"] == "paper")
    chunks = list(client.vector_stores.files.content(pdf_id, vector_store_id=papers))
    assert len(chunks) > 10 and "Attention Is All You Need" in "".join(c.text for c in chunks)

    store = client.vector_stores.create(name="deletion")
    with open(MD, "rb") as fh:
        md = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=fh)
    assert client.vector_stores.search(store.id, query="duck").data
    client.vector_stores.files.delete(md.id, vector_store_id=store.id)
    assert client.vector_stores.search(store.id, query="duck").data == []
    client.vector_stores.delete(store.id)
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_deleting_a_file_deletes_it_from_every_store_and_citation(client: OpenAI, server: Server) -> None:
    with open(MD, "rb") as fh:
        uploaded = client.files.create(file=fh, purpose="assistants")
    stores = [client.vector_stores.create(name=f"both {n}", file_ids=[uploaded.id]).id for n in range(2)]
    for store_id in stores:
        while client.vector_stores.retrieve(store_id).file_counts.completed < 1:
            time.sleep(0.2)
    call = {"thread_id": "thread_forget", "tool_call": {"id": "call_1", "type": "function", "function": {
        "name": "file_search", "arguments": json.dumps({"query": "duck"})}},
        "tool_resources": {"file_search": {"vector_store_ids": stores[:1]}}}
    marker = httpx.post(f"{server.base_url}/v1/tool_calls", json=call).json()["step_details"]["tool_calls"][0][
        "file_search"]["results"][0]["marker"]
    assert client.files.delete(uploaded.id).deleted
    for store_id in stores:
        assert client.vector_stores.search(store_id, query="duck").data == []
        assert client.vector_stores.files.list(vector_store_id=store_id).data == []
        counts = client.vector_stores.retrieve(store_id).file_counts
        assert (counts.total, counts.completed) == (0, 0)
    cited = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": "thread_forget", "text": marker})
    assert cited.json()["text"]["annotations"] == [] and cited.json()["unresolved"]
    with pytest.raises(openai.NotFoundError):
        client.files.delete(uploaded.id)


def test_bad_files_fail_with_a_clear_last_error(client: OpenAI, tmp_path: Path) -> None:
    store = client.vector_stores.create(name="bad files")
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(PDF.read_bytes()[:5000])
    with open(corrupt, "rb") as fh:
        failed = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=fh)
    assert failed.status == "failed" and failed.last_error.code == "invalid_file"
    with open(DOCS / "pdf" / "scanned-no-text-layer-4p.pdf", "rb") as fh:
        scanned = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=fh)
    assert scanned.status == "failed" and scanned.last_error.code == "unsupported_file"
    assert client.vector_stores.retrieve(store.id).file_counts.failed == 2


def test_file_batches_upload_and_poll(client: OpenAI) -> None:
    store = client.vector_stores.create(name="batch")
    paths = sorted((DOCS / "md").glob("*.md"))
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(open(path, "rb")) for path in paths]
        batch = client.vector_stores.file_batches.upload_and_poll(store.id, files=handles)
    assert batch.status == "completed" and batch.file_counts.completed == len(paths)
    listed = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    assert len(listed.data) == len(paths)
    assert client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id).object == \
        "vector_store.files_batch"


def test_bad_requests_are_clear_errors(server: Server, client: OpenAI, papers: str) -> None:
    base = f"{server.base_url}/v1/vector_stores"
    too_many = httpx.post(f"{base}/{papers}/search", json={"query": "x", "max_num_results": 51})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "max_num_results"
    bad_filter = httpx.post(f"{base}/{papers}/search", json={"query": "x", "filters": {"type": "near"}})
    assert bad_filter.status_code == 400
    overlap = httpx.post(base, json={"chunking_strategy": {"type": "static", "static": {
        "max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}}})
    assert overlap.status_code == 400 and "overlap" in overlap.json()["error"]["message"]
    assert httpx.get(f"{base}/vs_nope").status_code == 404
    for batch in ({"file_ids": ["file-a"], "files": [{"file_id": "file-a"}]}, {}):
        both = httpx.post(f"{base}/{papers}/file_batches", json=batch)
        assert both.status_code == 400 and both.json()["error"]["type"] == "invalid_request_error"
    assert httpx.post(base, json={"file_ids": ["file-nope"]}).status_code == 404
    for empty in ("", "   ", [], [""]):
        blank = httpx.post(f"{base}/{papers}/search", json={"query": empty})
        assert blank.status_code == 400 and blank.json()["error"]["param"] == "query", empty


def test_small_contract_fixes(server: Server, client: OpenAI, papers: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    store = client.vector_stores.create(name="empty")
    with empty.open("rb") as fh:
        failed = client.vector_stores.files.upload_and_poll(vector_store_id=store.id, file=fh)
    assert failed.status == "failed" and "empty" in failed.last_error.message
    assert "OCR" not in failed.last_error.message
    with PDF.open("rb") as fh:
        pdf = client.files.create(file=fh, purpose="assistants")
    download = httpx.get(f"{server.base_url}/v1/files/{pdf.id}/content")
    assert download.headers["content-type"] == "application/pdf"
    as_object = httpx.post(f"{server.base_url}/v1/tool_calls", timeout=60, json={
        "thread_id": "t_obj", "tool_resources": {"file_search": {"vector_store_ids": [papers]}},
        "tool_call": {"id": "call_o", "type": "function", "function": {
            "name": "file_search", "arguments": {"query": "ducks"}}}})
    assert as_object.status_code == 200 and as_object.json()["step_details"]["tool_calls"][0]["file_search"][
        "results"]


def tool_call(server: Server, thread: str, name: str, arguments: dict, resources: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/tool_calls", timeout=60, json={
        "thread_id": thread, "tool_resources": resources,
        "tool_call": {"id": "call_fs", "type": "function", "function": {"name": name,
                                                                         "arguments": json.dumps(arguments)}}})


def test_file_search_tool_call_and_citations(server: Server, papers: str) -> None:
    tools = {t["function"]["name"] for t in httpx.get(f"{server.base_url}/v1/tools").json()["data"]}
    assert tools == {"code_interpreter", "file_search"}
    resources = {"file_search": {"vector_store_ids": [papers]}}
    response = tool_call(server, "thread_cite", "file_search", {"query": "scaled dot-product attention"}, resources)
    assert response.status_code == 200, response.text
    body = response.json()
    [step] = body["step_details"]["tool_calls"]
    results = step["file_search"]["results"]
    assert step["type"] == "file_search" and results[0]["file_name"] == PDF.name and results[0]["page"] == 4
    first, second = results[0]["marker"], results[1]["marker"]
    assert first == f"【0:0†{PDF.name}】" and second.startswith("【0:1†") and first in body["output"] and second in \
        body["output"]

    answer = f"Attention scales the dot products by 1/sqrt(d_k) {first}. Unrelated 【9:9†nothing.pdf】."
    part = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": "thread_cite", "text": answer}).json()
    [citation] = part["text"]["annotations"]
    assert citation["type"] == "file_citation" and citation["file_citation"]["file_id"] == results[0]["file_id"]
    assert answer[citation["start_index"]:citation["end_index"]] == citation["text"] == first
    assert citation["file_citation"]["page"] == 4
    quote = citation["file_citation"]["quote"]  # the sentence that answers, not the whole ~1,000-character chunk
    assert quote in results[0]["content"][0]["text"] and len(quote) <= 400 and "dot" in quote.lower()
    assert [u["text"] for u in part["unresolved"]] == ["【9:9†nothing.pdf】"]
    mixed_up = first.replace(PDF.name, DOCX.name)  # the number of one file, the name of another
    swapped = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": "thread_cite", "text": mixed_up})
    assert swapped.json()["text"]["annotations"] == []
    assert DOCX.name in swapped.json()["unresolved"][0]["text"]

    again = tool_call(server, "thread_cite", "file_search", {"query": "ducks"}, resources).json()
    assert again["step_details"]["tool_calls"][0]["file_search"]["results"][0]["marker"].startswith(
        "【1:0†")  # searches keep counting within a thread
    legacy = f"as before 【{len(results)}†source】"  # the older single-number form: the thread's n-th result
    [old] = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": "thread_cite", "text": legacy}).json()[
        "text"]["annotations"]
    assert old["text"] == legacy[old["start_index"]:old["end_index"]] == legacy[10:]
    other = httpx.post(f"{server.base_url}/v1/annotations", json={"thread_id": "thread_other", "text": answer})
    assert other.json()["text"]["annotations"] == []


def test_file_search_hands_the_model_no_noise(server: Server, papers: str) -> None:
    resources = {"file_search": {"vector_store_ids": [papers]}}
    junk = tool_call(server, "thread_junk", "file_search", {"query": "asdkjh qwpoeiru"}, resources).json()
    assert junk["output"] == "No relevant passages found in the attached files."
    assert junk["step_details"]["tool_calls"][0]["file_search"]["results"] == []
    found = tool_call(server, "thread_junk", "file_search", {"query": "what do ducks like to eat"}, resources).json()
    results = found["step_details"]["tool_calls"][0]["file_search"]["results"]
    assert 0 < len(results) < 10 and all(r["score"] >= 0.2 for r in results)
    assert results[0]["dense_score"] > 0.3 and results[0]["keyword_score"] > 0.2


def test_ingestion_is_watchable(server: Server, papers: str) -> None:
    health = httpx.get(f"{server.base_url}/health").json()["retrieval"]
    assert health["model_loaded"] is True and health["backlog"] == 0 and health["free_disk_bytes"] > 0
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert metric_value(metrics, 'toolshed_files_ingested_total{status="completed"}') >= 3
    assert metric_value(metrics, "toolshed_ingest_seconds_count") >= 1
    log = server.log.read_text()
    assert "indexed word_sample.docx:" in log and " chunks (batch of " in log
    assert "could not index empty.txt: unsupported_file" in log or "empty.txt" not in log
    assert f'"GET /v1/vector_stores/{papers} HTTP/1.1" 200' not in log  # reads are polled: DEBUG only


def test_file_search_errors(server: Server) -> None:
    nothing = tool_call(server, "t", "file_search", {"query": "x"}, {})  # no stores: the model is told so
    assert nothing.status_code == 200 and "no vector store is attached" in nothing.json()["output"]
    assert nothing.json()["step_details"]["tool_calls"][0]["file_search"]["results"] == []
    unknown = tool_call(server, "t", "file_search", {"query": "x"}, {"file_search": {"vector_store_ids": ["vs_no"]}})
    assert unknown.status_code == 404
    bad = tool_call(server, "t", "file_search", {"q": "x"}, {"file_search": {"vector_store_ids": ["vs_no"]}})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_arguments"
