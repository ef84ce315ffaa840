"""The service container: every engine and service the faces use, built once at start-up and closed at shut-down.

Faces receive this one typed object (FastAPI's app.state holds nothing else) and read its fields; none reaches
into an engine's internals. The sandbox side is optional: when Docker or the image is missing, `sandboxes` is
None, `engine_problem` says why, and everything else (files, vector stores, file_search) still works.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from orchestrator.agent.chat import Endpoint, ModelClient, endpoint_map
from orchestrator.assistants.runner import DRIVEN, RunLimits, Runs
from orchestrator.assistants.service import Assistants
from orchestrator.config import Settings
from orchestrator.db import Database, open_database
from orchestrator.metrics import LifecycleMetrics
from orchestrator.responses.containers import ResponseContainers
from orchestrator.responses.context import ContextBuilder
from orchestrator.responses.conversations import Conversations
from orchestrator.responses.service import Limits, Responses
from orchestrator.responses.store import LIVE, ResponseStore
from orchestrator.responses.tools import ResponseTools
from orchestrator.sandbox import EngineUnavailable, SandboxManager
from orchestrator.sandbox.gvisor import RuntimeChoice
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.local_host import LOCAL
from orchestrator.sandbox.policy import SandboxPolicy
from orchestrator.sandbox.workspace import parse_size
from orchestrator.services.bindings import SandboxBindings
from orchestrator.services.blobs import blobs_for
from orchestrator.services.container_files import ContainerFiles, ContainerFileStore, ScanLimits
from orchestrator.services.exports import ExportLimits, Exports
from orchestrator.services.ingestion_leases import IngestionLeases
from orchestrator.services.interpreter import Interpreter
from orchestrator.services.keys import KeyRing
from orchestrator.services.leases import Leases, replica_id
from orchestrator.services.librechat_files import LibreChatFiles
from orchestrator.services.project_sandboxes import ProjectSandboxes
from orchestrator.services.projects import Owners
from orchestrator.services.sandbox_homes import SandboxHomes
from orchestrator.services.sandbox_hosts import connect_hosts
from orchestrator.services.storage import FileStore
from orchestrator.services.vector_stores import VectorStores
from orchestrator.tools.annotations import Annotator
from orchestrator.tools.citations import CitationStore
from orchestrator.tools.code_interpreter import CodeInterpreterTool
from orchestrator.tools.definitions import FILE_SEARCH
from orchestrator.tools.file_search import FileSearchTool
from orchestrator.tools.registry import ToolRegistry
from retrieval.vector_store import VectorStoreEngine

log = logging.getLogger("toolshed")


@dataclass(frozen=True)
class SandboxServices:
    """The code-interpreter side: the sandbox engine and what is built on it."""

    manager: SandboxManager
    # Creating and listing sandboxes per project; the manager does the rest by id.
    project_sandboxes: ProjectSandboxes
    container_files: ContainerFiles
    bindings: SandboxBindings
    interpreter: Interpreter
    # The OCI runtime sandboxes start under (gVisor's runsc, or runc) and, if auto fell back, why.
    runtime: RuntimeChoice


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    keys: KeyRing
    owners: Owners
    files: FileStore
    vector_stores: VectorStores
    assistants: Assistants
    runs: Runs
    tools: ToolRegistry
    annotator: Annotator
    sandboxes: SandboxServices | None
    engine_problem: str | None
    librechat_files: LibreChatFiles
    responses: Responses
    conversations: Conversations
    model: ModelClient  # the model endpoint every run and response talks to
    sandbox_homes: SandboxHomes  # which replica holds each sandbox (requests for others' are forwarded)

    def require_sandboxes(self) -> SandboxServices:
        """The sandbox side, or EngineUnavailable (a 503) saying why it is not running."""
        if self.sandboxes is None:
            raise EngineUnavailable(self.engine_problem or "The sandbox engine is not running.")
        return self.sandboxes

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        db = open_database(settings)
        db.hold_name(settings.namespace)  # replicas on one database: one live server per namespace
        keys = KeyRing(db, settings.api_keys, settings.admin_keys)
        owners = Owners(db)
        files = FileStore(db, settings.data_dir, byte_limit=lambda project: _size_or_none(
            settings.limits_of(project).stored_bytes), blobs=await asyncio.to_thread(blobs_for, settings))
        engine = VectorStoreEngine(settings.data_dir / "retrieval", **settings.engine_options())
        # Replicas on one database tell their runs, responses and ingestion jobs apart by lease holder.
        replica = replica_id(settings.namespace)
        vector_stores = VectorStores(engine, files, owners, IngestionLeases(db, settings.lease_seconds, replica))
        resumed = vector_stores.start()
        if resumed:
            log.info("resuming the indexing of %d files", resumed)
        sandboxes, problem = None, None
        homes = SandboxHomes(db, settings.replica_url)
        try:
            sandboxes = await _start_sandboxes(settings, db, files, owners, homes)
        except EngineUnavailable as exc:
            problem = str(exc)
            log.error("sandbox engine unavailable: %s", exc)
        citations = CitationStore(db)
        tools = ToolRegistry([
            CodeInterpreterTool(sandboxes.bindings if sandboxes else None,
                                sandboxes.interpreter if sandboxes else None, max_chars=settings.tool_output_max_chars),
            FileSearchTool(vector_stores, citations, score_threshold=settings.file_search_score_threshold),
        ])
        annotator = Annotator(citations, sandboxes.bindings if sandboxes else None,
                              sandboxes.container_files.store if sandboxes else None)
        assistants = Assistants(db, files, vector_stores, owners)
        model = ModelClient(Endpoint(settings.model_base_url, settings.model_api_key) if settings.model_base_url
                            else None, endpoint_map(settings.model_map), timeout=settings.model_timeout,
                            max_retries=settings.model_max_retries)
        runs = Runs(assistants, model, tools, annotator,
                    Leases(db, "runs", DRIVEN, settings.lease_seconds, replica),
                    RunLimits(settings.model_context_tokens, settings.run_expiry_seconds,
                              settings.run_max_output_chars))
        ended = runs.recover()
        if ended:
            log.warning("%d runs were live when the server stopped; they ended failed", ended)
        responses = _responses(settings, db, files, vector_stores, owners, model, tools, citations, sandboxes,
                               replica)
        ended = responses.recover()
        if ended:
            log.warning("%d responses were live when the server stopped; they ended failed", ended)
        return cls(settings, db, keys, owners, files, vector_stores, assistants, runs, tools, annotator, sandboxes,
                   problem, LibreChatFiles(db), responses, Conversations(responses.store, responses.context), model,
                   homes)

    async def close(self) -> None:
        await self.responses.close()
        await self.runs.close()
        await self.model.close()
        if self.sandboxes is not None:
            await self.sandboxes.bindings.close()
            await self.sandboxes.manager.close()
        await self.vector_stores.close()
        self.db.close()


def _responses(settings: Settings, db: Database, files: FileStore, stores: VectorStores, owners: Owners,
               model: ModelClient, tools: ToolRegistry, citations: CitationStore,
               sandboxes: SandboxServices | None, replica: str) -> Responses:
    """The Responses API's service: its own store, the shared file_search tool, and code_interpreter in the
    containers each response chooses (none while the sandbox engine is down)."""
    store = ResponseStore(db)
    file_search = tools.get(FILE_SEARCH)
    assert file_search is not None
    containers = (ResponseContainers(sandboxes.manager, sandboxes.project_sandboxes, sandboxes.container_files, owners)
                  if sandboxes else None)
    hosted = ResponseTools(file_search, stores, citations, files, owners, containers,
                           sandboxes.interpreter if sandboxes else None,
                           sandboxes.container_files.store if sandboxes else None, settings.tool_output_max_chars)
    return Responses(store, model, hosted, ContextBuilder(store, files, owners),
                     Limits(settings.model_context_tokens, settings.run_max_output_chars),
                     Leases(db, "responses", LIVE, settings.lease_seconds, replica))


def _size_or_none(size: str | None) -> int | None:
    return None if size is None else parse_size(size)


async def _start_sandboxes(settings: Settings, db: Database, files: FileStore, owners: Owners,
                           homes: SandboxHomes) -> SandboxServices:
    """The sandbox engine as configured, with its running containers recovered; EngineUnavailable if Docker or
    the image is missing."""
    image = settings.image or default_tag()
    hosts, choice = await asyncio.to_thread(connect_hosts, settings, image)
    if any(host.name != LOCAL for host in hosts.all()):
        # Engine calls run in worker threads; a remote engine or API server that hangs holds one per call for up
        # to its timeout, and the default pool (cores + 4) would leave the other hosts none.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64))
    exports = Exports(db, files, owners, ExportLimits(parse_size(settings.sandbox_export_budget),
                                              parse_size(settings.min_free_disk), settings.max_export_bytes))
    container_files = ContainerFiles(ContainerFileStore(db), files, hosts.files_of, exports, ScanLimits(
        settings.scan_max_entries, settings.scan_max_depth, settings.max_export_files))
    policy = SandboxPolicy(
        cpus=settings.sandbox_cpus, pids=settings.sandbox_pids_limit, tmp_size=settings.sandbox_tmp_size,
        kernel_start_timeout=settings.kernel_start_timeout, interrupt_grace=settings.interrupt_grace,
        max_output_bytes=settings.max_output_bytes, default_timeout=settings.execution_timeout,
        max_timeout=settings.max_execution_timeout, pool_size=settings.pool_size,
        pool_preload=tuple(settings.pool_preload), pool_memory_limit=settings.default_memory_limit,
        max_sandboxes=settings.max_sandboxes,
        capacity_wait=settings.capacity_wait, max_lifetime=settings.sandbox_max_lifetime,
        max_message_bytes=settings.max_kernel_message_bytes, cell_slots=settings.cell_slots,
        cell_quantum=settings.cell_quantum,
    )
    manager = SandboxManager(hosts, policy, container_files, LifecycleMetrics(), owner_of=owners.owner)
    recovered = await manager.recover()
    owners.adopt(recovered)  # sandboxes started before projects existed are the default project's
    manager.start_reaper(settings.reap_interval)
    manager.start_watcher(settings.sandbox_host_check_interval)
    manager.pool.fill()
    log.info("sandbox engine ready under %s (%d sandboxes recovered)", choice.name, len(recovered))
    project_sandboxes = ProjectSandboxes(manager, owners, lambda project: settings.limits_of(project).sandboxes,
                                         homes)
    bindings = SandboxBindings(db, project_sandboxes, manager, container_files, files,
                               memory_limit=settings.default_memory_limit)
    if settings.database_url:  # replicas: a key whose calls moved to another replica leaves its sandbox here
        bindings.sweep_every(settings.lease_seconds)
    for sandbox_id in recovered:  # under this replica's address, which may be new since they started
        homes.record(sandbox_id)
    return SandboxServices(manager, project_sandboxes, container_files, bindings,
                           Interpreter(manager, project_sandboxes, exports, max_images=settings.max_export_files),
                           choice)
