"""Settings as every command builds them: a bad TOOLSHED_* value is one line naming the variable and what it
expects, and exit status 2, instead of pydantic's traceback."""

from __future__ import annotations

import re
from typing import Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from orchestrator.config import Settings

_console = Console(stderr=True, highlight=False)
_FIELD = re.compile(r'field "(\w+)"')


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problem = _validation_problem(exc)
    except SettingsError as exc:  # a JSON-valued setting whose value is not JSON
        found = _FIELD.search(str(exc))
        problem = f"{_variable(found.group(1)) if found else 'a TOOLSHED_* variable'}: expected a JSON value"
    # Never the value itself: it may be a key (TOOLSHED_API_KEYS).
    _console.print(f"Invalid setting {problem}.", style="red", markup=False, soft_wrap=True)
    raise typer.Exit(2)


def _validation_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = [str(part) for part in first["loc"]]
    name = _variable(where[0]) if where else "a TOOLSHED_* variable"
    inner = f" (at {'.'.join(where[1:])})" if len(where) > 1 else ""
    others = {str(e["loc"][0]) for e in errors[1:] if e["loc"]} - {where[0] if where else ""}
    more = f"; {len(others)} more invalid: {', '.join(sorted(_variable(o) for o in others))}" if others else ""
    return f"{name}{inner}: {first['msg']}{more}"


def _variable(field: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{field}".upper()
