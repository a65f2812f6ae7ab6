"""The claims interaction endpoint (Grant §3.3.2, §3.3.3; G-44…G-52, A4, O-43, O-44, O-54).

The client sends the requesting party's browser to::

    GET /uma/claims?client_id=…&ticket=…&claims_redirect_uri=…&state=…

1. ``client_id`` unknown, or ``claims_redirect_uri`` not exactly one of the
   client's registered claims redirection URIs (or omitted while the client has
   several or none) → an error page, never a redirect (G-45, G-46, G-11).
2. The ticket is redeemed at once (single use, G-60). Missing, unknown, used or
   expired, or bound to another client → redirect back with
   ``error=invalid_request`` and no ticket (A4).
3. The browser goes on to the consent page (after the login page if nobody is
   logged in): it names the client, the resources and scopes, the claims the
   owner's policies ask for and the claims of the account that will be used.
   The form carries the session's anti-CSRF token (G-51).
4. Consent → ``303`` to ``claims_redirect_uri?ticket=<new>&state=…`` (G-47); the
   account's claims (issuer: this AS) are attached to the new ticket, which is
   bound to the client. Refusal → ``303`` to ``claims_redirect_uri?error=access_denied&state=…``
   without a ticket (G-48, A4).

Between steps 2 and 4 the interaction lives in a signed, time-limited handle
(the consumed ticket's id, the client, the redirect URI, the state); the
consumed ticket gets a successor only once (an atomic ``continued_at`` mark).
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import Blueprint, current_app, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from .. import get_settings
from ..db import get_session
from ..models import OAuthClient, PermissionTicket
from ..oauth.clients import get_client
from ..policies import get_store
from ..protection.tickets import issue_ticket, redeem_ticket
from ..security import now
from ..web import allow_form_target, current_user, login_required
from .bridge import Assessment, decide, load_resources, requested_scopes

bp = Blueprint("claims", __name__)
log = logging.getLogger(__name__)

_SALT = "uma-claims-interaction"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def _error_page(description: str, status: int = 400) -> Any:
    """An error shown to the person, with no redirect (G-46, O-44)."""
    return (
        render_template("grant/error.html", error="invalid_request", description=description),
        status,
    )


def _back(uri: str, params: list[tuple[str, str]], state: str | None) -> Any:
    if state is not None:
        params = [*params, ("state", state)]
    return redirect(add_params_to_uri(uri, params), code=303)


def _redirect_uri(client: OAuthClient, given: str | None) -> str | None:
    """Exact string match against the registered claims redirection URIs (G-45, O-43)."""
    registered = list(client.claims_redirect_uris)
    if given is None:
        return registered[0] if len(registered) == 1 else None
    return given if given in registered else None


@bp.get("/uma/claims")
def start() -> Any:
    """Entry of the claims interaction (see the module docstring for the exchange)."""
    args = request.args
    for name in ("client_id", "ticket", "claims_redirect_uri", "state"):
        if len(args.getlist(name)) > 1:
            return _error_page(f"The parameter {name} is repeated.")
    client = get_client(get_session(), args.get("client_id"))
    if client is None:
        return _error_page("Unknown or missing client_id.")
    uri = _redirect_uri(client, args.get("claims_redirect_uri") or None)
    if uri is None:
        return _error_page(
            "The claims_redirect_uri is missing or is not one the application registered; you were not sent back to it."
        )
    state = args.get("state")
    raw = args.get("ticket")
    if not raw or len(raw) > 4096:
        return _back(uri, [("error", "invalid_request"), ("error_description", "Missing ticket.")], state)
    session = get_session()
    ticket = redeem_ticket(session, raw)
    if ticket is None:
        return _back(
            uri, [("error", "invalid_request"), ("error_description", "The ticket is unknown, expired or used.")], state
        )
    if ticket.client_id is not None and ticket.client_id != client.client_id:
        return _back(
            uri,
            [("error", "invalid_request"), ("error_description", "The ticket belongs to another client.")],
            state,
        )
    handle = _serializer().dumps({"t": ticket.id, "c": client.client_id, "r": uri, "s": state})
    return redirect(f"/uma/claims/consent?interaction={handle}", code=303)


def _load(handle: str | None) -> dict[str, Any] | None:
    if not handle:
        return None
    max_age = get_settings().ticket_lifetime + 600
    try:
        data = _serializer().loads(handle, max_age=max_age)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def _needed_claims(
    ticket: PermissionTicket, client: OAuthClient
) -> tuple[list[dict[str, Any]], list[tuple[Any, list[str]]]]:
    """What the owner's policies still ask for with the claims gathered so far, and what is requested."""
    session = get_session()
    try:
        requested = requested_scopes(ticket, load_resources(session, ticket), None, client)
    except OAuth2Error:  # resources gone: nothing to show, the token endpoint will say so
        return [], []
    a = Assessment(
        ticket=ticket,
        client=client,
        requested=requested,
        claims=dict(ticket.claims),
        claim_sources=dict(ticket.claim_sources),
        requesting_party="",
    )
    try:
        decision, _, _ = decide(get_store(), session, a)
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("the policy engine failed while previewing a claims interaction")
        return [], requested
    return list(decision.required_claims), requested


@bp.get("/uma/claims/consent")
@login_required
def consent_page() -> Any:
    """The consent page: who asks, for what, which claims will be used (G-49, G-50, G-67)."""
    data = _load(request.args.get("interaction"))
    if data is None:
        return _error_page("This sign-in link expired or is not valid. Go back to the application and try again.")
    session = get_session()
    ticket = session.get(PermissionTicket, data["t"])
    client = get_client(session, data["c"])
    if ticket is None or client is None:
        return _error_page("This sign-in link is not valid.")
    user = current_user()
    needed, requested = _needed_claims(ticket, client)
    claims = _user_claims(user)
    allow_form_target(data["r"])  # allow or refuse, the form's answer redirects there
    return render_template(
        "grant/consent.html",
        user=user,
        client=client,
        requested=requested,
        needed=needed,
        claims=claims,
        interaction=request.args["interaction"],
        redirect_uri=data["r"],
    )


def _user_claims(user: Any) -> dict[str, Any]:
    """The account's claims, with ``sub`` = the user name (this AS is the issuer)."""
    claims = dict(user.claims or {})
    claims["sub"] = user.username
    return claims


@bp.post("/uma/claims/consent")
@login_required
def consent() -> Any:
    """The person allows or refuses; 303 back to the client either way (G-47, G-48, O-54)."""
    data = _load(request.form.get("interaction"))
    if data is None:
        return _error_page("This sign-in link expired or is not valid. Go back to the application and try again.")
    uri, state = data["r"], data["s"]
    if request.form.get("decision") != "allow":
        return _back(uri, [("error", "access_denied"), ("error_description", "The user refused.")], state)
    session = get_session()
    marked = session.execute(
        update(PermissionTicket)
        .where(PermissionTicket.id == data["t"], PermissionTicket.continued_at.is_(None))
        .values(continued_at=now())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    ticket = session.get(PermissionTicket, data["t"])
    if marked.rowcount != 1 or ticket is None:
        return _back(
            uri, [("error", "invalid_request"), ("error_description", "This interaction was already completed.")], state
        )
    user = current_user()
    settings = get_settings()
    claims = _user_claims(user)
    raw, successor = issue_ticket(
        session,
        owner=ticket.owner,
        rs_client_id=ticket.rs_client_id,
        permissions=ticket.permissions,
        lifetime=settings.ticket_lifetime,
        predecessor=ticket,
        client_id=data["c"],
        requesting_party=user.username,
        claims=claims,
        claim_sources={name: {"issuer": settings.issuer} for name in claims},
    )
    successor.pct_id = ticket.pct_id
    session.add(successor)
    session.commit()
    return _back(uri, [("ticket", raw)], state)
