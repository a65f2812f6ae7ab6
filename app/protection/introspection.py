"""Token introspection (RFC 7662 + UMA ``permissions``; F-38…F-42, O-16…O-22).

    POST /uma/introspect   Authorization: Bearer <PAT>   (or client credentials: Basic / form)
    token=<token>&token_type_hint=access_token
    → 200 {"active": true, ..., "permissions": [...]}   for an RPT of the calling RS (no "scope")
    → 200 {"active": true, "scope", "client_id", "sub", ...}   for a PAT / access token of the caller
    → 200 {"active": false}   unknown, expired, revoked, or not the caller's

A bad PAT is answered like at the rest of the protection API (401 ``invalid_token``);
failed client authentication is 401 ``invalid_client`` (O-20).
"""

from __future__ import annotations

from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, g, request

from .. import get_settings
from ..db import get_session
from ..models import Rpt, Token
from ..oauth.clients import cached_client
from ..oauth.server import get_server
from ..oauth.tokens import find_access_token
from .auth import authenticate_pat
from .rpt import find_rpt, introspect_rpt

bp = Blueprint("introspection", __name__)


class UmaIntrospectionEndpoint(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token")

    def authenticate_endpoint_client(self, request: Any) -> Any:
        pat: Token | None = g.get("uma_pat")
        if pat is None:
            return super().authenticate_endpoint_client(request)
        client = cached_client(get_session(), pat.client_id)
        if client is None:
            raise InvalidClientError("The PAT's client no longer exists.", status_code=401)
        request.client = client
        return client

    def check_params(self, request: Any, client: Any) -> None:
        """``token`` is required; an unknown ``token_type_hint`` is ignored (O-16)."""
        problem = self.server.form_problem(request)
        if problem:
            raise InvalidRequestError(problem)
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Rpt | Token | None:
        session = get_session()
        return find_rpt(session, token_string) or find_access_token(session, token_string)

    def check_permission(self, token: Rpt | Token, client: Any, request: Any) -> bool:
        """An RS introspects the RPTs issued for it (F-42) and the tokens issued to it."""
        if isinstance(token, Rpt):
            return token.rs_client_id == client.client_id
        return token.client_id == client.client_id

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list]:
        client = self.authenticate_endpoint_client(request)
        token = self.authenticate_token(request, client)
        return 200, self.introspect(token, request.form["token"], client), default_json_headers

    def introspect(self, token: Rpt | Token | None, raw: str, client: Any) -> dict[str, Any]:
        if token is None:
            return {"active": False}
        if isinstance(token, Rpt):
            return introspect_rpt(raw, rs_client_id=client.client_id, row=token) or {"active": False}
        if token.is_expired() or token.is_revoked():
            return {"active": False}
        body: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            "client_id": token.client_id,
            "sub": token.owner,
            "iss": get_settings().issuer,
            "iat": token.issued_at,
            "exp": token.expires_at,
        }
        if token.subject:
            body["username"] = token.subject
        if token.scope:
            body["scope"] = token.scope
        return body


@bp.post("/uma/introspect")
def introspect() -> Any:
    """RS checks an RPT (or one of its own tokens); see the module docstring."""
    scheme = request.headers.get("Authorization", "").strip().partition(" ")[0].lower()
    if scheme == "bearer":
        authenticate_pat()
    return get_server().create_endpoint_response("introspection")
