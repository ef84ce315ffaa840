"""The retrieval catalog's tables: stores, their files, chunks, cached embeddings, deletions since a store's
FAISS checkpoint, and file batches."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS stores (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    expires_after_days INTEGER,
    checkpoint TEXT,
    checkpoint_max_chunk INTEGER NOT NULL DEFAULT 0,
    checkpoint_deletion INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS store_files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    usage_bytes INTEGER NOT NULL DEFAULT 0,
    attributes TEXT NOT NULL,
    chunking TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    batch_id TEXT,
    UNIQUE (store_id, file_id)
);
CREATE INDEX IF NOT EXISTS store_files_batch ON store_files (batch_id);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    page INTEGER,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    hash TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (store_id, file_id);
-- A store's newest chunk and its chunks after a watermark, found without reading the whole store.
CREATE INDEX IF NOT EXISTS chunks_store ON chunks (store_id, id);
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, hash)
);
-- Chunks removed since a store's FAISS checkpoint was written, so loading it can drop them again.
CREATE TABLE IF NOT EXISTS deletions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    store_id TEXT NOT NULL,
    chunk_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deletions_store ON deletions (store_id, seq);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    store_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
"""
