"""/docs (Swagger UI) and /redoc, with their scripts, styles and icon served by the server itself: FastAPI's
defaults load them from a CDN, so the pages were blank offline or behind a firewall. The files come from the
fastapi-offline package, which ships Swagger UI 5 and ReDoc (Swagger UI 4 cannot read OpenAPI 3.1)."""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger("toolshed")
ASSETS = "/docs-assets"


def _asset_dir() -> Path | None:
    try:
        return Path(str(files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add the two pages (left out of /openapi.json)."""
    assets = _asset_dir()
    if assets is None:
        log.warning("fastapi-offline is not installed: /docs and /redoc are not served")
        return
    app.mount(ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS}/favicon.png", with_google_fonts=False)
