"""The one reader of the HTTP ``Authorization`` header (RFC 9110 §11.6.2).

Every endpoint that takes credentials from the header reads it here:
:func:`read_authorization` for the scheme, a Bearer token (RFC 6750 §2.1) or Basic
credentials (RFC 7617), and :func:`client_credentials` for a client's HTTP Basic
authentication (RFC 6749 §2.3.1, O-03), whose parts are form-urlencoded.

The parsing is werkzeug's (:meth:`werkzeug.datastructures.Authorization.from_header`: the
scheme, case-insensitive; the token68 or the Basic payload, base64 of UTF-8). On top of it,
what werkzeug leaves to the caller, so that every site fails closed the same way:

* any string gives an answer, never an exception: werkzeug raises ``ValueError`` for a Basic
  payload that is not ASCII (a byte above 0x7f reaches WSGI as a Latin-1 character), and
  3.0.0 (the lowest ``pyproject.toml`` allows) ``IndexError`` for ``Bearer =abc``;
* Basic credentials count only when they are exactly what a client sends for what werkzeug
  read: werkzeug reads a payload without ``:`` as an empty password, and before 3.1.9 it
  skipped characters that are not base64 (``Y!TpiYw==`` read as ``a:bc``);
* a Bearer token counts only when it is a ``b64token`` (RFC 6750 §2.1): werkzeug's token is
  any text without an inner ``=``, and parameters (``Bearer a=b``) are no token at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from werkzeug.datastructures import Authorization

#: RFC 6750 §2.1 ``b64token``: the only form of a Bearer credential.
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True)
class AuthorizationHeader:
    """What a request's ``Authorization`` header says; the empty reading when it has none."""

    #: The scheme, lower-case (``"basic"``, ``"bearer"``, …); None without a (non-blank) header.
    scheme: str | None = None
    #: The Bearer token: scheme ``bearer`` and a well-formed ``b64token``; else None.
    bearer: str | None = None
    #: (user-id, password) of scheme ``basic`` (RFC 7617) when well-formed; else None.
    basic: tuple[str, str] | None = None


def read_authorization(value: str | None) -> AuthorizationHeader:
    """Read an ``Authorization`` header value (None: no header); never raises.

    A scheme whose credentials are malformed keeps its scheme with no credentials: the caller
    decides what a malformed Bearer or Basic header answers (each endpoint its RFC's error).
    """
    text = (value or "").strip()
    if not text:
        return AuthorizationHeader()
    # werkzeug's own split of the scheme, kept when it cannot read what follows.
    scheme = text.partition(" ")[0].lower()
    try:
        parsed = Authorization.from_header(text)
    except (ValueError, IndexError):
        # ValueError: b64decode of a Basic payload that is not ASCII (every werkzeug 3);
        # IndexError: a parameter without a name, ``Bearer =abc`` (werkzeug 3.0.0).
        parsed = None
    if parsed is None:  # a Basic payload that is not base64 of UTF-8, or one of the above
        return AuthorizationHeader(scheme=scheme)
    if parsed.type == "basic":
        return AuthorizationHeader(scheme="basic", basic=_exact_basic(parsed, text))
    token = parsed.token
    if parsed.type == "bearer" and token is not None and B64TOKEN.fullmatch(token):
        return AuthorizationHeader(scheme="bearer", bearer=token)
    return AuthorizationHeader(scheme=parsed.type)


def _exact_basic(parsed: Authorization, text: str) -> tuple[str, str] | None:
    """werkzeug's (user-id, password) when encoding them back gives the payload sent; else None
    (no ``:`` in the payload, characters outside base64, non-canonical padding)."""
    username, password = parsed.username, parsed.password
    if username is None or password is None:
        return None
    sent = text.partition(" ")[2].strip(" \t")
    if parsed.to_header().partition(" ")[2] != sent:
        return None
    return username, password


def bearer_token(value: str | None) -> str | None:
    """The Bearer token of an ``Authorization`` header value (RFC 6750 §2.1), or None."""
    return read_authorization(value).bearer


def client_credentials(value: str | None) -> tuple[str, str] | None:
    """(client id, client secret) of HTTP Basic client authentication (RFC 6749 §2.3.1, O-03):
    each part is ``application/x-www-form-urlencoded`` before base64, so it is decoded after
    (``%3A`` is a ``:`` of the id, ``+`` a space); None without well-formed Basic credentials."""
    basic = read_authorization(value).basic
    if basic is None:
        return None
    return unquote_plus(basic[0]), unquote_plus(basic[1])
