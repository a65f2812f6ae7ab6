"""The authlib ``AuthorizationServer`` of this AS, wired to our tables.

:func:`build_server` creates it and registers the OAuth grants and the
revocation endpoint. The UMA grant registers itself on the same object
(``server.register_grant(UmaTicketGrant)`` in ``app.grant.init_app``), and its
token generator for RPTs does not go through :meth:`save_token` (RPTs live in
the ``rpts`` table, see :mod:`app.protection.rpt`).
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import JsonPayload, JsonRequest, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from flask import Flask, current_app
from flask import request as flask_request
from werkzeug.datastructures import MultiDict

from .. import get_settings
from ..body import BodyError, loads_strict
from ..db import get_session
from ..http_auth import client_credentials
from ..identity.lockout import guard
from ..models import OAuthClient, Token
from ..security import hash_token, new_token, now
from .clients import cached_client
from .requests import (
    BadForm,
    UmaOAuth2Request,
    describe,
    parse_form_body,
    query_params,
    repeated_parameters,
    unsafe_parameters,
)
from .tokens import access_lifetime, count_issued

#: Endpoints whose parameters come from the query string (RFC 6749 §3.1).
QUERY_ENDPOINTS = {"oauth.authorize"}


class SafeJsonPayload(JsonPayload):
    """JSON body parsed without ever raising anything but ``InvalidRequestError``."""

    def __init__(self, raw: bytes):
        self._raw = raw
        self._data: Any = None
        self._parsed = False

    @property
    def data(self) -> Any:
        if not self._parsed:
            self._parsed = True
            try:
                self._data = loads_strict(self._raw)
            except BodyError:
                raise InvalidRequestError("The body must be a JSON object.") from None
        return self._data


def authenticate_client_secret_basic(query_client: Any, request: OAuth2Request) -> OAuthClient | None:
    """HTTP Basic client authentication (RFC 6749 §2.3.1, O-03)."""
    credentials = client_credentials(request.headers.get("Authorization"))
    if credentials is None:
        return None
    client = query_client(credentials[0])
    if client is not None and client.check_client_secret(credentials[1]):
        return client
    return None


def claimed_client_id(request: OAuth2Request) -> str | None:
    """The client id a request authenticates as: Basic's, else the body's ``client_id``."""
    credentials = client_credentials(request.headers.get("Authorization"))
    if credentials is not None:
        return credentials[0]
    try:
        client_id = request.payload.client_id if request.payload is not None else None
    except InvalidRequestError:  # a JSON body that is not an object: nothing claimed
        return None
    return client_id if isinstance(client_id, str) and client_id else None


class UmaAuthorizationServer(AuthorizationServer):
    """authlib's Flask server with our request parsing, token format and storage."""

    def __init__(self, app: Flask):
        super().__init__()
        self.init_app(app, query_client=self._query_client_db, save_token=self._save_token_db)
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)

    # -- client authentication ---------------------------------------------------
    def authenticate_client(self, request: OAuth2Request, methods: list[str], endpoint: str = "token") -> Any:
        """authlib's client authentication, at every endpoint that uses it (token, revocation,
        introspection), behind the lockout (O-03; issue 13, point 3): a client id or an address
        with too many failures is answered 429 before its secret is looked at; a failure counts."""
        claimed = claimed_client_id(request)
        if claimed is None:
            return super().authenticate_client(request, methods, endpoint)
        attempt = guard("client", claimed)
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            attempt.failed()
            raise
        attempt.succeeded()
        return client

    # -- requests ------------------------------------------------------------
    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        public_uri = get_settings().url(flask_request.path)
        if flask_request.method == "GET" or flask_request.endpoint in QUERY_ENDPOINTS:
            return UmaOAuth2Request(flask_request, query_params(flask_request), public_uri)
        try:
            params = parse_form_body(flask_request)
        except BadForm as exc:
            return UmaOAuth2Request(flask_request, MultiDict(), public_uri, bad_form=str(exc))
        return UmaOAuth2Request(flask_request, params, public_uri)

    def create_json_request(self, request: Any) -> JsonRequest:
        req = JsonRequest(flask_request.method, get_settings().url(flask_request.path), flask_request.headers)
        req.payload = SafeJsonPayload(flask_request.get_data(cache=True))
        return req

    @staticmethod
    def form_problem(request: OAuth2Request) -> str | None:
        """Why a form-encoded request is malformed (O-02), or None."""
        bad = getattr(request, "bad_form", None)
        if bad:
            return describe(bad)
        repeated = repeated_parameters(request.payload.data)
        if repeated:
            return f"Parameters must not be repeated: {', '.join(repeated)}."
        unsafe = unsafe_parameters(request.payload.data)
        if unsafe:
            return f"Invalid characters in: {', '.join(unsafe)}."
        return None

    def create_token_response(self, request: Any = None) -> Any:
        """Token endpoint (RFC 6749 §3.2): malformed forms and a missing grant_type
        are ``invalid_request`` (O-02, O-05) before authlib picks a grant."""
        req = self.create_oauth2_request(request)
        problem = self.form_problem(req)
        if problem is None and not req.payload.grant_type:
            problem = "Missing 'grant_type'."
        if problem:
            return self.handle_error_response(req, InvalidRequestError(describe(problem)))
        return super().create_token_response(req)

    # -- storage -------------------------------------------------------------
    def _query_client_db(self, client_id: str) -> OAuthClient | None:
        return cached_client(get_session(), client_id)

    def _generate_token(
        self,
        grant_type: str,
        client: OAuthClient,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": new_token(),
            "expires_in": expires_in or access_lifetime(get_settings(), scope or ""),
        }
        if scope:
            token["scope"] = scope
        if include_refresh_token:
            token["refresh_token"] = new_token()
        return token

    def _save_token_db(self, token: dict[str, Any], request: OAuth2Request) -> Token:
        settings = get_settings()
        session = get_session()
        issued = now()
        refresh = token.get("refresh_token")
        row = Token(
            access_token_hash=hash_token(token["access_token"]),
            refresh_token_hash=hash_token(refresh) if refresh else None,
            client_id=request.client.client_id,
            subject=getattr(request, "uma_subject", None),
            scope=token.get("scope", ""),
            grant_type=request.payload.grant_type or "",
            family_id=getattr(request, "uma_family", None) or new_token()[:43],
            issued_at=issued,
            expires_at=issued + int(token["expires_in"]),
            refresh_expires_at=issued + settings.refresh_token_lifetime if refresh else None,
        )
        session.add(row)
        session.commit()
        count_issued(row.scope, refresh is not None)
        return row


def get_server(app: Flask | None = None) -> UmaAuthorizationServer:
    """The authorization server of ``app`` (default: the current app)."""
    return (app or current_app).extensions["uma_oauth_server"]
