"""``uma serve --demo``: demo accounts, clients and a resource, idempotently.

Users ``alice`` (owner) and ``bob`` (requesting party, claims matching
``policies/alice.policy``), an RS ``photo-rs`` that gets PATs for alice by
client credentials, a client ``photo-app`` for the UMA grant, and alice's
photo album registered at the RS.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from . import get_settings
from .db import session_scope
from .models import OAuthClient, Resource, User
from .oauth.clients import create_client
from .users import create_user

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
DEMO_PASSWORD = "demo-password"


def _client(session, name: str, **kwargs) -> tuple[OAuthClient, str | None]:
    existing = session.execute(select(OAuthClient).where(OAuthClient.client_name == name)).scalars().first()
    if existing is not None:
        return existing, None
    return create_client(session, client_name=name, **kwargs)


def seed_demo(app: Flask) -> str:
    """Create what is missing; return instructions to try a full flow."""
    settings = get_settings(app)
    with session_scope() as session:
        for name, claims in (
            ("alice", {"email": "alice@example.com", "email_verified": True}),
            ("bob", {"email": "bob@example.com", "email_verified": True}),
        ):
            if session.execute(select(User).where(User.username == name)).scalar_one_or_none() is None:
                create_user(session, name, DEMO_PASSWORD, claims)
        rs, rs_secret = _client(
            session, "photo-rs", grant_types=["client_credentials"], scope="uma_protection", owner="alice"
        )
        app_client, app_secret = _client(
            session,
            "photo-app",
            grant_types=[UMA_GRANT, "refresh_token"],
            claims_redirect_uris=["http://127.0.0.1:9000/claims-cb"],
            scope="view download",
        )
        album = (
            session.execute(select(Resource).where(Resource.owner == "alice", Resource.name == "summer-2026"))
            .scalars()
            .first()
        )
        if album is None:
            album = Resource(
                id="demo-summer-2026",
                owner="alice",
                rs_client_id=rs.client_id,
                name="summer-2026",
                type="photo-album",
                resource_scopes=["view", "download", "print"],
            )
            session.add(album)
        lines = [
            f"Demo data (password of alice and bob: {DEMO_PASSWORD}; secrets are shown only when created):",
            f"  export RS_ID={rs.client_id}" + (f" RS_SECRET={rs_secret}" if rs_secret else ""),
            f"  export APP_ID={app_client.client_id}" + (f" APP_SECRET={app_secret}" if app_secret else ""),
            f"  alice's album (RS photo-rs): resource id {album.id}",
            "Try it:",
            f"  PAT=$(curl -s -u $RS_ID:$RS_SECRET -d grant_type=client_credentials {settings.url('/token')} | jq -r .access_token)",
            f"  curl -s -H \"Authorization: Bearer $PAT\" -H 'Content-Type: application/json' "
            f'-d \'{{"resource_id":"{album.id}","resource_scopes":["view"]}}\' {settings.url("/uma/permission")}',
            f"  then the client: curl -u $APP_ID:$APP_SECRET -d grant_type={UMA_GRANT} -d ticket=... {settings.url('/token')}",
        ]
    return "\n".join(lines)
