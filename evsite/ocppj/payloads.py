"""Payload shapes: camelCase on the wire, snake_case in Python, the library's dataclasses at the edges.

Why not the library's ``camel_to_snake_case`` on whole payloads: it converts recursively on every message;
here the per-key conversion (the library's own rules) is cached, and handlers get top-level keys only, so the
nested structures of a MeterValues stay as sent (a deep conversion cost ~25 µs per message for nothing).
"""

from __future__ import annotations

import dataclasses
import enum
from functools import cache
from typing import Any

from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.v16 import call_result


@cache
def _snake(key: str) -> str:
    return next(iter(camel_to_snake_case({key: None})))


@cache
def _camel(key: str) -> str:
    return next(iter(snake_to_camel_case({key: None})))


def to_snake(obj: Any) -> Any:
    """camelCase keys → snake_case keys, recursively."""
    if isinstance(obj, dict):
        return {_snake(k): to_snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_snake(v) for v in obj]
    return obj


def to_top_snake(payload: dict[str, Any]) -> dict[str, Any]:
    """camelCase → snake_case for the top-level keys only (handler keyword arguments)."""
    return {_snake(k): v for k, v in payload.items()}


@cache
def _field_names(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, _camel(f.name)) for f in dataclasses.fields(cls))


def to_wire(obj: Any) -> Any:
    """A payload dataclass (or dict/list of them) → JSON-ready camelCase structure, Nones dropped."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for name, camel in _field_names(type(obj)):
            v = getattr(obj, name)
            if v is not None:
                out[camel] = to_wire(v)
        return out
    if isinstance(obj, dict):
        return {_camel(k): to_wire(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [to_wire(v) for v in obj if v is not None]
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


def result_dataclass(action: str, payload: dict[str, Any]) -> Any:
    """A CALLRESULT payload (wire form) → the library's ``call_result`` dataclass, keys snake_case throughout.

    Raises ``TypeError`` when the payload has a field the dataclass does not know.
    """
    return getattr(call_result, action)(**to_snake(payload))
