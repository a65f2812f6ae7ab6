"""The OAuth 2.0 grants that issue PATs and other access tokens (authlib grant classes).

* :class:`AuthorizationCodeGrant` with :class:`S256CodeChallenge` — an owner
  lets an RS have a PAT through the login and consent pages (F-06, O-09, O-38…O-45);
* :class:`ClientCredentialsGrant` — a PAT for the client's configured ``owner``
  or for the RS itself (F-06, O-11);
* :class:`RefreshTokenGrant` — rotates refresh tokens, detects reuse (O-06, O-47),
  and refreshes RPTs with what the current policy still grants (G-53, G-54, A15).

Every grant sets ``request.uma_subject`` (the owner username, or None for the
client itself) and ``request.uma_family`` (rotation chain) for
:meth:`app.oauth.server.UmaAuthorizationServer.save_token`.
"""

from __future__ import annotations

import hmac
from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from sqlalchemy import select, update

from .. import get_settings
from ..db import get_session
from ..models import AuthorizationCode, Rpt, Token, User
from ..security import hash_token, now
from ..users import get_user
from .tokens import find_refresh_token, revoke_family, spend_refresh_token

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]


def active_user(username: str) -> User | None:
    """The user, if it still exists and is enabled: no token is issued for a disabled or
    deleted account (``uma user disable|delete``, :mod:`app.admin`)."""
    user = get_user(get_session(), username)
    return user if user is not None and user.is_active else None


def _s256_matches(verifier: str, challenge: str) -> bool:
    return hmac.compare_digest(create_s256_code_challenge(verifier), challenge)


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (O-42); required for public clients at the authorization
    request already (O-41, O-45), accepted from all clients; a ``code_verifier``
    without an earlier challenge is refused (downgrade, O-45)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": _s256_matches}
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if grant.request.client.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must send a PKCE 'code_challenge' (S256).")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only the 'S256' code_challenge_method is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """RFC 6749 §4.1 with PKCE; codes are hashed, short-lived and single-use (O-09, O-58)."""

    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_METHODS, "none"]

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        session = get_session()
        session.add(
            AuthorizationCode(
                code_hash=hash_token(code),
                client_id=request.client.client_id,
                username=request.user.username,
                redirect_uri=data.get("redirect_uri") or request.client.get_default_redirect_uri() or "",
                redirect_uri_sent=bool(data.get("redirect_uri")),
                scope=request.scope or "",
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                expires_at=now() + get_settings().auth_code_lifetime,
            )
        )
        session.commit()

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        """Consume the code atomically; a second use revokes what the first one produced (O-09)."""
        session = get_session()
        digest = hash_token(code)
        result = session.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == digest,
                AuthorizationCode.client_id == client.client_id,
                AuthorizationCode.used.is_(False),
                AuthorizationCode.expires_at > now(),
            )
            .values(used=True)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            if result.rowcount == 0:
                revoke_family(session, digest)
            session.commit()
            return None
        session.commit()
        row = session.execute(select(AuthorizationCode).where(AuthorizationCode.code_hash == digest)).scalar_one()
        self.request.uma_family = digest
        return row

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing left to do: :meth:`query_authorization_code` already spent the code,
        and its row stays to recognise a replay."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        """The approving user, unless deleted or disabled since (then ``invalid_grant``)."""
        user = active_user(authorization_code.username)
        if user is not None:
            self.request.uma_subject = user.username
        return user


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """RFC 6749 §4.4 for confidential clients; the token acts for ``client.owner``,
    or for the client itself when it has no owner (F-06, §3.1 item 12). No refresh token (O-11)."""

    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client = self.request.client
        requested = self.request.payload.scope
        if requested:
            if not set(scope_to_list(requested)) <= set(scope_to_list(client.scope)):
                raise InvalidScopeError("The client may not ask for this scope.")
            scope = " ".join(scope_to_list(requested))
        else:
            scope = client.scope
        self.request.scope = scope
        if client.owner is not None and active_user(client.owner) is None:
            raise UnauthorizedClientError("The account this client acts for is disabled or deleted.")
        self.request.uma_subject = client.owner

    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _RefreshedClientOwner:
    """Stands for "the client itself" when a client-owned token is refreshed."""


def spend(row: Token | Rpt) -> None:
    """Spend a refresh token for this refresh (:func:`~app.oauth.tokens.spend_refresh_token`),
    or answer ``invalid_grant`` when it was used already (its family is then revoked)."""
    if not spend_refresh_token(get_session(), row):
        raise InvalidGrantError("The refresh token was already used.")


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """RFC 6749 §6 with rotation (O-47), for PATs and RPTs alike: every refresh spends the
    refresh token and issues a new one in the same family; presenting a spent one again
    revokes the whole family (:func:`~app.oauth.tokens.spend_refresh_token`). Of two
    concurrent uses of one refresh token exactly one succeeds.

    A refresh token issued with an RPT gives a new RPT with the permissions the current
    policy still grants, scope-narrowed when asked (G-53, G-54, A15;
    :func:`app.grant.bridge.refresh_rpt`).
    """

    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | Rpt | None:
        from ..protection.rpt import find_rpt_by_refresh_token

        session = get_session()
        row = find_refresh_token(session, refresh_token) or find_rpt_by_refresh_token(session, refresh_token)
        if row is None:
            return None
        if row.rotated:
            revoke_family(session, row.family_id, type(row))
            session.commit()
            return None
        if row.revoked or row.refresh_expires_at is None or row.refresh_expires_at <= now():
            return None
        return row

    def _validate_token_scope(self, token: Token | Rpt) -> None:
        if isinstance(token, Rpt):
            requested = set(scope_to_list(self.request.payload.scope or ""))
            granted = {s for p in token.permissions for s in p.get("resource_scopes", [])}
            if requested and not requested <= granted:
                raise InvalidScopeError("The refresh may only narrow the RPT's scopes (A15).")
            return
        super()._validate_token_scope(token)

    def authenticate_user(self, refresh_token: Token | Rpt) -> Any:
        if isinstance(refresh_token, Rpt):
            return refresh_token
        self.request.uma_subject = refresh_token.subject
        self.request.uma_family = refresh_token.family_id
        if refresh_token.subject is None:
            return _RefreshedClientOwner()
        return active_user(refresh_token.subject)

    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        """Spend the refresh token, then issue its successor in the same transaction. An RPT's
        permissions are decided again first: the policy store may have to write (with its own
        connection), which must not wait for the write lock a spent token holds on SQLite."""
        token = self.request.refresh_token
        if isinstance(token, Rpt):
            from ..grant.bridge import refresh_rpt

            body = refresh_rpt(get_session(), get_settings(), token, self.request.payload.scope)
            return 200, body, default_json_headers
        spend(token)
        return super().create_token_response()

    def issue_token(self, user: Any, refresh_token: Token) -> dict[str, Any]:
        scope = self.request.payload.scope or refresh_token.get_scope()
        return self.generate_token(user=None, scope=" ".join(scope_to_list(scope)), include_refresh_token=True)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """The old refresh token was spent atomically in :meth:`create_token_response`;
        commit the new token together with that."""
        get_session().commit()
