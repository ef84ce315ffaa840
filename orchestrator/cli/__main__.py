"""`python -m orchestrator.cli`: the `toolshed` command."""

from orchestrator.cli import app

app()
