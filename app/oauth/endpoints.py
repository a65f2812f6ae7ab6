"""Revocation (RFC 7009), dynamic client registration (RFC 7591) and the management of a
registered client (RFC 7592), as authlib endpoints."""

from __future__ import annotations

from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.claims import BaseClaims
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientMetadataClaims
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint as _RegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError, InvalidRedirectURIError
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint as _ConfigurationEndpoint
from flask import request as flask_request
from joserfc.errors import InvalidClaimError

from .. import get_settings
from ..db import get_session
from ..http_auth import read_authorization
from ..identity.lockout import guard
from ..models import OAuthClient, Pct, Rpt, Token
from .clients import (
    GRANT_TYPES,
    ClientError,
    check_redirect_uri,
    check_registration_token,
    create_client,
    get_client,
    issue_registration_token,
    update_client,
)
from .requests import describe
from .tokens import find_access_token, find_pct, find_refresh_token


class RevocationEndpoint(_RevocationEndpoint):
    """POST /revoke — RFC 7009 for access tokens (PATs), refresh tokens, RPTs and PCTs
    (``token_type_hint=pct``, G-56, O-29…O-31). Unknown tokens and unknown hints: 200."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    SUPPORTED_TOKEN_TYPES = ("access_token", "refresh_token", "pct")

    def check_params(self, request: Any, client: Any) -> None:
        problem = self.server.form_problem(request)
        if problem:
            raise InvalidRequestError(problem)
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | Rpt | Pct | None:
        from ..protection.rpt import find_rpt, find_rpt_by_refresh_token

        session = get_session()
        lookups = {
            "access_token": [find_access_token, find_rpt],
            "refresh_token": [find_refresh_token, find_rpt_by_refresh_token],
            "pct": [find_pct],
        }
        order = lookups.get(token_type_hint or "", [])
        order = order + [f for fs in lookups.values() for f in fs if f not in order]
        for lookup in order:
            row = lookup(session, token_string)
            if row is not None:
                return row
        return None

    def revoke_token(self, token: Token | Rpt | Pct, request: Any) -> None:
        """Revoking either half of an OAuth token revokes both (O-31); RPTs and PCTs stop at once."""
        token.revoked = True
        session = get_session()
        session.add(token)
        session.commit()


def _uri_list(claims: BaseClaims, value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


class UmaClientMetadataClaims(BaseClaims):
    """RFC 7591 metadata added by UMA: ``claims_redirect_uris`` (G-10, A14)."""

    REGISTERED_CLAIMS = ["claims_redirect_uris"]

    def validate(self, now: Any = None, leeway: int = 0) -> None:
        super().validate(now, leeway)
        if "claims_redirect_uris" in self and not _uri_list(self, self["claims_redirect_uris"]):
            raise InvalidClaimError("claims_redirect_uris")


#: Expected JSON type of each standard member, checked before authlib's validation.
_TYPES: dict[str, type | tuple[type, ...]] = {
    "redirect_uris": list,
    "claims_redirect_uris": list,
    "grant_types": list,
    "response_types": list,
    "contacts": list,
    "token_endpoint_auth_method": str,
    "client_name": str,
    "client_uri": str,
    "logo_uri": str,
    "scope": str,
    "tos_uri": str,
    "policy_uri": str,
    "jwks_uri": str,
    "jwks": dict,
    "software_id": str,
    "software_version": str,
}


#: The RFC 7591 members stored in their own columns (the others go to ``client_metadata``).
_STANDARD = (
    "client_name",
    "grant_types",
    "redirect_uris",
    "claims_redirect_uris",
    "response_types",
    "scope",
    "token_endpoint_auth_method",
)


def _checked_types(data: Any) -> None:
    """Refuse metadata of the wrong JSON type and bad redirect URIs before authlib's validation
    (which would raise on some of them), with the RFC 7591 error codes (O-35)."""
    if not isinstance(data, dict) or not data:
        raise InvalidRequestError("The body must be a non-empty JSON object of client metadata.")
    for member, expected in _TYPES.items():
        if member in data and not isinstance(data[member], expected):
            raise InvalidClientMetadataError(f"'{member}' has the wrong type.")
        value = data.get(member)
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise InvalidClientMetadataError(f"'{member}' must be an array of strings.")
    for member in ("redirect_uris", "claims_redirect_uris"):
        for uri in data.get(member) or []:
            try:
                check_redirect_uri(uri, member)
            except ClientError as exc:
                raise InvalidRedirectURIError(describe(str(exc))) from None
    jwks = data.get("jwks")
    if jwks is not None and not (isinstance(jwks.get("keys"), list) and all(isinstance(k, dict) for k in jwks["keys"])):
        raise InvalidClientMetadataError("'jwks' must be a JWK set with a 'keys' array.")


def _arguments(client_metadata: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Registered metadata as the arguments of :func:`~app.oauth.clients.validate_metadata`
    (a member left out takes its RFC 7591 default) and the other members."""
    standard = {
        "client_name": client_metadata.get("client_name", ""),
        "grant_types": client_metadata.get("grant_types") or ["authorization_code"],
        "redirect_uris": client_metadata.get("redirect_uris") or [],
        "claims_redirect_uris": client_metadata.get("claims_redirect_uris") or [],
        "response_types": client_metadata.get("response_types"),
        "scope": client_metadata.get("scope", ""),
        "token_endpoint_auth_method": client_metadata.get("token_endpoint_auth_method", "client_secret_basic"),
    }
    return standard, {k: v for k, v in client_metadata.items() if k not in _STANDARD}


def _metadata_error(exc: ClientError) -> Exception:
    if exc.error == "invalid_redirect_uri":
        return InvalidRedirectURIError(describe(str(exc)))
    return InvalidClientMetadataError(describe(str(exc)))


def _server_metadata() -> dict[str, Any]:
    """What authlib checks registered metadata against (the same lists as discovery)."""
    return {
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    }


def registration_client_uri(client: OAuthClient) -> str:
    """Where a dynamically registered client reads, changes and deletes its registration (RFC 7592)."""
    return get_settings().url(f"/register/{client.client_id}")


class ClientRegistrationEndpoint(_RegistrationEndpoint):
    """POST /register — open dynamic registration (RFC 7591, O-32…O-37), accepting
    ``claims_redirect_uris`` (G-10). The answer (201) repeats every registered member and
    the client secret, which is shown only this once and stored hashed, with the
    ``registration_access_token`` and ``registration_client_uri`` of RFC 7592 (the token is
    stored hashed too)."""

    def __init__(self, server: Any):
        super().__init__(server, claims_classes=[ClientMetadataClaims, UmaClientMetadataClaims])

    def authenticate_token(self, request: Any) -> bool:
        """Open registration: no initial access token (O-32). The route exists only
        when the ``registration_open`` setting is on."""
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        return _server_metadata()

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        _checked_types(request.payload.data)
        try:
            return super().extract_client_metadata(request)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InvalidClientMetadataError(f"Invalid client metadata ({type(exc).__name__}).") from None

    def create_registration_response(self, request: Any) -> tuple[int, dict[str, Any], list]:
        metadata = self.extract_client_metadata(request)
        client = self.save_client({}, metadata, request)
        body = client.to_public_dict()
        if request.uma_client_secret:
            body["client_secret"] = request.uma_client_secret
        body.update(self.generate_client_registration_info(client, request))
        return 201, body, default_json_headers

    def generate_client_registration_info(self, client: OAuthClient, request: Any) -> dict[str, str]:
        return {
            "registration_client_uri": registration_client_uri(client),
            "registration_access_token": request.uma_registration_token,
        }

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> OAuthClient:
        """Create the client with :func:`create_client` (its own id and secret; the secret,
        kept on ``request.uma_client_secret`` for the answer, is stored hashed), and its
        registration access token (``request.uma_registration_token``, stored hashed)."""
        session = get_session()
        standard, other = _arguments(client_metadata)
        try:
            client, secret = create_client(session, metadata=other, **standard)
        except ClientError as exc:
            session.rollback()
            raise _metadata_error(exc) from None
        request.uma_registration_token = issue_registration_token(client)
        session.commit()
        request.uma_client_secret = secret
        return client


#: Members the server sets, which an update must not send (RFC 7592 §2.2).
_SERVER_MEMBERS = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


class RegistrationAccessToken:
    """A registration access token that was presented and matched the client of the URI."""

    def __init__(self, client: OAuthClient, raw: str):
        self.client = client
        self.raw = raw

    def check_client(self, client: OAuthClient) -> bool:
        return client.client_id == self.client.client_id


class ClientConfigurationEndpoint(_ConfigurationEndpoint):
    """GET, PUT, DELETE /register/{client_id} — a dynamically registered client reads, replaces
    and deletes its registration (RFC 7592 §2), authenticated by the registration access token
    it got at registration (``Authorization: Bearer``).

    * a missing, unknown or other client's token, or a client that does not exist (any more):
      401 ``invalid_token`` (RFC 6750) — the same answer, so that the URI tells nothing;
    * GET: 200 with the registered metadata (never the secret, which is stored hashed), the
      ``registration_client_uri`` and the token presented;
    * PUT: the body replaces the metadata (a member left out takes its default, RFC 7592
      §2.2), checked exactly as at registration: 400 ``invalid_client_metadata`` or
      ``invalid_redirect_uri``; it must carry the client's ``client_id``, may carry its
      ``client_secret`` (which must match), must not carry ``registration_access_token``,
      ``registration_client_uri``, ``client_secret_expires_at``, ``client_id_issued_at``
      (400 ``invalid_request``). 200 with the metadata and a new registration access token:
      the old one stops working;
    * DELETE: 204; the client is deleted and every token issued to it revoked
      (:func:`app.admin.delete_client`, as ``uma client delete``).

    Clients added with ``uma client add`` have no registration access token: an operator
    manages them (``uma client …``).
    """

    def __init__(self, server: Any):
        super().__init__(server, claims_classes=[ClientMetadataClaims, UmaClientMetadataClaims])

    def authenticate_token(self, request: Any) -> RegistrationAccessToken:
        header = read_authorization(request.headers.get("Authorization"))
        raw = header.bearer
        client_id = (flask_request.view_args or {}).get("client_id")
        # Credentials presented (of any scheme, well-formed or not) are a client's attempt.
        attempt = guard("client", client_id) if header.scheme is not None else None
        client = get_client(get_session(), client_id)
        if raw is None or client is None or not check_registration_token(client, raw):
            if attempt is not None:
                attempt.failed()
            raise InvalidTokenError(
                description="Send this client's registration access token: Authorization: Bearer <token>."
            )
        if attempt is not None:
            attempt.succeeded()
        return RegistrationAccessToken(client, raw)

    def authenticate_client(self, request: Any) -> OAuthClient:
        """The client of the URI, found by :meth:`authenticate_token` (whose token matched it)."""
        return request.credential.client

    def revoke_access_token(self, request: Any, token: RegistrationAccessToken) -> None:
        token.client.registration_token_hash = None
        get_session().commit()

    def check_permission(self, client: OAuthClient, request: Any) -> bool:
        """A client holding its registration access token may read, change and delete itself."""
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        return _server_metadata()

    def introspect_client(self, client: OAuthClient) -> dict[str, Any]:
        return client.to_public_dict()

    def generate_client_registration_info(self, client: OAuthClient, request: Any) -> dict[str, str]:
        """The URI and the token: a new one after PUT, else the one presented (RFC 7592 §3)."""
        return {
            "registration_client_uri": registration_client_uri(client),
            "registration_access_token": getattr(request, "uma_registration_token", None) or request.credential.raw,
        }

    def create_update_client_response(self, client: OAuthClient, request: Any) -> tuple[int, dict[str, Any], list]:
        """The checks of RFC 7592 §2.2 with a description of what is wrong, then authlib's update."""
        data = request.payload.data
        if not isinstance(data, dict):
            raise InvalidRequestError("The body must be a JSON object of client metadata.")
        for member in _SERVER_MEMBERS:
            if member in data:
                raise InvalidRequestError(f"'{member}' must not be sent.")
        if data.get("client_id") != client.client_id:
            raise InvalidRequestError("'client_id' must be sent, and be this client's id.")
        secret = data.get("client_secret")
        if "client_secret" in data and not (isinstance(secret, str) and client.check_client_secret(secret)):
            raise InvalidRequestError("'client_secret' is not this client's secret (it cannot be chosen).")
        return super().create_update_client_response(client, request)

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        _checked_types(request.payload.data)
        try:
            return super().extract_client_metadata(request)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InvalidClientMetadataError(f"Invalid client metadata ({type(exc).__name__}).") from None

    def update_client(self, client: OAuthClient, client_metadata: dict[str, Any], request: Any) -> OAuthClient:
        """Replace the metadata (checked by :func:`update_client`) and rotate the registration
        access token, in one transaction."""
        session = get_session()
        standard, other = _arguments(client_metadata)
        try:
            update_client(session, client, **standard)
        except ClientError as exc:
            session.rollback()
            raise _metadata_error(exc) from None
        client.client_metadata = other
        request.uma_registration_token = issue_registration_token(client)
        session.commit()
        return client

    def delete_client(self, client: OAuthClient, request: Any) -> None:
        from ..admin import delete_client

        session = get_session()
        delete_client(session, client)
        session.commit()
