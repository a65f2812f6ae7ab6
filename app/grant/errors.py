"""The UMA grant's token-endpoint errors as authlib ``OAuth2Error`` classes (G-37…G-43).

authlib turns them into the RFC 6749 §5.2 JSON body with ``Cache-Control:
no-store`` and ``Pragma: no-cache``; the UMA errors add their members::

    403 {"error": "need_info", "ticket": "…", "required_claims": [...], "redirect_user": "…"}
    403 {"error": "request_submitted", "ticket": "…", "interval": 5}
    403 {"error": "request_denied"}

``error_description`` texts go through :func:`safe_text` (RFC 6749 allows only
``%x20-21 / %x23-5B / %x5D-7E``), so no client input can turn an error into a 500.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError, InvalidScopeError


def safe_text(text: str, limit: int = 300) -> str:
    """``text`` restricted to the characters RFC 6749 allows in ``error_description``."""
    out = []
    for ch in text[:limit]:
        code = ord(ch)
        if ch == '"':
            out.append("'")
        elif ch == "\\":
            out.append("/")
        elif 0x20 <= code <= 0x7E:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


class UmaError(OAuth2Error):
    """An OAuth2Error with extra JSON members."""

    def __init__(self, description: str | None = None, **extra: Any):
        super().__init__(description=safe_text(description) if description else None)
        self.extra = {k: v for k, v in extra.items() if v not in (None, [], "")}

    def get_body(self) -> list[tuple[str, Any]]:
        return [*super().get_body(), *self.extra.items()]


class NeedInfo(UmaError):
    """More claims are needed (G-40): new ticket plus ``required_claims`` and/or ``redirect_user``."""

    error = "need_info"
    status_code = 403


class RequestSubmitted(UmaError):
    """The owner has to approve first (G-42): new ticket and polling ``interval``."""

    error = "request_submitted"
    status_code = 403


class RequestDenied(UmaError):
    """The client may not have these permissions (G-41); the process ends."""

    error = "request_denied"
    status_code = 403


def invalid_grant(description: str) -> InvalidGrantError:
    """Unknown/expired/used ticket, ticket or PCT of another client (G-38, A5, A6)."""
    return InvalidGrantError(safe_text(description))


def invalid_scope(description: str) -> InvalidScopeError:
    """A requested scope matches no available scope of the ticket's resources (G-39)."""
    return InvalidScopeError(safe_text(description))


def invalid_request(description: str) -> InvalidRequestError:
    """A malformed request: missing ticket, unpaired claim token parameters (G-15, G-16)."""
    return InvalidRequestError(safe_text(description))
