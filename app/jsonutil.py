"""Strict JSON parsing shared by every JSON endpoint."""

from __future__ import annotations

import json
import re
from typing import Any

#: NUL (PostgreSQL text cannot hold it) and lone UTF-16 surrogates (not encodable as UTF-8).
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class JsonError(ValueError):
    """The bytes are not one strict JSON document (UTF-8, no NaN/Infinity, no NUL or lone
    surrogate in any string, not too deep)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        if _BAD_CHARS.search(value):
            raise ValueError("a string holds a NUL character or a lone surrogate")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def loads_strict(raw: bytes) -> Any:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        _check_strings(value)
    except (ValueError, RecursionError) as exc:
        raise JsonError(f"not valid JSON ({exc if isinstance(exc, ValueError) else 'nested too deeply'})") from None
    return value
