"""OAuth 2.0 for the AS (authlib): clients, authorization code + PKCE, client
credentials, refresh, revocation, dynamic registration, metadata, signing keys.

:func:`init_oauth` returns the :class:`~app.oauth.server.UmaAuthorizationServer`;
the UMA grant registers its grant class on that same object (see ``app/factory.py``).
"""

from __future__ import annotations

from flask import Flask

from .endpoints import ClientRegistrationEndpoint, RevocationEndpoint
from .grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant, S256CodeChallenge
from .server import UmaAuthorizationServer, get_server
from .views import bp

__all__ = ["init_oauth", "get_server", "UmaAuthorizationServer"]


def init_oauth(app: Flask) -> UmaAuthorizationServer:
    server = UmaAuthorizationServer(app)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(ClientRegistrationEndpoint(server))
    app.extensions["uma_oauth_server"] = server
    app.register_blueprint(bp)
    return server
