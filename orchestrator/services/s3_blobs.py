"""Stored files' bytes in an S3-compatible bucket (objects `files/<file id>`), with local disk as a bounded cache.

The only module that imports boto3: its errors become ObjectStoreError (a 503 in every face) here. Uploads and
downloads go through boto3's managed transfers, part by part from and to disk, never whole in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
from boto3.exceptions import Boto3Error  # type: ignore[import-untyped]
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from orchestrator.errors import NotFound, Unavailable
from orchestrator.services.blob_cache import BlobCache

log = logging.getLogger("toolshed")
_PREFIX = "files/"
# 8 MiB parts, four at a time: what one transfer holds in memory is bounded by these, whatever the file's size.
_TRANSFER = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)
_CLIENT = Config(
    connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
    # Path-style addressing and checksums only where S3 requires them: what S3-compatible servers all accept.
    s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
    response_checksum_validation="when_required")


class ObjectStoreError(Unavailable):
    """The bucket could not be reached or refused a request; never carries a credential."""


@dataclass(frozen=True)
class Bucket:
    """Where the objects go; None leaves a value to boto3's defaults (AWS's endpoint, its credential chain)."""

    name: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)


class S3Blobs:
    """The Blobs backend on a bucket: checks the bucket at construction (creating it when absent) and raises
    ObjectStoreError saying why when it cannot be used."""

    is_cache = True

    def __init__(self, bucket: Bucket, cache_dir: Path, cache_bytes: int) -> None:
        self._bucket = bucket.name
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=bucket.endpoint_url, region_name=bucket.region, aws_access_key_id=bucket.access_key_id,
            aws_secret_access_key=bucket.secret_access_key, config=_CLIENT)
        self._cache = BlobCache(cache_dir, cache_bytes)
        _ensure_bucket(self._client, bucket)

    @property
    def root(self) -> Path:
        return self._cache.folder

    @property
    def cache(self) -> BlobCache:
        return self._cache

    def partial(self, file_id: str) -> Path:
        return self._cache.folder / f"{file_id}.part"

    def put(self, file_id: str) -> None:
        """Upload the partial (multipart past 8 MiB); it then stays as the file's cached copy."""
        partial = self.partial(file_id)
        with _translated(f"store {file_id}"):
            self._client.upload_file(str(partial), self._bucket, _PREFIX + file_id, Config=_TRANSFER)
        self._cache.add(file_id, partial)

    def path(self, file_id: str) -> Path:
        return self._cache.get(file_id, lambda into: self._download(file_id, into))

    def delete(self, file_id: str) -> None:
        """Remove the object and its cached copy; a bucket that fails is logged, not raised: the file's row is
        already gone, so the caller has nothing left to retry."""
        self._cache.discard(file_id)
        try:
            with _translated(f"delete {file_id}"):
                self._client.delete_object(Bucket=self._bucket, Key=_PREFIX + file_id)
        except ObjectStoreError as exc:
            log.error("%s; the object stays in the bucket", exc)

    def sweep(self, known: Iterable[str]) -> None:
        # Objects without a row are left alone: with a shared bucket one may be another replica's upload whose
        # row is not written yet.
        self._cache.load(set(known))

    def _download(self, file_id: str, into: Path) -> None:
        try:
            with _translated(f"read {file_id}"):
                self._client.download_file(self._bucket, _PREFIX + file_id, str(into), Config=_TRANSFER)
        except ObjectStoreError as exc:
            if exc.code == "NoSuchKey":
                raise NotFound(f"The bytes of {file_id} are missing from the bucket.") from None
            raise


@contextmanager
def _translated(doing: str) -> Iterator[None]:
    """boto3's failures as ObjectStoreError; its code is the S3 error code (NoSuchKey for a missing object)."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        raise ObjectStoreError(f"The object store refused to {doing}: {code}.",
                               code="NoSuchKey" if code in ("404", "NoSuchKey", "NotFound") else None) from None
    except (BotoCoreError, Boto3Error) as exc:
        raise ObjectStoreError(f"The object store failed to {doing}: {exc}") from None


def _ensure_bucket(client: Any, bucket: Bucket) -> None:
    """Return once the bucket exists and answers these credentials; create it when absent."""
    where = bucket.endpoint_url or "AWS S3"
    try:
        client.head_bucket(Bucket=bucket.name)
        return
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise ObjectStoreError(
                f"The object store at {where} refused access to bucket '{bucket.name}' ({_code(exc)}): check "
                "TOOLSHED_S3_ACCESS_KEY_ID and TOOLSHED_S3_SECRET_ACCESS_KEY.") from None
    except BotoCoreError as exc:
        raise ObjectStoreError(f"Cannot use the object store at {where} (TOOLSHED_S3_ENDPOINT_URL): {exc}") from None
    options = ({"CreateBucketConfiguration": {"LocationConstraint": bucket.region}}
               if bucket.region and bucket.region != "us-east-1" else {})
    try:
        client.create_bucket(Bucket=bucket.name, **options)
    except (ClientError, BotoCoreError) as exc:
        reason = _code(exc) if isinstance(exc, ClientError) else str(exc)
        if reason == "BucketAlreadyOwnedByYou":  # a replica starting beside this one made it first
            return
        raise ObjectStoreError(f"Bucket '{bucket.name}' does not exist at {where} and could not be created: "
                               f"{reason}.") from None


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "error"))
