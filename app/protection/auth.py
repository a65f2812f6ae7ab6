"""PAT authentication for the protection API (F-03, F-04, F-05, O-13…O-15).

``require_pat`` is an authlib ``ResourceProtector`` whose errors follow the
digest's matrix:

* no (Bearer) credentials → 401, ``WWW-Authenticate: Bearer realm="uma"``, no error code;
* unknown, expired, revoked or malformed token → 401, ``error="invalid_token"``;
* a token without ``uma_protection`` → 403, ``error="insufficient_scope", scope="uma_protection"``.

Views call :func:`current_pat` to get the :class:`~app.models.Token`; its
``owner`` and ``client_id`` are the (RO, RS) pair every operation is scoped to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import MissingAuthorizationError
from authlib.oauth2.rfc6750 import BearerTokenValidator, InsufficientScopeError, InvalidTokenError
from flask import g

from ..db import get_session
from ..errors import ApiError
from ..http_auth import read_authorization
from ..models import PROTECTION_SCOPE, Token
from ..oauth.tokens import find_access_token

REALM = "uma"


class ProtectionAuthError(ApiError):
    """401/403 with the RFC 6750 challenge."""

    def __init__(self, status: int, error: str | None, description: str, scope: str | None = None):
        params = [f'realm="{REALM}"']
        if error:
            params.append(f'error="{error}"')
            params.append(f'error_description="{description}"')
        if scope:
            params.append(f'scope="{scope}"')
        super().__init__(description, headers={"WWW-Authenticate": "Bearer " + ", ".join(params)})
        self.status = status
        self.error = error or ""

    def body(self) -> dict[str, Any]:
        if not self.error:
            return {"error_description": self.description}
        return super().body()


class PatValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        return find_access_token(get_session(), token_string)

    def validate_token(self, token: Token | None, scopes: list[str] | None, request: Any) -> None:
        if token is None or token.is_expired() or token.is_revoked():
            raise InvalidTokenError(description="The access token is unknown, expired or revoked.")
        if self.scope_insufficient(token.get_scope(), scopes):
            raise InsufficientScopeError()


class PatProtector(ResourceProtector):
    """authlib's resource protector with the protection API's challenges."""

    def parse_request_authorization(self, request: Any) -> tuple[Any, str]:
        header = read_authorization(request.headers.get("Authorization"))
        if header.scheme != "bearer":
            raise MissingAuthorizationError(self._default_auth_type, self._default_realm)
        if header.bearer is None:  # not a b64token (RFC 6750 §2.1)
            raise InvalidTokenError(description="The access token is malformed.")
        return self.get_token_validator("bearer"), header.bearer

    def raise_error_response(self, error: OAuth2Error) -> None:
        if isinstance(error, InsufficientScopeError):
            raise ProtectionAuthError(
                403, "insufficient_scope", "This call needs a PAT (scope uma_protection).", PROTECTION_SCOPE
            )
        if isinstance(error, InvalidTokenError):
            raise ProtectionAuthError(401, "invalid_token", error.description or "The access token is invalid.")
        raise ProtectionAuthError(401, None, "Send a PAT: Authorization: Bearer <token>.")


def _make_protector() -> PatProtector:
    protector = PatProtector()
    protector.register_token_validator(PatValidator(realm=REALM))
    return protector


require_pat = _make_protector()


def pat_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: a valid PAT is required; it is then :func:`current_pat`."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        authenticate_pat()
        return view(*args, **kwargs)

    return wrapped


def authenticate_pat() -> Token:
    try:
        token = require_pat.acquire_token([PROTECTION_SCOPE])
    except OAuth2Error as error:
        require_pat.raise_error_response(error)
        raise  # raise_error_response always raises
    g.uma_pat = token
    return token


def current_pat() -> Token:
    return g.uma_pat
