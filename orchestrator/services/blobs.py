"""Where a stored file's bytes live: the `Blobs` seam FileStore writes through, its local-disk backend, and the
choice between that and an S3-compatible bucket (orchestrator.services.s3_blobs) from the settings.

Every backend hands readers a local path (`path`), so readers never know where the bytes really are.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from orchestrator.config import Settings
from orchestrator.services.blob_cache import sweep_folder


class Blobs(Protocol):
    """The bytes of stored files, by file id. A file's bytes are written to `partial(id)` first, then `put`."""

    # True when local files are only a cache of a store other replicas share: a read must check the file's row
    # first, since another replica may have deleted it.
    is_cache: bool

    @property
    def root(self) -> Path:
        """The local folder the bytes (or their cache) are kept in."""
        ...

    def partial(self, file_id: str) -> Path:
        """Where an upload's bytes are written before `put`."""
        ...

    def put(self, file_id: str) -> None:
        """Make `partial(file_id)`, now complete, the file's bytes (the partial is consumed)."""
        ...

    def path(self, file_id: str) -> Path:
        """A local file holding the bytes."""
        ...

    def delete(self, file_id: str) -> None:
        """Free the bytes; no error if there are none."""
        ...

    def sweep(self, known: Iterable[str]) -> None:
        """Remove what a killed process left: partial writes, and local bytes of files not in `known`."""
        ...


class LocalBlobs:
    """One file per blob under `root`: the embedded default."""

    is_cache = False

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = root

    @property
    def root(self) -> Path:
        return self._root

    def partial(self, file_id: str) -> Path:
        return self._root / f"{file_id}.part"

    def put(self, file_id: str) -> None:
        os.replace(self.partial(file_id), self.path(file_id))

    def path(self, file_id: str) -> Path:
        return self._root / file_id

    def delete(self, file_id: str) -> None:
        self.path(file_id).unlink(missing_ok=True)

    def sweep(self, known: Iterable[str]) -> None:
        sweep_folder(self._root, set(known))


def blobs_for(settings: Settings) -> Blobs:
    """The bucket when TOOLSHED_S3_BUCKET is set (checked and created now: a bad setting stops the start with
    the reason), else files under the data dir."""
    if not settings.s3_bucket:
        return LocalBlobs(settings.data_dir / "files")
    from orchestrator.sandbox.workspace import parse_size
    from orchestrator.services.s3_blobs import Bucket, S3Blobs

    bucket = Bucket(settings.s3_bucket, settings.s3_endpoint_url or None, settings.s3_region or None,
                    settings.s3_access_key_id or None, settings.s3_secret_access_key.get_secret_value() or None)
    return S3Blobs(bucket, settings.data_dir / "cache" / "files", parse_size(settings.s3_cache_size))
