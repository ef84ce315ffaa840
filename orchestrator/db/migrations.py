"""The metadata database's schema, as an ordered list of migrations; `PRAGMA user_version` counts those applied.

A database is upgraded in place at start-up. Migration 1 is the schema the first servers made without a version
(every statement IF NOT EXISTS, so on such a database it changes nothing); each later one moves data forward.
PostgreSQL's text of each migration is beside it, under the same number, in orchestrator.db.pg_migrations: a new
migration is added to both lists.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the unversioned schema.
    """
    CREATE TABLE IF NOT EXISTS files (
        id TEXT PRIMARY KEY,
        filename TEXT NOT NULL,
        purpose TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        seq INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS files_order ON files (created_at, seq);
    CREATE TABLE IF NOT EXISTS container_files (
        id TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        path TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        file_id TEXT,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        UNIQUE (container_id, path)
    );
    CREATE INDEX IF NOT EXISTS container_files_order ON container_files (container_id, seq);
    CREATE TABLE IF NOT EXISTS threads (
        thread_id TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS placed_files (
        container_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        PRIMARY KEY (container_id, file_id)
    );
    CREATE TABLE IF NOT EXISTS citations (
        thread_id TEXT NOT NULL,
        marker INTEGER NOT NULL,
        file_id TEXT NOT NULL,
        filename TEXT NOT NULL,
        page INTEGER,
        quote TEXT NOT NULL,
        PRIMARY KEY (thread_id, marker)
    );
    """,
    # 2: sandboxes and citations are kept by (scope, key), so tool-call threads, Assistants threads and other
    # faces' sessions never collide; exports are accounted per sandbox; container files and exports point at
    # files by foreign key (a deleted file leaves no dangling id).
    """
    CREATE TABLE sandbox_bindings (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        container_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
    );
    INSERT INTO sandbox_bindings (scope, key, container_id, created_at)
        SELECT 'tool_calls', thread_id, container_id, created_at FROM threads;
    DROP TABLE threads;
    CREATE TABLE citations_v2 (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        marker INTEGER NOT NULL,
        file_id TEXT NOT NULL,
        filename TEXT NOT NULL,
        page INTEGER,
        quote TEXT NOT NULL,
        PRIMARY KEY (scope, key, marker)
    );
    INSERT INTO citations_v2 SELECT 'tool_calls', thread_id, marker, file_id, filename, page, quote FROM citations;
    DROP TABLE citations;
    ALTER TABLE citations_v2 RENAME TO citations;
    DROP TABLE IF EXISTS exports;
    CREATE TABLE exports (
        file_id TEXT PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
        container_id TEXT NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE INDEX exports_by_container ON exports (container_id, sha256);
    CREATE TABLE container_files_v2 (
        id TEXT PRIMARY KEY,
        container_id TEXT NOT NULL,
        path TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        file_id TEXT REFERENCES files (id) ON DELETE SET NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        UNIQUE (container_id, path)
    );
    INSERT INTO container_files_v2
        SELECT id, container_id, path, bytes, created_at, source,
               CASE WHEN file_id IN (SELECT id FROM files) THEN file_id END, mtime_ns, inode, seq
        FROM container_files;
    DROP TABLE container_files;
    ALTER TABLE container_files_v2 RENAME TO container_files;
    CREATE INDEX container_files_order ON container_files (container_id, seq);
    """,
    # 3: the Assistants API's objects. A thread's messages go with it.
    """
    CREATE TABLE assistants (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    );
    CREATE TABLE threads (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    );
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        run_id TEXT,
        body TEXT NOT NULL
    );
    CREATE INDEX messages_by_thread ON messages (thread_id, seq);
    """,
    # 4: runs and their steps. A partial unique index is the thread lock: at most one live run per thread.
    """
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        body TEXT NOT NULL,
        -- The conversation so far, kept while the run waits for tool outputs.
        conversation TEXT
    );
    CREATE UNIQUE INDEX one_live_run_per_thread ON runs (thread_id)
        WHERE status IN ('queued', 'in_progress', 'requires_action', 'cancelling');
    CREATE TABLE run_steps (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        body TEXT NOT NULL
    );
    CREATE INDEX run_steps_by_run ON run_steps (run_id, seq);
    """,
    # 5: OpenAI's v2 citation markers 【search:result†name】: which search of the conversation, and which of its
    # results. Older rows keep answering to their single number (`marker`).
    """
    ALTER TABLE citations ADD COLUMN search INTEGER;
    ALTER TABLE citations ADD COLUMN result INTEGER;
    UPDATE citations SET search = marker, result = 0;
    CREATE UNIQUE INDEX citations_by_search ON citations (scope, key, search, result);
    """,
    # 6: a deleted file is no longer citable.
    """
    CREATE TRIGGER forget_deleted_file_citations AFTER DELETE ON files
    BEGIN
        DELETE FROM citations WHERE file_id = OLD.id;
    END;
    """,
    # 7: projects. Each top-level object's owner; what came before belongs to the default project, and the names
    # tool-call threads were given become that project's ("default/<name>"). Keys made by `toolshed keys`.
    """
    CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL
    );
    CREATE INDEX owners_by_project ON owners (project, id);
    INSERT INTO owners (id, project)
        SELECT id, 'default' FROM files UNION ALL SELECT id, 'default' FROM assistants
        UNION ALL SELECT id, 'default' FROM threads;
    CREATE TRIGGER forget_deleted_file_owner AFTER DELETE ON files
    BEGIN
        DELETE FROM owners WHERE id = OLD.id;
    END;
    CREATE TRIGGER forget_deleted_assistant_owner AFTER DELETE ON assistants
    BEGIN
        DELETE FROM owners WHERE id = OLD.id;
    END;
    CREATE TRIGGER forget_deleted_thread_owner AFTER DELETE ON threads
    BEGIN
        DELETE FROM owners WHERE id = OLD.id;
    END;
    UPDATE sandbox_bindings SET key = 'default/' || key WHERE scope = 'tool_calls';
    UPDATE citations SET key = 'default/' || key WHERE scope = 'tool_calls';
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    """,
    # 8: LibreChat's Code API names files by (session, file): which files each session holds, under which name.
    """
    CREATE TABLE librechat_files (
        session_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (session_id, file_id)
    );
    CREATE TRIGGER forget_deleted_librechat_file AFTER DELETE ON files
    BEGIN
        DELETE FROM librechat_files WHERE file_id = OLD.id;
    END;
    """,
    # 9: the Responses API's stored responses (their own input items beside them) and conversations. Item ids
    # repeat: a client replays a response's output items, ids and all, as the next one's input.
    """
    CREATE TABLE responses (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        stored INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX responses_by_status ON responses (status);
    CREATE TABLE response_inputs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
        body TEXT NOT NULL
    );
    CREATE INDEX response_inputs_order ON response_inputs (response_id, seq);
    CREATE INDEX response_inputs_by_id ON response_inputs (id);
    CREATE TABLE conversations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL
    );
    CREATE TABLE conversation_items (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        body TEXT NOT NULL
    );
    CREATE INDEX conversation_items_order ON conversation_items (conversation_id, seq);
    CREATE INDEX conversation_items_by_id ON conversation_items (id);
    """,
    # 10: leases, so replicas share one database: which replica drives a live run or response, and until when
    # (orchestrator.services.leases); every replica's sweep looks runs up by status.
    """
    ALTER TABLE runs ADD COLUMN lease_holder TEXT;
    ALTER TABLE runs ADD COLUMN lease_expires_at REAL;
    ALTER TABLE responses ADD COLUMN lease_holder TEXT;
    ALTER TABLE responses ADD COLUMN lease_expires_at REAL;
    CREATE INDEX runs_by_status ON runs (status);
    """,
    # 11: leases on ingestion jobs, so replicas share the vector stores' queue: which replica indexes a file
    # attached to a store, and until when (orchestrator.services.ingestion_leases).
    """
    CREATE TABLE ingestion_leases (
        store_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (store_id, file_id)
    );
    """,
    # 12: which replica holds each sandbox, so a request for a container reaching another replica is forwarded
    # to it (orchestrator.services.sandbox_homes).
    """
    CREATE TABLE sandbox_homes (container_id TEXT PRIMARY KEY, replica_url TEXT NOT NULL);
    """,
]
