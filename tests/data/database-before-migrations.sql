-- A metadata database as the landed server (67e58a9) wrote it: no schema version (PRAGMA user_version 0).
-- One file, two container files (one naming a file deleted long ago), a thread binding, a placed file, a citation.
BEGIN TRANSACTION;
CREATE TABLE citations (
    thread_id TEXT NOT NULL,
    marker INTEGER NOT NULL,
    file_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    page INTEGER,
    quote TEXT NOT NULL,
    PRIMARY KEY (thread_id, marker)
);
INSERT INTO "citations" VALUES('thread-from-v0',0,'file-zBWmB7JOemsCFKKDjeCnsGmi','data.csv',1,'a,b');
CREATE TABLE container_files (
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
INSERT INTO "container_files" VALUES('cfile_f566b1e16232ac3330a96e7808b4e267','cntr_0123456789abcdef0123456789abcdef','data.csv',8,1795503738,'user','file-zBWmB7JOemsCFKKDjeCnsGmi',1,2,1);
INSERT INTO "container_files" VALUES('cfile_a8c4fda7fed6905af126ae438e332f5d','cntr_0123456789abcdef0123456789abcdef','gone.csv',8,1795503738,'assistant','file-deletedlongago',1,3,2);
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    seq INTEGER NOT NULL
);
INSERT INTO "files" VALUES('file-zBWmB7JOemsCFKKDjeCnsGmi','data.csv','assistants',8,1795503738,1);
CREATE TABLE placed_files (
    container_id TEXT NOT NULL,
    file_id TEXT NOT NULL,
    PRIMARY KEY (container_id, file_id)
);
INSERT INTO "placed_files" VALUES('cntr_0123456789abcdef0123456789abcdef','file-zBWmB7JOemsCFKKDjeCnsGmi');
CREATE TABLE threads (
    thread_id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
INSERT INTO "threads" VALUES('thread-from-v0','cntr_0123456789abcdef0123456789abcdef',1700000000);
CREATE INDEX files_order ON files (created_at, seq);
CREATE INDEX container_files_order ON container_files (container_id, seq);
COMMIT;
