"""Strict JSON parsing shared by every JSON endpoint."""

from __future__ import annotations

import json
from typing import Any


class JsonError(ValueError):
    """The bytes are not one strict JSON document (UTF-8, no NaN/Infinity, not too deep)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise JsonError(f"not valid JSON ({type(exc).__name__})") from None
