"""The FastAPI application: builds the engines from Settings at start-up and mounts the routers."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from orchestrator import __version__
from orchestrator.api import container_files, containers, deps, files, tools, vector_stores
from orchestrator.api.body_limit import BodyLimit
from orchestrator.api.errors import install_error_handlers
from orchestrator.config import Settings
from orchestrator.container_files import ContainerFiles, ContainerFileStore, ScanLimits
from orchestrator.db import Database
from orchestrator.exports import ExportLimits, Exports
from orchestrator.ingestion import IngestionQueue
from orchestrator.interpreter import Interpreter
from orchestrator.metrics import REGISTRY, EngineCollector, LifecycleMetrics
from orchestrator.sandbox import EngineUnavailable, SandboxManager
from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.policy import ArtifactSink, SandboxPolicy
from orchestrator.sandbox.runtime import DockerRuntime
from orchestrator.sandbox.workspace import WorkspaceStore, parse_size
from orchestrator.storage import FileStore
from orchestrator.threads import ThreadSandboxes
from orchestrator.tools.citations import CitationStore
from orchestrator.tools.router import Sandboxes, ToolRouter
from retrieval.vector_store import VectorStoreEngine

log = logging.getLogger("toolshed")


def build_workspaces(settings: Settings) -> WorkspaceStore:
    workspaces = WorkspaceStore(
        settings.data_dir.resolve() / "sandboxes", settings.run_dir / settings.namespace,
        uid=settings.sandbox_uid, quota_bytes=parse_size(settings.sandbox_disk_quota),
    )
    if not workspaces.enforces_quota:
        log.warning("not running as root: the /mnt/data size quota (%s) is NOT enforced", settings.sandbox_disk_quota)
    return workspaces


def build_manager(settings: Settings, workspaces: WorkspaceStore, artifacts: ArtifactSink) -> SandboxManager:
    """The sandbox engine as configured; EngineUnavailable if Docker or the image is missing."""
    image = settings.image or default_tag()
    runtime = DockerRuntime.from_env(image=image, namespace=settings.namespace, uid=settings.sandbox_uid)
    if not runtime.image_exists():
        raise EngineUnavailable(f"Sandbox image {image} is missing; build it with `toolshed image build`.")
    policy = SandboxPolicy(
        cpus=settings.sandbox_cpus, pids=settings.sandbox_pids_limit, tmp_size=settings.sandbox_tmp_size,
        kernel_start_timeout=settings.kernel_start_timeout, interrupt_grace=settings.interrupt_grace,
        max_output_bytes=settings.max_output_bytes, default_timeout=settings.execution_timeout,
        max_timeout=settings.max_execution_timeout, pool_size=settings.pool_size,
        pool_memory_limit=settings.default_memory_limit, max_sandboxes=settings.max_sandboxes,
        capacity_wait=settings.capacity_wait, max_lifetime=settings.sandbox_max_lifetime,
        max_message_bytes=settings.max_kernel_message_bytes,
    )
    return SandboxManager(runtime, workspaces, policy, artifacts, LifecycleMetrics())


async def start_sandboxes(app: FastAPI, settings: Settings, db: Database, files: FileStore) -> Sandboxes:
    """Build the code-interpreter side: container files, the sandbox engine, threads."""
    workspaces = build_workspaces(settings)
    exports = Exports(db, files, ExportLimits(parse_size(settings.sandbox_export_budget),
                                              parse_size(settings.min_free_disk), settings.max_export_bytes))
    container_files = ContainerFiles(ContainerFileStore(db), files, workspaces, exports, ScanLimits(
        settings.scan_max_entries, settings.scan_max_depth, settings.max_export_files))
    manager = build_manager(settings, workspaces, container_files)
    recovered = await manager.recover()
    manager.start_reaper(settings.reap_interval)
    manager.start_watcher()
    manager.pool.fill()
    log.info("sandbox engine ready (%d sandboxes recovered)", len(recovered))
    interpreter = Interpreter(manager, exports, max_images=settings.max_export_files)
    threads = ThreadSandboxes(db, manager, container_files, files, memory_limit=settings.default_memory_limit)
    app.state.manager, app.state.container_files, app.state.interpreter = manager, container_files, interpreter
    return Sandboxes(threads, interpreter, container_files.store)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    db = Database(settings.data_dir / "toolshed.db")
    app.state.files = FileStore(db, settings.data_dir)
    app.state.retrieval = VectorStoreEngine(settings.data_dir / "retrieval", model=settings.embedding_model,
                                            dense_weight=settings.search_dense_weight)
    app.state.ingestion = IngestionQueue(app.state.retrieval, app.state.files)
    resumed = app.state.ingestion.start()
    if resumed:
        log.info("resuming the indexing of %d files", resumed)
    # With vector stores to serve, load the embedding model now (in the background) so the first search does not
    # wait seconds for it; a server used only for code execution never pays for torch.
    warm = asyncio.create_task(asyncio.to_thread(lambda: app.state.retrieval.embedder)) \
        if app.state.retrieval.catalog.has_stores() else None
    app.state.manager, app.state.engine_problem, sandboxes = None, None, None
    try:
        sandboxes = await start_sandboxes(app, settings, db, app.state.files)
    except EngineUnavailable as exc:
        app.state.engine_problem = str(exc)
        log.error("sandbox engine unavailable: %s", exc)
    app.state.tool_router = ToolRouter(app.state.retrieval, CitationStore(db), sandboxes,
                                       max_output_chars=settings.tool_output_max_chars)
    if settings.open_access:
        log.warning("no TOOLSHED_API_KEYS set: every request is accepted, so the server listens on %s only",
                    settings.host)
    yield
    if app.state.manager is not None:
        await app.state.manager.close()
    await app.state.ingestion.close()
    if warm is not None:
        warm.cancel()
    app.state.retrieval.close()
    db.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="Toolshed", version=__version__, lifespan=lifespan)
    app.state.settings = settings or Settings()
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=app.state.settings.max_json_body_bytes)
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(deps.require_api_key)])
    v1.include_router(containers.router)
    v1.include_router(container_files.router)
    v1.include_router(files.router)
    v1.include_router(tools.router)
    v1.include_router(vector_stores.router)
    app.include_router(v1)

    engine_metrics = CollectorRegistry()
    engine_metrics.register(EngineCollector(app.state))

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text format: counters since start, plus engine gauges read now."""
        body = generate_latest(REGISTRY) + generate_latest(engine_metrics)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> dict:
        manager = request.app.state.manager
        docker_ok = manager is not None and await manager.engine_alive()
        return {
            "status": "ok" if docker_ok else "degraded",
            "version": __version__,
            "engine": {"docker": docker_ok, "problem": request.app.state.engine_problem,
                       "sandboxes": len(await manager.list()) if manager else 0},
        }

    return app
