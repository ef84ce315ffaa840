"""`toolshed keys`: API keys kept in the server's database (hashed), each acting for one project.

They work against the data dir a running server uses, and take effect at once: the server reads keys per request.
"""

from __future__ import annotations

import datetime
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli.settings import load_settings
from orchestrator.config import Settings
from orchestrator.db import open_database
from orchestrator.errors import InvalidRequest
from orchestrator.services.keys import KeyRing

keys_app = typer.Typer(help="API keys stored (hashed) in the database, one project each.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def key_ring(settings: Settings) -> KeyRing:
    return KeyRing(open_database(settings), settings.api_keys, settings.admin_keys)


@keys_app.command("create")
def create(project: Annotated[str, typer.Option(help="The project the key acts for.")]) -> None:
    """Make a key; it is printed once (to stdout) and only its hash is kept."""
    try:
        stored, key = key_ring(load_settings()).create(project)
    except InvalidRequest as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"created {stored.id} for project {stored.project}; keep the key now, it is not shown again:")
    print(key)


@keys_app.command("list")
def list_keys() -> None:
    """The stored keys: id, project, the key's last four characters, and when it was made."""
    for stored in key_ring(load_settings()).list():
        made = datetime.datetime.fromtimestamp(stored.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stored.id}\t{stored.project}\t…{stored.hint}\t{made}Z")


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, as `toolshed keys list` shows it.")]) -> None:
    """Delete a key; requests using it get 401 from now on."""
    if not key_ring(load_settings()).revoke(key_id):
        console.print(f"[red]No key with id {key_id}.[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
