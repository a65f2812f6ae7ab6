"""Reading JSON request bodies without surprises: every failure is ``invalid_request`` (F-29)."""

from __future__ import annotations

from typing import Any

from flask import request

from ..errors import InvalidRequest
from ..jsonutil import JsonError, loads_strict


def json_body() -> Any:
    """The parsed JSON body (``application/json`` or no ``Content-Type``)."""
    if request.mimetype not in ("", "application/json") and not request.mimetype.endswith("+json"):
        raise InvalidRequest(f"The body must be application/json, not {request.mimetype}.")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidRequest("The body is empty; a JSON document is required.")
    try:
        return loads_strict(raw)
    except JsonError as exc:
        raise InvalidRequest(f"The body is {exc}.") from None


MAX_DEPTH = 32


def check_json_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse strings containing U+0000 (PostgreSQL text cannot hold them) and nesting
    deeper than :data:`MAX_DEPTH`, with ``invalid_request``."""
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"{where} is nested too deeply.")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(f"{where} contains a NUL character.")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_value(key, where, depth + 1)
            check_json_value(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json_value(item, where, depth + 1)
