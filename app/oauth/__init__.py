"""OAuth 2.0 for the AS (authlib): clients, authorization code + PKCE, client
credentials, refresh, revocation, dynamic registration, metadata, signing keys.

The :class:`~app.oauth.server.UmaAuthorizationServer` and its grants and
endpoints are put together in ``app/factory.py``; :func:`get_server` returns it.
"""

from __future__ import annotations

from .server import UmaAuthorizationServer, get_server

__all__ = ["get_server", "UmaAuthorizationServer"]
