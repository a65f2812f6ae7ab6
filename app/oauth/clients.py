"""OAuth client records: creation (``uma client add``, dynamic registration) and lookup."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlmodel import Session

from ..cache import detached, row_cache
from ..models import OAuthClient
from ..security import hash_token, new_token

GRANT_TYPES = (
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:uma-ticket",
)
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class ClientError(ValueError):
    """Invalid client metadata; ``error`` is the RFC 7591 error code (O-35)."""

    def __init__(self, message: str, error: str = "invalid_client_metadata"):
        super().__init__(message)
        self.error = error


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: Any, member: str = "redirect_uris") -> str:
    """An absolute https URI without fragment, or http on loopback (O-53, O-43)."""
    if (
        not isinstance(uri, str)
        or not uri
        or len(uri) > 2000
        or any(not 0x21 <= ord(c) <= 0x7E or c in '"\\<>' for c in uri)
    ):
        raise ClientError(f"{member}: every entry must be an absolute URI string", "invalid_redirect_uri")
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise ClientError(f"{member}: {uri!r} is not a URI", "invalid_redirect_uri") from None
    if parts.fragment or "#" in uri:
        raise ClientError(f"{member}: {uri!r} must not have a fragment", "invalid_redirect_uri")
    if parts.scheme == "https" and parts.netloc:
        return uri
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return uri
    raise ClientError(f"{member}: {uri!r} must be https (or http on a loopback address)", "invalid_redirect_uri")


def _string_list(value: Any, member: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ClientError(f"{member} must be an array of strings")
    return list(value)


def create_client(
    session: Session,
    *,
    client_name: str = "",
    grant_types: Iterable[str] = ("authorization_code",),
    redirect_uris: Iterable[str] = (),
    claims_redirect_uris: Iterable[str] = (),
    response_types: Iterable[str] | None = None,
    scope: str = "",
    token_endpoint_auth_method: str = "client_secret_basic",
    owner: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[OAuthClient, str | None]:
    """Create and add a client (the caller commits). Returns ``(client, secret)``; the
    secret (None for public clients) is shown once, only its hash is stored."""
    grant_types = _string_list(list(grant_types), "grant_types")
    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown:
        raise ClientError(f"unsupported grant_types: {', '.join(unknown)}")
    if token_endpoint_auth_method not in AUTH_METHODS:
        raise ClientError(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    public = token_endpoint_auth_method == "none"
    if public and "client_credentials" in grant_types:
        raise ClientError("a public client cannot use the client_credentials grant (O-11)")
    redirect_uris = [check_redirect_uri(u) for u in _string_list(list(redirect_uris), "redirect_uris")]
    claims_redirect_uris = [
        check_redirect_uri(u, "claims_redirect_uris")
        for u in _string_list(list(claims_redirect_uris), "claims_redirect_uris")
    ]
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientError("the authorization_code grant needs at least one redirect URI", "invalid_redirect_uri")
    if response_types is None:
        response_types = ["code"] if "authorization_code" in grant_types else []
    response_types = _string_list(list(response_types), "response_types")
    if any(rt != "code" for rt in response_types):
        raise ClientError("only the response type 'code' is supported")
    if not isinstance(scope, str) or "\x00" in scope:
        raise ClientError("scope must be a space-separated string")
    secret = None if public else new_token()
    client = OAuthClient(
        client_id=secrets.token_urlsafe(16),
        client_secret_hash=hash_token(secret) if secret else None,
        client_name=client_name,
        redirect_uris=redirect_uris,
        claims_redirect_uris=claims_redirect_uris,
        grant_types=grant_types,
        response_types=response_types,
        scope=" ".join(scope.split()),
        token_endpoint_auth_method=token_endpoint_auth_method,
        owner=owner,
        client_metadata=dict(metadata or {}),
    )
    session.add(client)
    session.flush()
    return client, secret


def get_client(session: Session, client_id: Any) -> OAuthClient | None:
    if not isinstance(client_id, str) or not client_id or len(client_id) > 255 or "\x00" in client_id:
        return None
    return session.execute(select(OAuthClient).where(OAuthClient.client_id == client_id)).scalar_one_or_none()


def cached_client(session: Session, client_id: Any) -> OAuthClient | None:
    """:func:`get_client` for authenticating and deciding: a read-only copy of the row, reused
    for ``row_cache_lifetime`` seconds (:mod:`app.cache`). Change clients with :func:`get_client`."""
    if not isinstance(client_id, str):
        return None

    def load() -> OAuthClient | None:
        row = get_client(session, client_id)
        return detached(row) if row is not None else None

    return row_cache().get("client", client_id, load)
