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


def check_depth(value: Any, where: str, depth: int = 0) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` with ``invalid_request``.
    (NUL characters and lone surrogates are already refused by the JSON parser.)"""
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"{where} is nested too deeply.")
    if isinstance(value, dict):
        for item in value.values():
            check_depth(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_depth(item, where, depth + 1)
