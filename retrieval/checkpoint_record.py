"""Which checkpoint file of a store an engine loads, and the watermarks it covers.

On SQLite every process writing the catalog shares one data dir, so the record is the store's row, as it always
was. On PostgreSQL each replica has a data dir of its own: its checkpoints, and the record naming them, stay on
its own disk (a JSON file beside them), so no replica ever loads a path another wrote. What replicas share is
how far the store's deletions were pruned (`stores.checkpoint_deletion`): a checkpoint older than that can no
longer be caught up, and the store is rebuilt from its rows instead (the rows are the truth; checkpoints a cache).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from retrieval.atomic_file import write_atomically
from retrieval.catalog import Catalog
from retrieval.errors import StoreNotFound


@dataclass(frozen=True)
class CheckpointRecord:
    name: str | None = None  # the checkpoint's file name in this engine's checkpoint dir; None: none to load
    max_chunk: int = 0  # every chunk id up to this one is in it
    deletion: int = 0  # every deletion up to this seq has been applied to it


class CheckpointRecords:
    def __init__(self, catalog: Catalog, checkpoints: Path) -> None:
        self._catalog = catalog
        self._checkpoints = checkpoints

    def _local(self, store_id: str) -> Path:
        # Named like the checkpoints (`<store>-...`), so forgetting a store removes it with them.
        return self._checkpoints / f"{store_id}-checkpoint.json"

    def get(self, store_id: str) -> tuple[CheckpointRecord, int]:
        """The store's checkpoint as this engine recorded it, and how far its deletions were pruned."""
        with self._catalog.read() as conn:
            if self._catalog.shared:
                row = conn.execute("SELECT checkpoint_deletion FROM stores WHERE id = ?", (store_id,)).fetchone()
            else:
                row = conn.execute("SELECT checkpoint_deletion, checkpoint, checkpoint_max_chunk FROM stores "
                                   "WHERE id = ?", (store_id,)).fetchone()
        if row is None:
            raise StoreNotFound(store_id)
        pruned = int(row[0])
        if not self._catalog.shared:
            return CheckpointRecord(row[1], int(row[2]), pruned), pruned
        try:
            record = CheckpointRecord(**json.loads(self._local(store_id).read_text()))
        except (OSError, ValueError, TypeError):
            record = CheckpointRecord()  # none yet, or unreadable: the rows rebuild it
        return record, pruned

    def put(self, store_id: str, record: CheckpointRecord) -> None:
        """Record a checkpoint just written, and prune the deletions it covers (they were applied to it). Raises
        OSError or DiskFull when it could not be recorded."""
        with self._catalog.write() as conn:
            if self._catalog.shared:
                # Another replica may have pruned further already: the mark only moves forward.
                conn.execute("UPDATE stores SET checkpoint_deletion = ? WHERE id = ? AND checkpoint_deletion < ?",
                             (record.deletion, store_id, record.deletion))
            else:
                conn.execute("UPDATE stores SET checkpoint = ?, checkpoint_max_chunk = ?, checkpoint_deletion = ? "
                             "WHERE id = ?", (record.name, record.max_chunk, record.deletion, store_id))
            conn.execute("DELETE FROM deletions WHERE store_id = ? AND seq <= ?", (store_id, record.deletion))
        if self._catalog.shared:
            write_atomically(self._local(store_id), lambda path: _write_text(path, json.dumps(asdict(record))))


def _write_text(path: Path, text: str) -> None:
    path.write_text(text)
