"""Query parameters the Responses face's routes share: `include` (openai-python sends `include[]=…`, other clients
repeat `include=…`; both are read) and list paging."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from orchestrator.responses.shapes import check_include

IncludeBrackets = Annotated[list[str] | None, Query(alias="include[]")]
IncludePlain = Annotated[list[str] | None, Query(alias="include")]
Limit = Annotated[int, Query(ge=1, le=100)]
Order = Literal["asc", "desc"]


def included(brackets: list[str] | None, plain: list[str] | None) -> frozenset[str]:
    """What a request's `include` asks to show, checked (an unknown value is a 400)."""
    return check_include([*(brackets or []), *(plain or [])])
