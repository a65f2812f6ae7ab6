"""Authorization server metadata (RFC 8414) and UMA discovery (G-04…G-09, F-09…F-13, §2.4.1).

The same document is served at ``/.well-known/uma2-configuration`` and
``/.well-known/oauth-authorization-server``. Members with empty arrays are
omitted (O-24). Other parts add members with :func:`register_metadata`, e.g. the
UMA grant adds ``claims_interaction_endpoint``::

    register_metadata(app, lambda settings: {"claims_interaction_endpoint": settings.url("/uma/claims")})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from ..config import Settings
from ..models import PROTECTION_SCOPE, UMA_TICKET_GRANT

MetadataProvider = Callable[[Settings], dict[str, Any]]

PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "jwks_uri": "/jwks",
    "registration_endpoint": "/register",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/uma/introspect",
    "resource_registration_endpoint": "/uma/resources",
    "permission_endpoint": "/uma/permission",
}


def register_metadata(app: Flask, provider: MetadataProvider) -> None:
    """Add a function returning extra metadata members (called for every request)."""
    app.extensions.setdefault("uma_metadata", []).append(provider)


def server_metadata(app: Flask, settings: Settings) -> dict[str, Any]:
    secret_methods = ["client_secret_basic", "client_secret_post"]
    data: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": settings.url(PATHS["authorization_endpoint"]),
        "token_endpoint": settings.url(PATHS["token_endpoint"]),
        "jwks_uri": settings.url(PATHS["jwks_uri"]),
        "scopes_supported": [PROTECTION_SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token", UMA_TICKET_GRANT],
        "token_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "code_challenge_methods_supported": ["S256"],
        "revocation_endpoint": settings.url(PATHS["revocation_endpoint"]),
        "revocation_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "introspection_endpoint": settings.url(PATHS["introspection_endpoint"]),
        "introspection_endpoint_auth_methods_supported": ["Bearer", *secret_methods],
        "resource_registration_endpoint": settings.url(PATHS["resource_registration_endpoint"]),
        "permission_endpoint": settings.url(PATHS["permission_endpoint"]),
        "uma_profiles_supported": list(settings.uma_profiles_supported),
    }
    if settings.registration_open:
        data["registration_endpoint"] = settings.url(PATHS["registration_endpoint"])
    for provider in app.extensions.get("uma_metadata", []):
        data.update(provider(settings))
    return {k: v for k, v in data.items() if v not in ([], None, "")}
