"""The retrieval catalog on a real PostgreSQL (tests/postgres_server.py), shared by engines with data dirs of their
own, as replicas are: what one builds, the other lists, searches (same hits, same order), changes and deletes;
each keeps its own checkpoints. Then two real servers on one database and one bucket (tests/s3_server.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from retrieval.embedding import Embedder
from retrieval.models import Document, Page
from retrieval.vector_store import VectorStoreEngine
from tests.conftest import running_server, sdk_client
from tests.fakes import HashEmbedder
from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401 - the fixture
from tests.s3_server import S3Server, new_bucket_name, running_s3_server  # noqa: F401 - the s3_server fixture

pytestmark = pytest.mark.postgres

TEXTS = {
    "ducks": "Ducks eat grass seeds and small insects near ponds and slow rivers.",
    "faiss": "FAISS searches dense vectors by inner product; normalised vectors make it cosine similarity.",
    "bm25": "BM25 ranks documents by term frequency, inverse document frequency and document length.",
    "tea": "Green tea is steeped at eighty degrees for two minutes; black tea wants boiling water.",
}
QUERIES = ["what do ducks eat", "cosine similarity of vectors", "ranking by term frequency", "how hot for tea"]


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:  # noqa: F811 - the fixture above
    """A fresh, empty database for one test."""
    return postgres_server.new_database(f"r_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path, embedder: Embedder) -> Iterator[tuple[VectorStoreEngine, VectorStoreEngine]]:
    """Two engines on one database, each with its own data dir, and the real embedding model."""
    a = VectorStoreEngine(tmp_path / "a", embedder=embedder, database_url=pg_url)
    b = VectorStoreEngine(tmp_path / "b", embedder=embedder, database_url=pg_url)
    yield a, b
    a.close()
    b.close()


def add(engine: VectorStoreEngine, store_id: str, file_id: str, text: str) -> None:
    engine.attach(store_id, file_id, f"{file_id}.txt")
    engine.index_documents(store_id, [Document(file_id, [Page(1, text)])])


def answers(engine: VectorStoreEngine, store_id: str, mode: str = "hybrid") -> list[list[tuple[str, float]]]:
    return [[(hit.file_id, round(hit.score, 5)) for hit in engine.search([store_id], query, k=4, mode=mode)]
            for query in QUERIES]


def test_a_store_built_through_a_is_listed_searched_and_deleted_through_b(
        replicas: tuple[VectorStoreEngine, VectorStoreEngine]) -> None:
    a, b = replicas
    store = a.create_store("shared", metadata={"team": "search"})
    for file_id, text in TEXTS.items():
        add(a, store.id, file_id, text)
    assert [s.id for s in b.stores()] == [store.id]
    seen = b.store(store.id)
    assert (seen.name, seen.metadata, seen.file_counts.completed) == ("shared", {"team": "search"}, 4)
    assert seen.usage_bytes == a.store(store.id).usage_bytes > 0
    for mode in ("dense", "keyword", "hybrid"):
        through_a = answers(a, store.id, mode)
        assert [hits[0][0] for hits in through_a] == ["ducks", "faiss", "bm25", "tea"]
        assert answers(b, store.id, mode) == through_a
    b.delete_store(store.id)
    assert a.stores() == [] and not a.has_stores()
    with pytest.raises(Exception, match="No vector store found"):
        a.search([store.id], "ducks", k=1)


def test_a_file_added_and_removed_through_b_changes_what_a_finds(
        replicas: tuple[VectorStoreEngine, VectorStoreEngine]) -> None:
    a, b = replicas
    store = a.create_store("shared")
    add(a, store.id, "ducks", TEXTS["ducks"])
    assert [h.file_id for h in a.search([store.id], "steeping green tea", k=2)] == ["ducks"]  # A has it loaded
    add(b, store.id, "tea", TEXTS["tea"])
    for mode in ("dense", "keyword", "hybrid"):
        assert a.search([store.id], "steeping green tea", k=1, mode=mode)[0].file_id == "tea"
    b.remove_file(store.id, "tea")
    for mode in ("dense", "keyword", "hybrid"):
        assert {h.file_id for h in a.search([store.id], "green tea", k=5, mode=mode)} <= {"ducks"}
    assert a.chunk_count(store.id) == b.chunk_count(store.id) == 1


def _checkpoint_files(root: Path) -> set[str]:
    return {path.name for path in (root / "indexes").iterdir()}


def test_each_replica_keeps_its_own_checkpoints(pg_url: str, tmp_path: Path) -> None:
    """A's checkpoint is named nowhere B looks (the shared rows name no checkpoint file), and when A prunes
    deletions B's older checkpoint still holds, B rebuilds from the rows instead of serving what was deleted."""
    a = VectorStoreEngine(tmp_path / "a", embedder=HashEmbedder(), database_url=pg_url)
    b = VectorStoreEngine(tmp_path / "b", embedder=HashEmbedder(), database_url=pg_url)
    store = a.create_store("shared")
    for n in range(4):
        add(a, store.id, f"f{n}", f"file number {n} about topic{n}")
    b.checkpoint(store.id)  # B's own checkpoint: it holds f1
    assert _checkpoint_files(tmp_path / "a") == set()
    mine = _checkpoint_files(tmp_path / "b")
    assert any(name.endswith(".faiss") for name in mine)
    b.close()
    a.remove_file(store.id, "f1")
    a.checkpoint(store.id)  # prunes the deletion of f1's chunks
    assert _checkpoint_files(tmp_path / "b") == mine  # A wrote nothing of B's, nor B anything of A's
    assert any(name.endswith(".faiss") for name in _checkpoint_files(tmp_path / "a"))
    with psycopg.connect(pg_url) as conn:
        columns = {row[0] for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'retrieval' "
            "AND table_name = 'stores'")}
        assert conn.execute("SELECT COUNT(*) FROM retrieval.deletions").fetchone() == (0,)
    assert "checkpoint" not in columns and "checkpoint_max_chunk" not in columns
    restarted = VectorStoreEngine(tmp_path / "b", embedder=HashEmbedder(), database_url=pg_url)
    assert len(restarted._indexes.get(store.id).index) == restarted.chunk_count(store.id) == 3
    for mode in ("dense", "keyword"):
        # Stale chunks of f1 would take the first place and then be left out as deleted: no hit at all.
        [hit] = restarted.search([store.id], "file number 1 about topic1", k=1, mode=mode)
        assert hit.file_id != "f1"
    restarted.close()
    a.close()


def test_two_servers_on_one_database_and_bucket_share_a_vector_store(
        docker_ready: None, pg_url: str, s3_server: S3Server, tmp_path: Path) -> None:
    """A vector store built through server A answers the same search through server B."""
    env = {"TOOLSHED_DATABASE_URL": pg_url, "TOOLSHED_POOL_SIZE": "0", **s3_server.env(new_bucket_name())}
    with running_server(tmp_path / "a", **env) as server_a, running_server(tmp_path / "b", **env) as server_b:
        a, b = sdk_client(server_a, timeout=600), sdk_client(server_b, timeout=600)
        store = a.vector_stores.create(name="shared")
        for file_id, text in TEXTS.items():
            uploaded = a.files.create(file=(f"{file_id}.txt", text.encode()), purpose="assistants")
            a.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=uploaded.id)
        assert [s.id for s in b.vector_stores.list().data] == [store.id]
        assert b.vector_stores.retrieve(store.id).file_counts.completed == 4
        for query in QUERIES:
            through_a = [(hit.filename, round(hit.score, 4)) for hit in
                         a.vector_stores.search(store.id, query=query, max_num_results=4).data]
            through_b = [(hit.filename, round(hit.score, 4)) for hit in
                         b.vector_stores.search(store.id, query=query, max_num_results=4).data]
            assert through_b == through_a and through_a
        extra = b.files.create(file=("late.txt", b"Zebras are striped horses of the African savanna."),
                               purpose="assistants")
        b.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=extra.id)
        hits = a.vector_stores.search(store.id, query="striped zebras", max_num_results=1).data
        assert [hit.filename for hit in hits] == ["late.txt"]
        assert b.vector_stores.delete(store.id).deleted is True
        assert a.vector_stores.list().data == []
