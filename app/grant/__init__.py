"""The UMA grant (Grant spec): the uma-ticket grant at the token endpoint, pushed
claim tokens, PCTs, RPT upgrade, the claims interaction endpoint, the owner's
approvals — and the one bridge to the policy engine (:mod:`.bridge`).

The application factory calls :func:`init_app` with the authlib
``AuthorizationServer`` once the OAuth grants are registered: it registers
:class:`UmaTicketGrant`, the claims interaction and owner API blueprints, the
policy store (:mod:`app.policies`) and the grant's discovery members.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from ..config import Settings
from ..oauth.metadata import register_metadata
from ..policies import init_policies
from .claim_tokens import SUPPORTED_FORMATS
from .token_grant import UmaTicketGrant

__all__ = ["init_app", "UmaTicketGrant"]


def _metadata(settings: Settings) -> dict[str, Any]:
    """Discovery members of the grant (G-07, G-09): the static claims interaction
    endpoint and, as an extension member, the claim token formats accepted."""
    return {
        "claims_interaction_endpoint": settings.url("/uma/claims"),
        "claim_token_formats_supported": list(SUPPORTED_FORMATS),
    }


def init_app(app: Flask, server: Any) -> None:
    from ..owner_api import bp as owner_bp
    from .interaction import bp as interaction_bp

    init_policies(app)
    server.register_grant(UmaTicketGrant)
    app.register_blueprint(interaction_bp)
    app.register_blueprint(owner_bp)
    register_metadata(app, _metadata)
