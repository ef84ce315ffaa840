"""GET /playground (and /playground/threads/{id}, the same page, for a shareable link to a conversation) and the
page's own scripts and styles, read from the package, so the page works with no internet and no build step.
No key is asked here: the page is the same for everyone, and its calls to /v1 carry the user's key."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from orchestrator.web.errors import APIError

router = APIRouter(prefix="/playground", include_in_schema=False)
# Every asset by name: a fixed table, so no path from the request ever reaches the file system.
ASSETS = {
    "app.js": "text/javascript", "api.js": "text/javascript", "conversation.js": "text/javascript",
    "assistants.js": "text/javascript", "render.js": "text/javascript", "playground.css": "text/css",
    "vendor/marked.esm.js": "text/javascript", "vendor/purify.es.mjs": "text/javascript",
}
# The page may run only its own scripts and talk only to this server: a reply rendered as Markdown cannot load
# anything from elsewhere (images come from /v1/files as blob: URLs).
POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
          "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


@cache
def _read(name: str) -> bytes:
    return (files("orchestrator.playground") / "static" / name).read_bytes()


@router.get("")
@router.get("/threads/{thread_id}")
async def page() -> HTMLResponse:
    """The page itself; which thread it shows is read from the address by the page's script."""
    return HTMLResponse(_read("index.html"), headers=HEADERS)


@router.get("/static/{name:path}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise APIError(404, f"No playground asset named '{name}'.", code="not_found")
    return Response(_read(name), media_type=media_type, headers=HEADERS)
