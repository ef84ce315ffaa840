"""Attribute filters in OpenAI's shape: comparisons (`eq ne gt gte lt lte in nin`) and compounds (`and`, `or`)."""

from __future__ import annotations

from typing import Any

from retrieval.errors import InvalidRequest
from retrieval.models import AttributeValue

COMPARISONS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}
COMPOUNDS = {"and", "or"}


def validate(spec: dict[str, Any], param: str = "filters") -> None:
    """InvalidRequest naming the first malformed part of a filter."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in COMPOUNDS:
        parts = spec.get("filters")
        if not isinstance(parts, list) or not parts:
            raise InvalidRequest(f"'{kind}' needs a non-empty list of filters.", f"{param}.filters")
        for index, part in enumerate(parts):
            validate(part, f"{param}.filters[{index}]")
    elif kind in COMPARISONS:
        if not isinstance(spec.get("key"), str):
            raise InvalidRequest("A comparison filter needs a string 'key'.", f"{param}.key")
        value = spec.get("value")
        if kind in ("in", "nin"):
            if not isinstance(value, list):
                raise InvalidRequest(f"'{kind}' needs a list 'value'.", f"{param}.value")
        elif not isinstance(value, str | int | float | bool):
            raise InvalidRequest("A comparison filter needs a string, number or boolean 'value'.", f"{param}.value")
    else:
        raise InvalidRequest(f"Unknown filter type {kind!r}; expected one of "
                             f"{sorted(COMPARISONS | COMPOUNDS)}.", f"{param}.type")


def matches(spec: dict[str, Any], attributes: dict[str, AttributeValue]) -> bool:
    """Whether a file with `attributes` passes the (validated) filter. A missing key only passes `ne`/`nin`."""
    kind = spec["type"]
    if kind == "and":
        return all(matches(part, attributes) for part in spec["filters"])
    if kind == "or":
        return any(matches(part, attributes) for part in spec["filters"])
    key, value = spec["key"], spec["value"]
    if key not in attributes:
        return kind in ("ne", "nin")
    actual = attributes[key]
    if kind == "eq":
        return _same(actual, value)
    if kind == "ne":
        return not _same(actual, value)
    if kind == "in":
        return any(_same(actual, item) for item in value)
    if kind == "nin":
        return not any(_same(actual, item) for item in value)
    if not _comparable(actual, value):
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value, "lte": actual <= value}[kind]


def _same(a: AttributeValue, b: Any) -> bool:
    # True == 1 in Python; an attribute that is a boolean only equals a boolean.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _comparable(a: AttributeValue, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (isinstance(a, str) and isinstance(b, str))
