"""The UMA grant (Grant spec): the uma-ticket grant at the token endpoint, pushed
claim tokens, PCTs, RPT upgrade, the claims interaction endpoint, the owner's
approvals — and the one bridge to the policy engine (:mod:`.bridge`).

The application factory (``app/factory.py``) registers :class:`UmaTicketGrant`
on the authlib server, the claims interaction blueprint and the grant's
discovery members (:func:`grant_metadata`).
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from .claim_tokens import SUPPORTED_FORMATS
from .token_grant import UmaTicketGrant

__all__ = ["grant_metadata", "UmaTicketGrant"]


def grant_metadata(settings: Settings) -> dict[str, Any]:
    """Discovery members of the grant (G-07, G-09): the static claims interaction
    endpoint and, as an extension member, the claim token formats accepted."""
    return {
        "claims_interaction_endpoint": settings.url("/uma/claims"),
        "claim_token_formats_supported": list(SUPPORTED_FORMATS),
    }
