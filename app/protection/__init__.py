"""The UMA protection API (FedAuthz): resource registration, permission endpoint,
token introspection, and the storage of tickets and RPTs the UMA grant uses.

* :mod:`.tickets` — ``issue_ticket``, ``redeem_ticket`` (atomic, single use);
* :mod:`.rpt` — ``issue_rpt``, ``introspect_rpt``, ``refresh_rpt``, ``token_response``;
* :mod:`.auth` — ``pat_required`` / ``current_pat`` for PAT-protected views.
"""

from __future__ import annotations

from flask import Flask

from ..oauth.server import UmaAuthorizationServer
from .introspection import UmaIntrospectionEndpoint
from .introspection import bp as introspection_bp
from .permissions import bp as permissions_bp
from .resources import bp as resources_bp


def init_protection(app: Flask, server: UmaAuthorizationServer) -> None:
    server.register_endpoint(UmaIntrospectionEndpoint)
    app.register_blueprint(resources_bp)
    app.register_blueprint(permissions_bp)
    app.register_blueprint(introspection_bp)
