"""Background ingestion: files attached to vector stores are indexed a store-batch at a time, off the event loop.

Stores are indexed side by side (a few at once, never one store twice at once), so a small file in one store is
not queued behind a big file in another; the engine keeps each step short (bounded tokenizer windows, bounded
embedding calls), so the steps of several stores interleave and the API stays responsive.
Each queued file is this replica's under a lease (services.ingestion_leases), renewed every third of a lease: files
still `in_progress` that nobody holds (the server was stopped or killed mid-way, or, with replicas, the replica
indexing them died) are taken and queued again, at start and then every third of a lease, so nothing stays
stuck; a file whose blob has vanished ends `failed`, and so does a batch that met a full disk (its rows rolled
back whole: adding the files again once space is freed indexes them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from orchestrator import logs
from orchestrator.metrics import INGEST_SECONDS, INGESTED
from orchestrator.services.ingestion_leases import IngestionLeases
from orchestrator.services.storage import FileNotFound, FileStore
from retrieval.errors import CatalogUnavailable, DiskFull, RetrievalError
from retrieval.vector_store import VectorStoreEngine

log = logging.getLogger("toolshed.ingestion")
_FILES_PER_RUN = 64
# Stores indexed at once: embedding takes turns on one model, so more only adds memory.
_CONCURRENT_STORES = 3
# Indexing threads run at this niceness, so the threads answering requests get the CPU first.
_NICENESS = 10


def _lower_priority() -> None:
    try:  # on Linux a thread's niceness is its own
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICENESS)
    except OSError:
        pass


class IngestionQueue:
    def __init__(self, engine: VectorStoreEngine, files: FileStore, leases: IngestionLeases) -> None:
        self._engine = engine
        self._files = files
        self._leases = leases
        self._queue: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._busy: set[str] = set()  # stores being indexed now
        self._working: set[asyncio.Task[None]] = set()
        self._threads = ThreadPoolExecutor(_CONCURRENT_STORES, thread_name_prefix="ingest",
                                           initializer=_lower_priority)

    def start(self) -> int:
        """Start the worker and re-queue interrupted files; returns how many were re-queued."""
        taken = self._leases.take(self._engine.pending(), restarted=True)
        self._queue.update(dict.fromkeys(taken))
        self._task = asyncio.create_task(self._run())
        self._keeper = asyncio.create_task(self._keep())
        self._nudge()
        return len(taken)

    async def _keep(self) -> None:
        """Every third of a lease: renew this replica's leases, and queue the files whose holder is gone."""
        while True:
            await asyncio.sleep(self._leases.seconds / 3)
            try:
                await asyncio.to_thread(self._leases.renew)
                taken = await asyncio.to_thread(lambda: self._leases.take(self._engine.pending()))
            except Exception:  # a database that did not answer this time: the next round tries again
                log.exception("keeping the ingestion leases failed")
                continue
            if taken:
                log.warning("queued %d files whose indexing replica had stopped", len(taken))
                self._queue.update(dict.fromkeys(taken))
                self._nudge()

    @property
    def backlog(self) -> int:
        """Files waiting to be indexed (the batch being indexed not counted)."""
        return len(self._queue)

    def enqueue(self, store_id: str, file_ids: list[str]) -> None:
        claimed = self._leases.claim([(store_id, file_id) for file_id in file_ids])
        self._queue.update(dict.fromkeys(claimed))
        self._nudge()

    def _nudge(self) -> None:
        if self._queue:
            self._wake.set()

    async def close(self) -> None:
        for task in [t for t in (self._task, self._keeper, *self._working) if t is not None]:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for store_id in self._startable():
                batch = self._take(store_id)
                self._busy.add(store_id)
                task = asyncio.create_task(self._work(store_id, batch))
                self._working.add(task)
                task.add_done_callback(self._working.discard)

    def _startable(self) -> list[str]:
        """Stores with queued files and none being indexed, oldest first, as many as may start now."""
        stores: list[str] = []
        for store_id, _ in self._queue:
            if len(stores) + len(self._busy) >= _CONCURRENT_STORES:
                break
            if store_id not in self._busy and store_id not in stores:
                stores.append(store_id)
        return stores

    async def _work(self, store_id: str, batch: list[str]) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._threads, self._ingest, store_id, batch)
        except RetrievalError as exc:  # the store or file was deleted meanwhile
            log.info("ingestion into %s stopped: %s", store_id, exc)
        except CatalogUnavailable:
            # The files stay in_progress; their leases end with this batch, and the next sweep (this replica's or
            # another's) takes them again, once the database answers.
            log.error("ingestion into %s stopped: the database does not answer; it is retried", store_id)
        except DiskFull:
            log.error("ingestion into %s stopped: the disk is full", store_id)
            self._fail(store_id, batch, "The server's disk was full while indexing this file; nothing of "
                                        "it was indexed. Add the file again once space is freed.")
        except Exception:
            log.exception("ingestion into %s failed", store_id)
            self._fail(store_id, batch, "Indexing failed on the server.")
        finally:
            self._busy.discard(store_id)
            self._release(store_id, batch)
            self._nudge()

    def _release(self, store_id: str, batch: list[str]) -> None:
        try:
            self._leases.release((store_id, file_id) for file_id in batch)
        except Exception:  # the leases run out by themselves; the files ended, so nobody takes them again
            log.exception("could not end the ingestion leases of %s", store_id)

    def _fail(self, store_id: str, file_ids: list[str], reason: str) -> None:
        for file_id in file_ids:
            try:
                self._engine.fail_interrupted(store_id, file_id, reason)
            except RetrievalError:
                pass
            except DiskFull:  # not even the status fits: the file stays in_progress and is queued at next start
                log.error("could not mark %s failed in %s: the disk is full", file_id, store_id)

    def _take(self, store_id: str) -> list[str]:
        """The store's queued files (up to a run's worth), so their chunks are embedded in shared batches."""
        batch = [file_id for (s, file_id) in list(self._queue) if s == store_id][:_FILES_PER_RUN]
        for file_id in batch:
            del self._queue[(store_id, file_id)]
        return batch

    def _ingest(self, store_id: str, file_ids: list[str]) -> None:
        paths = []
        for file_id in file_ids:
            try:
                self._files.get(file_id)
                paths.append((file_id, self._files.blob_path(file_id)))
            except FileNotFound:
                self._engine.fail_interrupted(store_id, file_id, "The file was deleted before it was indexed.")
        started = time.monotonic()
        self._engine.ingest(store_id, paths)
        seconds = time.monotonic() - started
        INGEST_SECONDS.observe(seconds)
        self._report(store_id, file_ids, seconds)

    def _report(self, store_id: str, file_ids: list[str], seconds: float) -> None:
        """One log line per file: its chunks, or why it failed."""
        for file_id in file_ids:
            try:
                record = self._engine.file(store_id, file_id)
            except RetrievalError:
                continue  # detached meanwhile
            INGESTED.labels(record.status).inc()
            with logs.bind(vector_store_id=store_id, file_id=file_id):
                if record.status == "completed":
                    log.info("indexed %s: %d chunks (batch of %d files in %.1f s)", record.filename,
                             self._engine.chunk_count(store_id, file_id), len(file_ids), seconds)
                else:
                    error = record.error
                    log.warning("could not index %s: %s", record.filename,
                                f"{error.code}: {error.message}" if error else record.status)
