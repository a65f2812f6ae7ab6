"""Revocation (RFC 7009) and dynamic client registration (RFC 7591), as authlib endpoints."""

from __future__ import annotations

from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.claims import BaseClaims
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientMetadataClaims
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint as _RegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError, InvalidRedirectURIError
from joserfc.errors import InvalidClaimError

from ..db import get_session
from ..models import OAuthClient, Pct, Rpt, Token
from .clients import GRANT_TYPES, ClientError, check_redirect_uri, create_client
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


class ClientRegistrationEndpoint(_RegistrationEndpoint):
    """POST /register — open dynamic registration (RFC 7591, O-32…O-37), accepting
    ``claims_redirect_uris`` (G-10). The answer (201) repeats every registered member
    and the client secret, which is shown only this once and stored hashed."""

    def __init__(self, server: Any):
        super().__init__(server, claims_classes=[ClientMetadataClaims, UmaClientMetadataClaims])

    def authenticate_token(self, request: Any) -> bool:
        """Open registration: no initial access token (O-32). The route exists only
        when the ``registration_open`` setting is on."""
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        return {
            "grant_types_supported": list(GRANT_TYPES),
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        }

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        data = request.payload.data
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
        if jwks is not None and not (
            isinstance(jwks.get("keys"), list) and all(isinstance(k, dict) for k in jwks["keys"])
        ):
            raise InvalidClientMetadataError("'jwks' must be a JWK set with a 'keys' array.")
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
        return 201, body, default_json_headers

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> OAuthClient:
        """Create the client with :func:`create_client` (its own id and secret; the secret,
        kept on ``request.uma_client_secret`` for the answer, is stored hashed)."""
        standard = {
            "client_name",
            "grant_types",
            "redirect_uris",
            "claims_redirect_uris",
            "response_types",
            "scope",
            "token_endpoint_auth_method",
        }
        session = get_session()
        try:
            client, secret = create_client(
                session,
                client_name=client_metadata.get("client_name", ""),
                grant_types=client_metadata.get("grant_types") or ["authorization_code"],
                redirect_uris=client_metadata.get("redirect_uris") or [],
                claims_redirect_uris=client_metadata.get("claims_redirect_uris") or [],
                response_types=client_metadata.get("response_types"),
                scope=client_metadata.get("scope", ""),
                token_endpoint_auth_method=client_metadata.get("token_endpoint_auth_method", "client_secret_basic"),
                metadata={k: v for k, v in client_metadata.items() if k not in standard},
            )
        except ClientError as exc:
            session.rollback()
            if exc.error == "invalid_redirect_uri":
                raise InvalidRedirectURIError(describe(str(exc))) from None
            raise InvalidClientMetadataError(describe(str(exc))) from None
        session.commit()
        request.uma_client_secret = secret
        return client
