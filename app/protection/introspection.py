"""Token introspection (RFC 7662 + UMA ``permissions``; F-38…F-42, O-16…O-22).

    POST /uma/introspect   Authorization: Bearer <PAT>   (or client credentials: Basic / form)
    token=<token>&token_type_hint=access_token
    → 200 {"active": true, ..., "permissions": [...]}   for an RPT the caller may learn about (no "scope")
    → 200 {"active": true, "scope", "client_id", "sub", ...}   for a PAT / access token of the caller
    → 200 {"active": false}   unknown, expired, revoked, or not the caller's to learn about

Who learns about an RPT (O-17, O-19, O-22, F-42; issue 10, point 6): the
resource server of its resources — the holder of a PAT for the RPT's owner at
the RPT's RS, i.e. the PAT its resources were registered with — or a client the
operator listed in the ``introspection_clients`` setting (e.g. a gateway in
front of several resource servers; it authenticates with its client
credentials or a PAT). Client credentials alone do not make a client the
resource server of anything: an RS not so listed introspects with its PAT.
Everyone else gets ``{"active": false}``, the same answer as for an unknown token.

No credentials at all: 401 with both challenges this endpoint accepts
(``WWW-Authenticate: Bearer realm="uma"`` and ``Basic realm="uma"``, no error
code, RFC 6750 §3.1). A bad PAT is answered like at the rest of the protection
API (401 ``invalid_token``); failed client authentication is 401
``invalid_client`` (O-20).
"""

from __future__ import annotations

from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, g, request
from werkzeug.datastructures import Headers

from .. import get_settings
from ..db import get_session
from ..errors import ApiError
from ..http_auth import read_authorization
from ..models import Rpt, Token
from ..oauth.clients import cached_client
from ..oauth.server import get_server
from ..oauth.tokens import find_access_token
from .auth import REALM, authenticate_pat
from .rpt import find_rpt, introspect_rpt

bp = Blueprint("introspection", __name__)


class MissingCredentials(ApiError):
    """401 for a request with neither a PAT nor client credentials: both challenges, no error code
    in them (RFC 6750 §3.1); the body says what to send (RFC 6749 §5.2 ``invalid_client``)."""

    status = 401
    error = "invalid_client"

    def __init__(self) -> None:
        challenges = Headers()
        challenges.add("WWW-Authenticate", f'Bearer realm="{REALM}"')
        challenges.add("WWW-Authenticate", f'Basic realm="{REALM}"')
        super().__init__(
            "Authenticate: a PAT (Authorization: Bearer) or client credentials (HTTP Basic).", headers=challenges
        )


def may_learn_about_rpt(rpt: Rpt, *, pat: Token | None, client_id: str) -> bool:
    """Whether the caller may learn about ``rpt`` (issue 10, point 6; O-17, O-22, F-42): it holds
    a PAT for the owner and RS its resources are registered with (every resource of an RPT is
    the one owner's at the one RS, as its ticket's were), or the operator allows ``client_id``
    to introspect (setting ``introspection_clients``)."""
    if client_id in get_settings().introspection_clients:
        return True
    return pat is not None and pat.client_id == rpt.rs_client_id and pat.owner == rpt.owner


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
        """RPTs: see :func:`may_learn_about_rpt`; other tokens: those issued to the caller's client."""
        if isinstance(token, Rpt):
            return may_learn_about_rpt(token, pat=g.get("uma_pat"), client_id=client.client_id)
        return token.client_id == client.client_id

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], list]:
        client = self.authenticate_endpoint_client(request)
        token = self.authenticate_token(request, client)
        return 200, self.introspect(token, request.form["token"], client), default_json_headers

    def introspect(self, token: Rpt | Token | None, raw: str, client: Any) -> dict[str, Any]:
        if token is None:
            return {"active": False}
        if isinstance(token, Rpt):
            # The caller was checked (check_permission): no RS filter here.
            return introspect_rpt(raw, row=token) or {"active": False}
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
    scheme = read_authorization(request.headers.get("Authorization")).scheme
    if scheme == "bearer":
        authenticate_pat()
    elif scheme != "basic" and "client_id" not in get_server().create_oauth2_request(None).payload.data:
        # (the one strict form reader: ``request.form`` would consume the body authlib reads next)
        raise MissingCredentials()
    return get_server().create_endpoint_response("introspection")
