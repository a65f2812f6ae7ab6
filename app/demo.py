"""``uma serve --demo``: demo accounts, clients, a resource and a policy, kept across restarts.

Users ``alice`` (owner) and ``bob`` (requesting party), a resource server ``photo-rs`` that
gets PATs for alice by client credentials, a client ``photo-app`` for the UMA grant, alice's
photo album registered at the RS, and alice's policy (uploaded as her own text, so the
owner pages show it and she can edit it) sharing her albums with bob's email address.

Client secrets are stored hashed in the database like every other; so that the printed
walk-through works on every start, the demo also keeps them in ``demo-secrets.json`` in the
instance folder (mode 0600) and prints them again. Should that file be lost, the secrets are
rotated and written again. ``uma demo reset`` deletes all of it, and the next
``uma serve --demo`` starts over.

The walk-through runs a whole UMA grant with claims interaction (Grant §3.3.2): the client's
claims redirection URI is ``/demo/claims-callback`` on this server, a page standing in for the
client, which shows the ticket the requesting party brought back and the client's next call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import admin, get_settings, owner_service
from .db import session_scope
from .models import OAuthClient, PolicyDocument, Resource, User
from .oauth.clients import create_client
from .users import create_user

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
DEMO_PASSWORD = "demo-password"
SECRETS_FILE = "demo-secrets.json"
CALLBACK_PATH = "/demo/claims-callback"
USERS = {
    "alice": {"email": "alice@example.com", "email_verified": True},
    "bob": {"email": "bob@example.com", "email_verified": True},
}
RS_NAME, APP_NAME = "photo-rs", "photo-app"
ALBUM_ID = "demo-summer-2026"
ALICE_POLICY = """\
# The demo's policy: alice shares her photo albums with bob (by the email on his account).
# Edit it on the "My policies" page, signed in as alice.
owner "alice"

type "photo-album" has scopes view, download, print

permit view, download
  on type "photo-album"
  when claims.email == "bob@example.com"
"""

bp = Blueprint("demo", __name__)


@bp.get(CALLBACK_PATH)
def claims_callback() -> Any:
    """Where the claims interaction sends the requesting party back (G-47, G-48): stands in for
    the demo client and shows its next request."""
    settings = get_settings()
    return render_template(
        "demo_callback.html",
        ticket=request.args.get("ticket", ""),
        error=request.args.get("error", ""),
        state=request.args.get("state", ""),
        token_url=settings.url("/token"),
        grant=UMA_GRANT,
    )


def _secrets_path(app: Flask) -> Path:
    return Path(app.instance_path) / SECRETS_FILE


def _read_secrets(app: Flask) -> dict[str, str]:
    try:
        data = json.loads(_secrets_path(app).read_text())
    except (OSError, ValueError):
        return {}
    return (
        {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}
    )


def _write_secrets(app: Flask, data: dict[str, str]) -> None:
    path = _secrets_path(app)
    tmp = path.with_name(f".{SECRETS_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _client(session: Session, name: str, known: dict[str, str], **kwargs: Any) -> tuple[OAuthClient, str]:
    """The demo client ``name`` and its secret: created, or found with the kept secret, or found
    without one (the secrets file was lost) and given a new secret."""
    client = session.execute(select(OAuthClient).where(OAuthClient.client_name == name)).scalars().first()
    if client is None:
        client, secret = create_client(session, client_name=name, **kwargs)
        return client, str(secret)
    if known.get(f"{name}:id") == client.client_id and known.get(f"{name}:secret"):
        return client, known[f"{name}:secret"]
    _, secret = admin.rotate_client_secret(session, client.client_id)
    return client, secret


def seed_demo(app: Flask) -> str:
    """Create what is missing (idempotent); return the walk-through, secrets included."""
    settings = get_settings(app)
    callback = settings.url(CALLBACK_PATH)
    known = _read_secrets(app)
    with session_scope() as session:
        for name, claims in USERS.items():
            if session.execute(select(User).where(User.username == name)).scalar_one_or_none() is None:
                create_user(session, name, DEMO_PASSWORD, claims)
        rs, rs_secret = _client(
            session, RS_NAME, known, grant_types=["client_credentials"], scope="uma_protection", owner="alice"
        )
        app_client, app_secret = _client(
            session,
            APP_NAME,
            known,
            grant_types=[UMA_GRANT, "refresh_token"],
            claims_redirect_uris=[callback],
            scope="view download",
        )
        if list(app_client.claims_redirect_uris or []) != [callback]:  # served on another host or port this time
            admin.change_client(session, app_client.client_id, claims_redirect_uris=[callback])
        if session.get(Resource, ALBUM_ID) is None:
            session.add(
                Resource(
                    id=ALBUM_ID,
                    owner="alice",
                    rs_client_id=rs.client_id,
                    name="summer-2026",
                    type="photo-album",
                    resource_scopes=["view", "download", "print"],
                )
            )
        session.commit()
        has_policy = session.execute(
            select(PolicyDocument.id).where(PolicyDocument.owner == "alice", PolicyDocument.active.is_(True))
        ).first()
        if has_policy is None:
            owner_service.save_policy(session, "alice", ALICE_POLICY)
        _write_secrets(
            app,
            {
                f"{RS_NAME}:id": rs.client_id,
                f"{RS_NAME}:secret": rs_secret,
                f"{APP_NAME}:id": app_client.client_id,
                f"{APP_NAME}:secret": app_secret,
            },
        )
        return walkthrough(settings.url(""), rs.client_id, rs_secret, app_client.client_id, app_secret, callback)


def walkthrough(base: str, rs_id: str, rs_secret: str, app_id: str, app_secret: str, callback: str) -> str:
    """The printed walk-through: shell commands (bash, curl and python3 for the JSON; each
    command line is indented by five spaces) and one visit in a browser."""
    uma = f"-d grant_type={UMA_GRANT}"
    return "\n".join(
        [
            f"Demo data (kept in the instance folder; `uma demo reset` starts over). Accounts alice (owner) and"
            f" bob (requesting party), password {DEMO_PASSWORD}; alice's policy shares her photo albums with bob.",
            "",
            "1. The resource server (photo-rs) gets a PAT for alice and asks for a permission ticket:",
            "     json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' \"$1\"; }",
            f"     export RS_ID={rs_id} RS_SECRET={rs_secret}",
            f"     export APP_ID={app_id} APP_SECRET={app_secret}",
            f"     PAT=$(curl -s -u $RS_ID:$RS_SECRET -d grant_type=client_credentials {base}/token | json access_token)",
            f"     TICKET=$(curl -s -H \"Authorization: Bearer $PAT\" -H 'Content-Type: application/json'"
            f' -d \'{{"resource_id":"{ALBUM_ID}","resource_scopes":["view"]}}\' {base}/uma/permission | json ticket)',
            "2. The client (photo-app) asks for an RPT with it; the policy needs bob's email, so the answer is",
            "   need_info with a new ticket and redirect_user:",
            f"     curl -s -u $APP_ID:$APP_SECRET {uma} -d ticket=$TICKET {base}/token | tee need_info.json",
            "3. The requesting party opens this address in a browser, signs in as bob and agrees:",
            f'     echo "{base}/uma/claims?client_id=$APP_ID&ticket=$(json ticket < need_info.json)&state=demo"',
            f"   and is sent back to the client ({callback}), which shows the new ticket.",
            "4. The client asks again with that ticket and receives the RPT; the resource server introspects it:",
            "     NEW_TICKET=...   # the ticket shown on that page",
            f"     RPT=$(curl -s -u $APP_ID:$APP_SECRET {uma} -d ticket=$NEW_TICKET {base}/token | json access_token)",
            f'     curl -s -H "Authorization: Bearer $PAT" -d token=$RPT {base}/uma/introspect',
            f"Owner pages: {base}/ (sign in as alice: her resources, policy and history).",
        ]
    )


def reset_demo(app: Flask) -> dict[str, Any]:
    """Delete the demo's clients (their tokens and resources with them), accounts (their
    policies, requests and audit trail with them) and kept secrets. Returns what went."""
    removed: dict[str, Any] = {"clients": [], "users": []}
    with session_scope() as session:
        for name in (APP_NAME, RS_NAME):
            for client in session.execute(select(OAuthClient).where(OAuthClient.client_name == name)).scalars().all():
                admin.delete_client(session, client)
                removed["clients"].append(name)
        for username in USERS:
            if session.execute(select(User).where(User.username == username)).scalar_one_or_none() is not None:
                admin.delete_user(session, username)
                removed["users"].append(username)
        session.commit()
    path = _secrets_path(app)
    removed["secrets_file"] = path.exists()
    path.unlink(missing_ok=True)
    return removed
