"""The FastAPI application: builds the services from Settings at start-up (app.state.services is all it holds)
and mounts the OpenAI face's routers."""

from __future__ import annotations

import gc
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from orchestrator import __version__
from orchestrator.api import (
    assistants,
    container_files,
    containers,
    files,
    models,
    runs,
    threads,
    tools,
    vector_stores,
)
from orchestrator.api_v1 import v1_router
from orchestrator.config import Settings
from orchestrator.metrics import REGISTRY, EngineCollector
from orchestrator.playground import face as playground_face
from orchestrator.responses_api import conversations, responses
from orchestrator.services.container import Services
from orchestrator.services.runtime_info import RuntimeCollector
from orchestrator.web import auth
from orchestrator.web.body_limit import BodyLimit
from orchestrator.web.docs import install_docs
from orchestrator.web.errors import ERROR_RESPONSES, install_error_handlers
from orchestrator.web.forwarding import Forwarder
from orchestrator.web.gate import Door, KeyGate, Refusal
from orchestrator.wires.jupyter import face as jupyter_face
from orchestrator.wires.librechat import face as librechat_face
from orchestrator.wires.librechat.auth import librechat_caller
from orchestrator.wires.mcp.face import McpFace

log = logging.getLogger("toolshed")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _doors(settings: Settings) -> list[Door]:
    """The faces whose keys the key gate checks before a body is read, each as its clients give the key."""
    doors = [Door("/v1/", lambda services, headers, _: auth.bearer_caller(services.keys, headers),
                  Refusal(401, "Incorrect API key provided.", "invalid_api_key"))]
    if settings.librechat:
        doors.append(Door(
            "/librechat/", lambda services, headers, _: librechat_caller(services.keys, services.settings, headers),
            Refusal(401, "A valid API key (x-api-key, Basic or Bearer) or LibreChat JWT is required.", "unauthorized"),
            librechat_face.librechat_error))
    if settings.jupyter:
        doors.append(Door("/jupyter/", jupyter_face.token_caller,
                          Refusal(403, "Forbidden: a valid token (an API key) is required."),
                          jupyter_face.jupyter_error))
    return doors


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    mcp = (McpFace(lambda: app.state.services, host=settings.host, json_response=settings.mcp_json_response)
           if settings.mcp else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = app.state.services = await Services.start(settings)
        # What start-up made (modules, models, schemas) lives as long as the server: frozen, the collector stops
        # walking it again and again, and its pauses no longer set the tail under load (50 busy threads: p99
        # 464 -> 349 ms in consecutive runs of bench/sandbox.py's concurrency phase).
        gc.freeze()
        if services.keys.open:
            log.warning("no TOOLSHED_API_KEYS set: every request is accepted, so the server listens on %s only",
                        settings.host)
        async with AsyncExitStack() as faces:
            if mcp is not None:
                await faces.enter_async_context(mcp.run())
            yield
        await services.close()

    # /docs and /redoc are served from the package's own copy of their scripts (web/docs.py), not from a CDN.
    app = FastAPI(title="Toolshed", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_docs(app)
    doors = _doors(settings)
    # After the key gate and the body caps: only a request with a valid key is passed on to another replica.
    app.add_middleware(Forwarder, doors=doors, services=lambda: app.state.services,
                       answer_within=settings.max_execution_timeout + 60)
    app.add_middleware(BodyLimit, json_bytes=settings.max_json_body_bytes, upload_bytes=settings.max_upload_bytes,
                       doors=doors)
    # Added last, so it runs first: no body is read, and no cap is counted, for a request without a valid key.
    app.add_middleware(KeyGate, doors=doors, services=lambda: app.state.services)
    # Routes are matched one by one in this order, so the hot ones (tool calls, cell executions) come first.
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(auth.caller)], responses=ERROR_RESPONSES)
    v1.include_router(tools.router)
    v1.include_router(containers.router)
    v1.include_router(container_files.router)
    v1.include_router(files.router)
    v1.include_router(vector_stores.router)
    # Assistants v1 (OpenAI-Beta: assistants=v1) on the v2 routes' paths: first, as it steps aside for v2 requests.
    v1.include_router(v1_router())
    v1.include_router(assistants.router)
    v1.include_router(runs.router)
    v1.include_router(threads.router)
    v1.include_router(responses.router)
    v1.include_router(conversations.router)
    v1.include_router(models.router)
    app.include_router(v1)
    # Outside /v1 and its key gate: the page is the same for everyone and asks for the key itself.
    app.include_router(playground_face.router)
    if mcp is not None:
        app.router.routes.append(mcp.route)
    if settings.jupyter:
        app.include_router(jupyter_face.router)
    if settings.librechat:
        app.include_router(librechat_face.router)

    engine_metrics = CollectorRegistry()
    engine_metrics.register(EngineCollector(
        lambda: app.state.services.sandboxes.manager if app.state.services.sandboxes else None))
    engine_metrics.register(RuntimeCollector(
        lambda: app.state.services.sandboxes.runtime if app.state.services.sandboxes else None))

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        """Prometheus text format: counters since start, plus engine gauges read now."""
        body = generate_latest(REGISTRY) + generate_latest(engine_metrics)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["health"])
    async def health(services: auth.ServicesDep) -> dict:
        manager = services.sandboxes.manager if services.sandboxes else None
        docker_ok = manager is not None and await manager.engine_alive()
        return {
            "status": "ok" if docker_ok else "degraded",
            "version": __version__,
            "engine": {"docker": docker_ok, "problem": services.engine_problem,
                       "sandboxes": len(await manager.list()) if manager else 0,
                       # Which OCI runtime sandboxes start under (runsc: gVisor), and why not gVisor if auto fell back.
                       "runtime": services.sandboxes.runtime.name if services.sandboxes else None,
                       "runtime_problem": services.sandboxes.runtime.problem if services.sandboxes else None},
            "retrieval": services.vector_stores.status(),
        }

    return app
