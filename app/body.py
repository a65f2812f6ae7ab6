"""The one reader of request bodies: JSON documents, forms and text, strictly.

Every endpoint reads its body through this module, directly (:func:`json_body`,
:func:`json_object`, :func:`text_body`) or through Flask: the app's request class
is :class:`StrictRequest` (``app/factory.py``), so ``request.form``,
``request.get_json()`` and ``request.json`` read with the same rules, also in a
view added later. A body that breaks a rule is a 400 ``invalid_request`` with a
description that says which rule (F-29); it never reaches a view half-read, and
no body a client can send makes the server fail.

The rules:

* **UTF-8**, strictly: invalid bytes, encoded surrogates and (in forms)
  percent-escapes of invalid bytes are refused, never replaced;
* **JSON** (RFC 8259): one document; no ``NaN`` or ``Infinity``; no member named
  twice in one object (which of the two would count is not defined); no NUL
  character or lone surrogate in any string (``\\u0000``, ``\\ud800``: PostgreSQL
  text cannot hold the first, UTF-8 cannot encode the second); numbers within
  what every JSON reader represents exactly (I-JSON, RFC 7493 §2.2: integers up to
  2^53 - 1 in magnitude, floats finite); objects and arrays nested at most
  :data:`MAX_DEPTH` levels (deeper input once exhausted the interpreter's stack);
* **forms**: ``application/x-www-form-urlencoded`` only (``multipart/form-data``
  would decode bad bytes by replacing them), at most :data:`MAX_FORM_FIELDS` fields;
* **media types**: a body of a type the endpoint does not read is a 415
  ``invalid_request`` whose description names the types it accepts (:class:`UnsupportedMediaType`).

The size of any body is bounded before it is read (Flask's ``MAX_CONTENT_LENGTH``,
setting ``max_body_bytes``: 413).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from flask import Request, request
from werkzeug.formparser import FormDataParser

from .errors import InvalidRequest, UnsupportedMediaType

#: Deepest nesting of objects and arrays accepted in a JSON body (``[[1]]`` is 2 deep).
MAX_DEPTH = 32
#: Largest integer magnitude accepted (I-JSON: exact in an IEEE 754 double).
MAX_SAFE_INTEGER = 2**53 - 1
#: Most fields accepted in one form.
MAX_FORM_FIELDS = 1000

#: NUL (PostgreSQL text cannot hold it) and lone UTF-16 surrogates (not encodable as UTF-8).
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class BodyError(ValueError):
    """The bytes break one of the rules of the module docstring; the message says which."""


# -- JSON -----------------------------------------------------------------------


def _constant(name: str) -> Any:
    raise BodyError(f"{name} is not JSON")


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > 16 or abs(value := int(text)) > MAX_SAFE_INTEGER:
        raise BodyError(f"a number is larger than {MAX_SAFE_INTEGER} in magnitude")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError("a number is too large")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyError(f"the member {key[:40]!r} is given twice in one object")
            seen.add(key)
    return obj


def _check_tree(value: Any) -> None:
    """Strings without NUL or lone surrogates, nesting within :data:`MAX_DEPTH` (without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _BAD_CHARS.search(item):
                raise BodyError("a string holds a NUL character or a lone surrogate")
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise BodyError(f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                stack.extend((key, depth + 1) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def loads_strict(raw: bytes | str) -> Any:
    """One JSON document under the rules of the module docstring, or :class:`BodyError`."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(
            text, parse_constant=_constant, parse_int=_integer, parse_float=_float, object_pairs_hook=_object
        )
    except BodyError:
        raise
    except UnicodeDecodeError:
        raise BodyError("not UTF-8") from None
    except ValueError as exc:
        raise BodyError(f"not valid JSON ({exc})") from None
    except RecursionError:  # far deeper than MAX_DEPTH: the parser gave up before we could count
        raise BodyError(f"nested more than {MAX_DEPTH} levels deep") from None
    _check_tree(value)
    return value


# -- forms ----------------------------------------------------------------------


def parse_form(raw: bytes) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body, in order, blank values kept."""
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise BodyError("not UTF-8 form data") from None
    except ValueError:
        raise BodyError(f"a form of more than {MAX_FORM_FIELDS} fields") from None


# -- the current request ----------------------------------------------------------


def refuse_media_type(accepted: tuple[str, ...]) -> UnsupportedMediaType:
    """The 415 for the current request's body, naming what the endpoint ``accepted``."""
    given = request.mimetype or "a body without Content-Type"
    return UnsupportedMediaType(f"The body must be {' or '.join(accepted)}, not {given}.", accepted=list(accepted))


def json_body() -> Any:
    """The current request's JSON body (``application/json``, ``…+json`` or no ``Content-Type``)."""
    if request.mimetype not in ("", "application/json") and not request.mimetype.endswith("+json"):
        raise refuse_media_type(("application/json",))
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise InvalidRequest("The body is empty; a JSON document is required.")
    try:
        return loads_strict(raw)
    except BodyError as exc:
        raise InvalidRequest(f"The body is {exc}.") from None


def json_object(*, optional: bool = False) -> dict[str, Any]:
    """The current request's JSON body, which must be an object (``{}`` for no body when ``optional``)."""
    if optional and not request.get_data(cache=True).strip():
        return {}
    data = json_body()
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return data


def text_body() -> str:
    """The current request's body as UTF-8 text (``text/plain`` or no ``Content-Type``)."""
    if request.mimetype not in ("", "text/plain"):
        raise refuse_media_type(("text/plain",))
    try:
        return request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The body must be UTF-8 text.") from None


class _StrictJson:
    """What :meth:`StrictRequest.get_json` parses with (werkzeug calls ``json_module.loads``)."""

    loads = staticmethod(loads_strict)
    dumps = staticmethod(json.dumps)


class StrictFormDataParser(FormDataParser):
    """``request.form`` under this module's rules. Errors are raised as :class:`InvalidRequest`
    (not ``ValueError``, which werkzeug would swallow into an empty form)."""

    def _parse_urlencoded(self, stream: Any, mimetype: str, content_length: Any, options: Any) -> Any:
        try:
            fields = parse_form(stream.read())
        except BodyError as exc:
            raise InvalidRequest(f"The form is {exc}.") from None
        return stream, self.cls(fields), self.cls()

    def _parse_multipart(self, stream: Any, mimetype: str, content_length: Any, options: Any) -> Any:
        raise UnsupportedMediaType(
            "multipart/form-data is not accepted; send application/x-www-form-urlencoded.",
            accepted=["application/x-www-form-urlencoded"],
        )


class StrictRequest(Request):
    """Flask's request with this module's readers behind ``form``, ``get_json()`` and ``json``."""

    form_data_parser_class = StrictFormDataParser
    json_module = _StrictJson

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType(
                f"The body must be application/json, not {self.mimetype or 'untyped'}.", accepted=["application/json"]
            )
        raise InvalidRequest(f"The body is {e}.")
