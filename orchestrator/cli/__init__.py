"""The `toolshed` command: run the server, manage the sandbox image, and retrieval experiments."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console

from orchestrator import logs
from orchestrator.app import create_app, is_loopback
from orchestrator.cli import retrieval as cli_retrieval
from orchestrator.cli.keys import key_ring, keys_app
from orchestrator.cli.settings import load_settings
from orchestrator.sandbox import EngineUnavailable
from orchestrator.sandbox.image import build_image, default_tag, ensure_image

app = typer.Typer(help="Toolshed: self-hosted Code Interpreter and file_search for OpenAI-style assistants.",
                  no_args_is_help=True)
image_app = typer.Typer(help="The sandbox image.", no_args_is_help=True)
app.add_typer(image_app, name="image")
app.add_typer(keys_app, name="keys")
cli_retrieval.register(app)
console = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default TOOLSHED_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default TOOLSHED_PORT).")] = None,
    build: Annotated[bool, typer.Option(help="Build the sandbox image first if it is missing.")] = True,
) -> None:
    """Start the HTTP server."""
    overrides: dict[str, Any] = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load_settings(**overrides)
    if settings.open_access and not is_loopback(settings.host) and key_ring(settings).open:
        console.print(f"[red]Refusing to listen on {settings.host} with no API keys: set TOOLSHED_API_KEYS, "
                      "or bind to 127.0.0.1.[/red]")
        raise typer.Exit(2)
    logs.configure(settings.log_format, settings.log_level)
    if build:
        try:
            tag = settings.image or default_tag()
            if ensure_image(tag, settings.image_build):  # type: ignore[arg-type]
                console.print(f"built sandbox image {tag}")
        except EngineUnavailable as exc:
            console.print(f"[yellow]{exc}; serving without the sandbox engine[/yellow]")
    # log_config=None: uvicorn's own loggers go through the handler configured above.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


@image_app.command("build")
def image_build(
    mode: Annotated[str, typer.Option(help="auto (registry, else offline), dockerfile or offline.")] = "auto",
    force: Annotated[bool, typer.Option(help="Rebuild even if the image exists.")] = False,
) -> None:
    """Build the sandbox image (tagged by a hash of sandbox_image/) unless it already exists."""
    tag = load_settings().image or default_tag()
    if force:
        used = build_image(tag, mode)  # type: ignore[arg-type]
        console.print(f"built {tag} with the {used} recipe")
    elif ensure_image(tag, mode):  # type: ignore[arg-type]
        console.print(f"built {tag}")
    else:
        console.print(f"{tag} is present")


@image_app.command("tag")
def image_tag() -> None:
    """Print the tag the current recipe builds."""
    print(load_settings().image or default_tag())
