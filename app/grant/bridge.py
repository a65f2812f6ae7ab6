"""The one bridge between the UMA grant and the policy engine.

Ticket + client + verified claims + stored approvals → the policy request
(section 4 of the language page) → :meth:`policy_lang.PolicySet.decide` → the
UMA answer (G-21…G-43)::

    {"permissions": [{"resource": {"id", "owner", "type", "name", "scopes", "description"},
                      "scopes": RequestedScopes(r),            # G-21 with A3
                      "approvals": [{"scope", "answer"}]}],    # the owner's answers for this party
     "claims": {...}, "claim_sources": {name: {"issuer", "format"}},
     "client": {"id", "name", ...registered metadata}, "time": "…Z"}

Decision → answer, in the order of the language page:

=====================  ======================================================
``permit``             200 RPT with every requested scope (G-22)
``need_info``          403 ``need_info``: successor ticket, ``required_claims``,
                       ``redirect_user`` when the claims interaction endpoint
                       can gather the claims (G-40, A10)
``request_submitted``  403 ``request_submitted``: successor ticket, ``interval``;
                       a pending request for the owner (G-42)
``partial``            200 RPT with the granted scopes only (G-23 choice (a))
``deny``               403 ``request_denied`` (G-41)
=====================  ======================================================

Every decision is audited (:mod:`app.audit`) with the rules that made it and
the policy-set version. ``uma policy eval`` runs the same engine on the same
request shape; :func:`policy_request` is a pure function of its inputs.

An issued RPT records what it was decided from (claims, claim sources, policy
version, the policy's bounds). While it lives, introspection and refresh
decide its permissions again the same way (:func:`redecide`), with the policy
set of the version stored now and the owner's current answers, and keep only
what is still granted (G-61, G-76, F-30). Upgrades carry over only what is
still granted too.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

import policy_lang

from .. import audit, notifications
from ..config import Settings
from ..models import OAuthClient, Pct, PendingRequest, PermissionTicket, Resource, Rpt
from ..oauth.clients import cached_client
from ..oauth.grants import spend
from ..observability import count_token
from ..policies import PolicyStore, get_store
from ..protection.rpt import granted_now, issue_rpt, policy_bound, registered_resources, token_response
from ..protection.tickets import TicketValues, issue_ticket
from ..security import hash_token, new_token, now
from .claim_tokens import ID_TOKEN_FORMAT, describe_trusted, trusted_provider_issuers
from .errors import NeedInfo, RequestDenied, RequestSubmitted, invalid_grant, invalid_scope

log = logging.getLogger(__name__)

# -- inputs -------------------------------------------------------------------


def resource_attributes(resource: Resource) -> dict[str, Any]:
    """A registered resource as the policy request's ``resource`` object."""
    data: dict[str, Any] = {"id": resource.id, "owner": resource.owner, "scopes": list(resource.resource_scopes)}
    for key in ("type", "name", "description"):
        value = getattr(resource, key)
        if isinstance(value, str):
            data[key] = value
    return data


def client_attributes(client: OAuthClient) -> dict[str, Any]:
    """``client``: ``id``, ``name`` and the client's registered metadata (RFC 7591 members and extras)."""
    data = client.to_public_dict()
    data["id"] = client.client_id
    data["name"] = client.client_name
    return data


def requesting_party_of(
    claims: dict[str, Any], sources: dict[str, Any], as_issuer: str, client_id: str, signed_in: str | None = None
) -> str:
    """A stable subject for the requesting party.

    ``sub`` (qualified by its issuer unless it is this AS, whose ``sub`` is the
    local user name), else the party who signed in at the claims interaction
    (``signed_in``: who asks is known without releasing a claim for it), else
    the email, else — no person known — the client itself (``client:<id>``).
    Long values are hashed to fit the columns.
    """
    claim = claims.get("sub")
    if isinstance(claim, str) and claim:
        source = sources.get("sub") if isinstance(sources.get("sub"), dict) else {}
        return party_name(source.get("issuer"), claim, as_issuer)
    if signed_in:
        return signed_in
    claim = claims.get("email")
    if isinstance(claim, str) and claim:
        source = sources.get("email") if isinstance(sources.get("email"), dict) else {}
        return party_name(source.get("issuer"), "email:" + claim, as_issuer)
    return party_name(None, f"client:{client_id}", as_issuer)


def party_name(issuer: str | None, subject: str, as_issuer: str) -> str:
    """``subject`` qualified by its issuer (``issuer#subject``) unless the issuer is this AS; a
    value longer than the columns' 255 characters becomes its SHA-256."""
    value = subject if issuer in (None, as_issuer) else f"{issuer}#{subject}"
    if len(value) > 255:
        value = "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return value


def requested_scopes(
    ticket: TicketValues, resources: dict[str, Resource], scope_param: str | None, client: OAuthClient
) -> list[tuple[Resource, list[str]]]:
    """RequestedScopes(r) = TicketScopes(r) ∪ (RegisteredScopes ∩ RequestedScopes ∩ Available(r)) (G-21, A3).

    A ``scope`` value that no ticket resource offers, or that the client is not
    pre-registered for, is ``invalid_scope`` (G-39, G-20). Resources deregistered
    since the ticket was issued, and scopes no longer registered, are left out
    (F-30); a ticket with nothing left is ``invalid_grant``.
    """
    asked = list(dict.fromkeys(scope_to_list(scope_param or "") or []))
    registered = set(scope_to_list(client.scope or "") or [])
    available_any = {s for r in resources.values() for s in r.resource_scopes}
    for s in asked:
        if s not in available_any:
            raise invalid_scope(f"Scope {s[:64]} matches no available scope of the ticket's resources.")
        if s not in registered:
            raise invalid_scope(f"The client is not registered for scope {s[:64]}.")
    out = []
    for perm in ticket.permissions:
        resource = resources.get(perm["resource_id"])
        if resource is None:
            continue
        available = resource.resource_scopes
        scopes = [s for s in perm.get("resource_scopes", []) if s in available]
        scopes += [s for s in asked if s in available and s not in scopes]
        out.append((resource, scopes))
    if not out:
        raise invalid_grant("The ticket's resources are no longer registered.")
    return out


def load_approvals(
    session: Session, owner: str, requesting_party: str, resource_ids: list[str]
) -> dict[str, list[dict[str, str]]]:
    """The owner's latest answer per (resource, scope) for this requesting party."""
    rows = session.execute(
        select(PendingRequest)
        .where(
            PendingRequest.owner == owner,
            PendingRequest.requesting_party == requesting_party,
            PendingRequest.resource_id.in_(resource_ids),
            PendingRequest.status.in_(("approved", "denied")),
        )
        .order_by(PendingRequest.decided_at.desc(), PendingRequest.id.desc())
    ).scalars()
    answers: dict[str, dict[str, str]] = {}
    for row in rows:
        latest = answers.setdefault(row.resource_id, {})
        approved = set(row.scopes_approved) if row.status == "approved" else set()
        for scope in row.scopes_requested:
            latest.setdefault(scope, "approved" if scope in approved else "denied")
    return {rid: [{"scope": s, "answer": a} for s, a in per.items()] for rid, per in answers.items()}


def iso_now(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def policy_request(
    requested: list[tuple[Resource, list[str]]],
    client: OAuthClient,
    claims: dict[str, Any],
    claim_sources: dict[str, Any],
    approvals: dict[str, list[dict[str, str]]],
    time: str,
) -> dict[str, Any]:
    """The section-4 request (``permissions`` form) for one token request."""
    return {
        "permissions": [
            {
                "resource": resource_attributes(resource),
                "scopes": list(scopes),
                "approvals": approvals.get(resource.id, []),
            }
            for resource, scopes in requested
        ],
        "claims": dict(claims),
        "claim_sources": dict(claim_sources),
        "client": client_attributes(client),
        "time": time,
    }


# -- the assessment -----------------------------------------------------------


@dataclass
class Assessment:
    """Everything the bridge needs for one token request (or a claims-interaction preview)."""

    ticket: TicketValues
    client: OAuthClient
    requested: list[tuple[Resource, list[str]]]
    claims: dict[str, Any] = field(default_factory=dict)
    claim_sources: dict[str, Any] = field(default_factory=dict)
    #: Claims of the PCT of this process (presented now or earlier), to tell whether a new PCT is worth issuing.
    pct_claims: dict[str, Any] | None = None
    pct_id: int | None = None
    old_rpt: Rpt | None = None
    #: Set when a pushed claim token was refused: the answer is need_info whatever the decision.
    claim_token_problem: str | None = None
    requesting_party: str = ""


def load_resources(session: Session, ticket: TicketValues) -> dict[str, Resource]:
    ids = [p["resource_id"] for p in ticket.permissions]
    if not ids:
        return {}
    return registered_resources(session, ids, ticket.owner, ticket.rs_client_id)


def decide(store: PolicyStore, session: Session, a: Assessment) -> tuple[policy_lang.Decision, int, dict[str, Any]]:
    """Build the policy request and decide it with the set in use; (decision, version, request)."""
    return _decide(store, session, a.ticket.owner, a.requesting_party, a.requested, a.client, a.claims, a.claim_sources)


def _decide(
    store: PolicyStore,
    session: Session,
    owner: str,
    requesting_party: str,
    requested: list[tuple[Resource, list[str]]],
    client: OAuthClient,
    claims: dict[str, Any],
    claim_sources: dict[str, Any],
) -> tuple[policy_lang.Decision, int, dict[str, Any]]:
    """The one way a decision is made: the owner's current answers for this party (read only when
    an ``ask`` rule can apply), the request of section 4, the policy set in use in this process
    (a newer version stored by another process wakes its compile and counts here within
    ``policy_reload_interval`` plus that compile: :meth:`app.policies.PolicyStore.latest`)."""
    in_use = store.latest(session)
    approvals = {}
    if in_use.may_ask(owner):
        approvals = load_approvals(session, owner, requesting_party, [r.id for r, _ in requested])
    request = policy_request(requested, client, claims, claim_sources, approvals, iso_now())
    return in_use.policy_set.decide(request), in_use.version, request


def _epoch(value: str | None) -> int | None:
    if value is None:
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def _can_interact(settings: Settings, client: OAuthClient, required: list[dict[str, Any]]) -> bool:
    """The claims interaction endpoint gathers claims this AS issues (its local users' claims)
    and the ID-token claims of the identity providers a requesting party can sign in with there."""
    if not client.claims_redirect_uris:
        return False
    providers = set(trusted_provider_issuers(settings))
    for member in required:
        issuers = member.get("issuer")
        if not issuers or settings.issuer in issuers:
            continue
        formats = member.get("claim_token_format")
        if not providers.intersection(issuers) or (formats and ID_TOKEN_FORMAT not in formats):
            return False
    return True


def _successor(session: Session, settings: Settings, a: Assessment) -> tuple[str, PermissionTicket]:
    """The next ticket of this process: same permissions, the claims so far, the PCT link,
    bound to the client (G-43, A6)."""
    raw, row = issue_ticket(
        session,
        owner=a.ticket.owner,
        rs_client_id=a.ticket.rs_client_id,
        permissions=a.ticket.permissions,
        lifetime=settings.ticket_lifetime,
        predecessor=a.ticket,
        client_id=a.client.client_id,
        requesting_party=a.requesting_party,
        claims=a.claims,
        claim_sources=a.claim_sources,
    )
    row.pct_id = a.pct_id
    session.add(row)
    return raw, row


def _submit(
    session: Session, settings: Settings, a: Assessment, submitted: list[dict[str, Any]], ticket_id: int | None
) -> None:
    """Record (or refresh) the owner's pending requests for the waiting scopes (G-42); a new one
    is also written to the outbox of the owner's notifications, in the same transaction (issue 15
    point 4: sent later, by :mod:`app.notifications`, never while the client waits)."""
    at = now()
    for item in submitted:
        row = (
            session.execute(
                select(PendingRequest).where(
                    PendingRequest.owner == a.ticket.owner,
                    PendingRequest.requesting_party == a.requesting_party,
                    PendingRequest.resource_id == item["resource_id"],
                    PendingRequest.status == "pending",
                )
            )
            .scalars()
            .first()
        )
        if row is None:
            row = PendingRequest(
                owner=a.ticket.owner,
                requesting_party=a.requesting_party,
                client_id=a.client.client_id,
                rs_client_id=a.ticket.rs_client_id,
                resource_id=item["resource_id"],
                scopes_requested=list(item["scopes"]),
                ticket_id=ticket_id,
                created_at=at,
                updated_at=at,
            )
            session.add(row)
            notifications.request_pending(session, row, settings.issuer)
        else:
            row.scopes_requested = list(dict.fromkeys([*row.scopes_requested, *item["scopes"]]))
            row.client_id = a.client.client_id
            row.ticket_id = ticket_id
            row.updated_at = at
            session.add(row)


def _merge_upgrade(granted: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Union per resource; where both have an expiry, the earlier one (G-36)."""
    merged: dict[str, dict[str, Any]] = {}
    for p in granted:
        merged[p["resource_id"]] = {**p, "resource_scopes": list(p["resource_scopes"])}
    for p in old:
        cur = merged.get(p["resource_id"])
        if cur is None:
            merged[p["resource_id"]] = {
                "resource_id": p["resource_id"],
                "resource_scopes": list(p["resource_scopes"]),
                "exp": p.get("exp"),
            }
            continue
        cur["resource_scopes"] = list(dict.fromkeys([*cur["resource_scopes"], *p["resource_scopes"]]))
        exps = [e for e in (cur.get("exp"), p.get("exp")) if e is not None]
        cur["exp"] = min(exps) if exps else None
    return list(merged.values())


def _contains(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> bool:
    have = {p["resource_id"]: set(p["resource_scopes"]) for p in new}
    return all(set(p.get("resource_scopes", [])) <= have.get(p["resource_id"], set()) for p in old)


def _upgrade_source(a: Assessment) -> Rpt | None:
    """The presented RPT if it may be upgraded: this AS's, same client, owner, RS and party (G-36, A5)."""
    old = a.old_rpt
    if old is None or old.revoked:
        return None
    if (old.client_id, old.owner, old.rs_client_id) != (a.client.client_id, a.ticket.owner, a.ticket.rs_client_id):
        return None
    if old.requesting_party and old.requesting_party != a.requesting_party:
        return None
    return old


def rememberable(claims: dict[str, Any], sources: dict[str, Any]) -> dict[str, Any]:
    """The claims a PCT may keep: all but those released at the claims interaction without the
    party's agreement that this server remember them for the client (G-67; source
    ``"remember": false``, :mod:`.interaction`)."""
    return {
        name: value
        for name, value in claims.items()
        if not (isinstance(sources.get(name), dict) and sources[name].get("remember") is False)
    }


def _issue_pct(session: Session, settings: Settings, a: Assessment) -> str | None:
    """A PCT when this process gathered claims that may be remembered and that its PCT (if any)
    did not already hold (G-29, G-64, G-67)."""
    kept = rememberable(a.claims, a.claim_sources)
    if not kept or (a.pct_claims is not None and a.pct_claims == kept):
        return None
    raw = new_token()
    issued = now()
    session.add(
        Pct(
            pct_hash=hash_token(raw),
            client_id=a.client.client_id,
            subject=a.requesting_party,
            claims=kept,
            claim_sources={name: a.claim_sources[name] for name in kept if name in a.claim_sources},
            created_at=issued,
            expires_at=issued + settings.pct_lifetime,
        )
    )
    count_token("pct")
    return raw


def assess(store: PolicyStore, session: Session, settings: Settings, a: Assessment) -> tuple[int, dict[str, Any]]:
    """Decide and turn the decision into the UMA answer; returns ``(200, body)`` or raises a UMA error."""
    try:
        decision, version, _request = decide(store, session, a)
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception(
            "the policy engine failed on a token request (owner %s); answering request_denied", a.ticket.owner
        )
        raise RequestDenied("The request could not be decided; nothing is granted.") from None
    outcome = decision.decision
    if a.claim_token_problem is not None:
        outcome = "need_info"
    audit.record_decision(
        session,
        owner=a.ticket.owner,
        requesting_party=a.requesting_party,
        client_id=a.client.client_id,
        requested=[(r.id, scopes) for r, scopes in a.requested],
        outcome=outcome,
        reasons=decision.reasons,
        policy_version=version,
        claims=list(a.claims),
    )
    if all(not scopes for _, scopes in a.requested):
        session.commit()
        raise RequestDenied("The ticket asks for no scope and the request added none.")

    if outcome == "need_info":
        required = list(decision.required_claims) if decision.decision == "need_info" else []
        if a.claim_token_problem is not None and not required:
            required = describe_trusted(settings)
        redirect = settings.url("/uma/claims") if _can_interact(settings, a.client, required) else None
        if not required and redirect is None:
            # Nothing the client could do would change the answer.
            session.commit()
            raise RequestDenied(a.claim_token_problem or "The requested permissions cannot be granted.")
        ticket, _ = _successor(session, settings, a)
        session.commit()
        description = (
            f"The claim token was refused: {a.claim_token_problem}."
            if a.claim_token_problem
            else "More claims are needed: " + ", ".join(str(m.get("name")) for m in required if m.get("name")) + "."
        )
        raise NeedInfo(description, ticket=ticket, required_claims=required, redirect_user=redirect)

    if outcome == "request_submitted":
        ticket, successor = _successor(session, settings, a)
        _submit(session, settings, a, decision.submitted, successor.id)
        session.commit()
        raise RequestSubmitted(
            "The resource owner has been asked; poll again with the new ticket.",
            ticket=ticket,
            interval=settings.request_submitted_interval,
        )

    if outcome in ("permit", "partial"):
        granted = [
            {"resource_id": g["resource_id"], "resource_scopes": list(g["scopes"]), "exp": _epoch(g.get("expires_at"))}
            for g in decision.granted
            if g["scopes"]
        ]
        claims, claim_sources = a.claims, a.claim_sources
        upgraded = None
        old = _upgrade_source(a)
        if old is not None:
            carried = granted_now(session, old)
            granted = _merge_upgrade(granted, carried)
            upgraded = _contains(granted, old.permissions)
            # The same requesting party's verified claims, so the carried permissions can be decided again.
            claims = {**old.basis.get("claims", {}), **claims}
            claim_sources = {**old.basis.get("claim_sources", {}), **claim_sources}
        pct = _issue_pct(session, settings, a)
        issued = issue_rpt(
            client_id=a.client.client_id,
            owner=a.ticket.owner,
            rs_client_id=a.ticket.rs_client_id,
            permissions=granted,
            requesting_party=a.requesting_party,
            ticket_id=a.ticket.id,
            basis={"claims": dict(claims), "claim_sources": dict(claim_sources), "policy_version": version},
            with_refresh_token=settings.rpt_refresh_lifetime > 0 and a.client.check_grant_type("refresh_token"),
            session=session,
            settings=settings,
            commit=False,
        )
        if old is not None:
            old.revoked = True
            session.add(old)
        # The one commit of a grant: the ticket spent, the audit records, the RPT (and PCT, upgrade).
        session.commit()
        body = token_response(issued)
        if pct:
            body["pct"] = pct
        if upgraded:
            body["upgraded"] = True
        return 200, body

    session.commit()
    raise RequestDenied("The resource owner's policies do not grant the requested permissions.")


# -- deciding again while an RPT lives (G-61, G-76, F-30) -----------------------


def redecide(session: Session, row: Rpt, held: list[tuple[dict[str, Any], Resource]]) -> list[dict[str, Any]]:
    """The part of ``held`` (an RPT's permissions on resources still registered) the current policy grants.

    Decided like a token request (:func:`_decide`): the claims recorded when the RPT was
    issued, its client, the owner's answers for its requesting party now (a withdrawn
    approval counts), the policy set of the version stored now. A permission keeps only
    the scopes granted again; its ``exp`` is its policy bound: the earlier of the one
    recorded at issue and the new one (``until``; ``for`` counts from now), None when
    neither has one. Never more than was issued; an engine failure grants nothing (fail
    closed). The engine costs microseconds, so this runs at every introspection rather
    than tracking what changed.
    """
    client = cached_client(session, row.client_id)
    if client is None:
        return []
    try:
        decision, _version, _request = _decide(
            get_store(),
            session,
            row.owner,
            row.requesting_party or "",
            [(resource, list(p["resource_scopes"])) for p, resource in held],
            client,
            row.basis.get("claims", {}),
            row.basis.get("claim_sources", {}),
        )
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("the policy engine failed deciding RPT %s again; it grants nothing", row.jti)
        return []
    again = {g["resource_id"]: g for g in decision.granted}
    at = now()
    live = []
    for p, _resource in held:
        granted = again.get(p["resource_id"])
        if granted is None:
            continue
        scopes = [s for s in p["resource_scopes"] if s in granted["scopes"]]
        bounds = [b for b in (policy_bound(row, p), _epoch(granted.get("expires_at"))) if b is not None]
        bound = min(bounds, default=None)
        if scopes and (bound is None or bound > at):
            live.append({**p, "resource_scopes": scopes, "exp": bound})
    return live


def refresh_rpt(session: Session, settings: Settings, row: Rpt, scope: str | None) -> dict[str, Any]:
    """A new RPT for a spent refresh token (G-53, G-54, O-47): the permissions the current
    policy still grants (:func:`granted_now`), narrowed to ``scope`` when given; nothing the
    policy no longer grants is carried over. No new assessment (G-55): nothing is added, no
    claims are asked for, no request goes to the owner. The new RPT joins the old one's
    family with its basis and policy bounds; its refresh token keeps the old expiry.
    The old refresh token is spent (under its family's lock) after the decision and in the
    transaction that issues the new RPT.
    """
    permissions = granted_now(session, row)
    spend(row)
    if scope:  # the grant checked that it only narrows (A15)
        wanted = set(scope_to_list(scope))
        permissions = [
            {**p, "resource_scopes": [s for s in p["resource_scopes"] if s in wanted]}
            for p in permissions
            if wanted & set(p["resource_scopes"])
        ]
    if not permissions:
        session.commit()
        raise invalid_grant("The policy no longer grants any of the RPT's permissions.")
    issued = issue_rpt(
        client_id=row.client_id,
        owner=row.owner,
        rs_client_id=row.rs_client_id,
        permissions=permissions,
        requesting_party=row.requesting_party,
        ticket_id=row.ticket_id,
        basis={**row.basis, "policy_version": get_store().latest(session).version},
        family_id=row.family_id,
        with_refresh_token=True,
        refresh_expires_at=row.refresh_expires_at,
        session=session,
        settings=settings,
    )
    return token_response(issued)
