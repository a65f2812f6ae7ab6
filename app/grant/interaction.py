"""The claims interaction endpoint (Grant §3.3.2, §3.3.3; G-44…G-52, A4, O-43, O-44, O-54).

The client sends the requesting party's browser to::

    GET /uma/claims?client_id=…&ticket=…&claims_redirect_uri=…&state=…

1. ``client_id`` unknown, or ``claims_redirect_uri`` not exactly one of the
   client's registered claims redirection URIs (or omitted while the client has
   several or none) → an error page, never a redirect (G-45, G-46, G-11).
2. The ticket is redeemed at once (single use, G-60). Missing, unknown, used or
   expired, or bound to another client → redirect back with
   ``error=invalid_request`` and no ticket (A4).
3. The browser goes on to the consent page, after the requesting party signed in: with an
   account of this server (the login page), or at an upstream identity provider
   (:mod:`app.web.upstream`; no account here is needed), whose verified ID-token claims,
   mapped and with their issuer, are held for this interaction in this browser.
4. The consent page (data minimisation, issue 14) names the client, the resources and
   scopes, and lists only the claims the pending decision needs — the ``required_claims``
   the owner's policy gives for the ticket as it stands — each with the value the party's
   sign-in gives and where it comes from, a box to tick (ticked) for each that the policy
   would accept, and for a claim that must come from another issuer the identity
   providers of that issuer. It says who learns them (this server's decision; the owner
   sees who asked and which claims were shared; the client nothing). A separate box, not
   ticked, lets this server remember the shared claims for the client (a PCT, G-67).
   The form carries the session's anti-CSRF token (G-51).
5. Consent → ``303`` to ``claims_redirect_uri?ticket=<new>&state=…`` (G-47). Only the
   ticked claims that the decision needs are attached to the new ticket (bound to the
   client), each source marked ``"remember": true|false``; the party who signed in rides
   along as the ticket's ``signed_in_party``; the audit records the released claim names
   (outcome ``claims_released``). Refusal → ``303`` to
   ``claims_redirect_uri?error=access_denied&state=…`` without a ticket (G-48, A4). Either
   way the upstream claims held for the interaction are deleted.

Between steps 2 and 4 the interaction lives in a signed, time-limited handle
(the consumed ticket's id, the client, the redirect URI, the state); the
consumed ticket gets a successor only once (an atomic ``continued_at`` mark).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from .. import audit, get_settings
from ..db import get_session
from ..models import OAuthClient, PermissionTicket, UpstreamSignIn
from ..oauth.clients import get_client
from ..policies import get_store
from ..protection.tickets import issue_ticket, redeem_ticket
from ..security import now
from ..web import allow_form_target, current_user
from ..web.upstream import forget_upstream_party, upstream_party
from .bridge import Assessment, decide, load_resources, party_name, requested_scopes

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


@dataclass
class Party:
    """Who answers the consent page: an account of this server, or an upstream sign-in."""

    #: How the page names the person to themselves.
    label: str
    #: The requesting party (``signed_in_party`` of the next ticket).
    party_id: str
    claims: dict[str, Any]
    sources: dict[str, dict[str, Any]]
    #: The identity provider's name, for an upstream sign-in.
    provider: str | None = None
    upstream: UpstreamSignIn | None = None


@dataclass
class Needed:
    """One claim the pending decision needs, as the consent page shows it."""

    name: str
    label: str
    value: Any
    #: The party's sign-in gives the claim from an issuer (and format) the policy accepts.
    usable: bool
    #: The issuers the policy requires for it (empty: any).
    issuers: list[str]
    #: The identity providers that could give it (for a sign-in link when it is not usable).
    providers: list[str]


def _party(handle: str) -> Party | None:
    """The requesting party of this interaction in this browser: an upstream sign-in made for it,
    else the signed-in account, else nobody."""
    settings = get_settings()
    row = upstream_party(handle)
    provider = settings.identity_provider(row.provider) if row is not None else None
    if row is not None and provider is not None and row.subject:
        claims = dict(row.claims)
        label = next(
            (claims[k] for k in ("email", "preferred_username", "name") if isinstance(claims.get(k), str)), row.subject
        )
        return Party(
            label=str(label),
            party_id=party_name(provider.issuer, row.subject, settings.issuer),
            claims=claims,
            sources=dict(row.claim_sources),
            provider=provider.name,
            upstream=row,
        )
    user = current_user()
    if user is None:
        return None
    claims = _user_claims(user)
    return Party(user.username, user.username, claims, {name: {"issuer": settings.issuer} for name in claims})


def _accepts(member: dict[str, Any], source: dict[str, Any]) -> bool:
    """Whether the policy's declaration of a claim (``required_claims`` member) accepts a claim
    from ``source`` (as :meth:`policy_lang.PolicySet.claims_view` will)."""
    issuers = member.get("issuer") or []
    formats = member.get("claim_token_format") or []
    if issuers and source.get("issuer") not in issuers:
        return False
    return not (formats and source.get("format") is not None and source.get("format") not in formats)


def _needed_items(needed: list[dict[str, Any]], party: Party) -> list[Needed]:
    settings = get_settings()
    items = []
    for member in needed:
        name = member.get("name")
        if not isinstance(name, str):
            continue
        issuers = [i for i in member.get("issuer") or [] if isinstance(i, str)]
        present = name in party.claims
        usable = present and _accepts(member, party.sources.get(name) or {})
        providers = [p.name for p in settings.identity_providers if not issuers or p.issuer in issuers]
        items.append(
            Needed(
                name=name,
                label=str(member.get("friendly_name") or name),
                value=party.claims.get(name),
                usable=usable,
                issuers=issuers,
                providers=providers if not usable else [],
            )
        )
    return items


@bp.get("/uma/claims/consent")
def consent_page() -> Any:
    """The consent page: who asks, for what, which claims the decision needs, who learns them
    (G-49, G-50, G-67); the requesting party signs in first (here or upstream)."""
    handle = request.args.get("interaction")
    data = _load(handle)
    if data is None or handle is None:
        return _error_page("This sign-in link expired or is not valid. Go back to the application and try again.")
    party = _party(handle)
    if party is None:
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")), code=303)
    session = get_session()
    ticket = session.get(PermissionTicket, data["t"])
    client = get_client(session, data["c"])
    if ticket is None or client is None:
        return _error_page("This sign-in link is not valid.")
    needed, requested = _needed_claims(ticket, client)
    allow_form_target(data["r"])  # allow or refuse, the form's answer redirects there
    settings = get_settings()
    return render_template(
        "grant/consent.html",
        party=party,
        client=client,
        owner=ticket.owner,
        requested=requested,
        needed=_needed_items(needed, party),
        remember_days=max(1, settings.pct_lifetime // 86400),
        providers=settings.identity_providers,
        here=request.full_path.rstrip("?"),
        interaction=handle,
        redirect_uri=data["r"],
    )


def _user_claims(user: Any) -> dict[str, Any]:
    """The account's claims, with ``sub`` = the user name (this AS is the issuer)."""
    claims = dict(user.claims or {})
    claims["sub"] = user.username
    return claims


@bp.post("/uma/claims/consent")
def consent() -> Any:
    """The person allows (releasing the ticked claims) or refuses; 303 back to the client
    either way (G-47, G-48, O-54)."""
    handle = request.form.get("interaction")
    data = _load(handle)
    if data is None or handle is None:
        return _error_page("This sign-in link expired or is not valid. Go back to the application and try again.")
    uri, state = data["r"], data["s"]
    party = _party(handle)
    if party is None:
        return _error_page("You are no longer signed in. Go back to the application and try again.")
    session = get_session()
    if request.form.get("decision") != "allow":
        forget_upstream_party(party.upstream)
        session.commit()
        return _back(uri, [("error", "access_denied"), ("error_description", "The user refused.")], state)
    ticket = session.get(PermissionTicket, data["t"])
    client = get_client(session, data["c"])
    if ticket is None or client is None:
        return _error_page("This sign-in link is not valid.")
    # What is needed is worked out again from the ticket: the form only says which to share.
    needed, requested = _needed_claims(ticket, client)
    chosen = set(request.form.getlist("claim"))
    released = [item.name for item in _needed_items(needed, party) if item.usable and item.name in chosen]
    remember = request.form.get("remember") == "yes"
    marked = session.execute(
        update(PermissionTicket)
        .where(PermissionTicket.id == data["t"], PermissionTicket.continued_at.is_(None))
        .values(continued_at=now())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if marked.rowcount != 1:
        return _back(
            uri, [("error", "invalid_request"), ("error_description", "This interaction was already completed.")], state
        )
    settings = get_settings()
    raw, successor = issue_ticket(
        session,
        owner=ticket.owner,
        rs_client_id=ticket.rs_client_id,
        permissions=ticket.permissions,
        lifetime=settings.ticket_lifetime,
        predecessor=ticket,
        client_id=data["c"],
        requesting_party=party.party_id,
        claims={name: party.claims[name] for name in released},
        claim_sources={name: {**party.sources.get(name, {}), "remember": remember} for name in released},
        signed_in_party=party.party_id,
    )
    successor.pct_id = ticket.pct_id
    session.add(successor)
    audit.record_decision(
        session,
        owner=ticket.owner,
        requesting_party=party.party_id,
        client_id=data["c"],
        requested=[(resource.id, scopes) for resource, scopes in requested],
        outcome="claims_released",
        reasons=[],
        policy_version=None,
        claims=released,
    )
    forget_upstream_party(party.upstream)
    session.commit()
    return _back(uri, [("ticket", raw)], state)
