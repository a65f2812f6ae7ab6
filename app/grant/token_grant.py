"""The UMA grant at the token endpoint (Grant §3.3; G-14…G-43, G-59…G-61, A5, A6, A16).

Request (form-encoded, client authentication as for any token request —
HTTP Basic, ``client_secret_post``, or ``client_id`` alone for public clients)::

    POST /token
    grant_type=urn:ietf:params:oauth:grant-type:uma-ticket
    &ticket=…                                   REQUIRED (G-15)
    &claim_token=…&claim_token_format=…         OPTIONAL, together (G-16, G-17)
    &pct=…                                      OPTIONAL (G-18)
    &rpt=…                                      OPTIONAL, to upgrade (G-19)
    &scope=…                                    OPTIONAL, space-separated (G-20, G-21)

Answers: ``200`` with the RPT (``access_token``, ``token_type``,
``expires_in``, ``refresh_token``, ``pct``?, ``upgraded``?; never ``scope``,
G-27…G-31), or the errors of :mod:`app.grant.errors`.

Order of the checks:

1. client authentication (``invalid_client``); the client must be registered
   for the grant (``unauthorized_client``, O-10);
2. ``ticket`` present (``invalid_request``), then redeemed atomically — single
   use whatever happens next (G-59, G-60); unknown, used or expired →
   ``invalid_grant`` (G-38), and a second presentation of a used ticket revokes
   the RPTs issued from it (G-61); a ticket bound to another client →
   ``invalid_grant`` (A6);
3. ``claim_token``/``claim_token_format`` both or neither (``invalid_request``, G-16);
4. ``scope`` against the ticket's resources and the client's registered scopes
   (``invalid_scope``, G-39);
5. ``pct``: another client's → ``invalid_grant``; unknown, expired or revoked →
   ignored (A5); else its claims join the process;
6. ``claim_token``: verified (:mod:`.claim_tokens`); a refused token → ``need_info``
   with a new ticket and the reason (G-17, G-40);
7. ``rpt``: this client's RPT for the same owner, RS and party is upgraded on
   success, anything else is ignored (A5, A16);
8. the bridge decides and answers (:mod:`.bridge`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc6749.grants import BaseGrant
from authlib.oauth2.rfc6749.grants.base import TokenEndpointMixin
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .. import get_settings
from ..db import get_session
from ..models import UMA_TICKET_GRANT, Pct, PermissionTicket, Rpt
from ..oauth.tokens import find_pct, revoke_family
from ..policies import get_store
from ..protection.rpt import find_rpt
from ..protection.tickets import TicketValues, redeem_ticket
from ..security import hash_token, now
from .bridge import Assessment, assess, load_resources, requested_scopes, requesting_party_of
from .claim_tokens import ClaimTokenError, verify_claim_token
from .errors import invalid_grant, invalid_request

MAX_PARAM_CHARS = 4096


def _revoke_issued_from(ticket_hash: str) -> None:
    """A used ticket presented again: revoke the RPTs its redemption produced (G-61)."""
    session = get_session()
    row = session.execute(
        select(PermissionTicket).where(PermissionTicket.ticket_hash == ticket_hash, PermissionTicket.consumed.is_(True))
    ).scalar_one_or_none()
    if row is None:
        return
    families = session.execute(select(Rpt.family_id).where(Rpt.ticket_id == row.id).distinct()).scalars().all()
    for family_id in families:  # with their refreshes (one family per redemption, so one lock)
        revoke_family(session, family_id, Rpt)
    session.commit()


def _usable(pct: Pct) -> bool:
    return not pct.revoked and pct.expires_at > now()


class UmaTicketGrant(BaseGrant, TokenEndpointMixin):
    """``urn:ietf:params:oauth:grant-type:uma-ticket`` for confidential and public clients (G-14)."""

    GRANT_TYPE = UMA_TICKET_GRANT
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(description="The client is not registered for the UMA grant.")
        self.request.client = client
        self.validate_ticket(client, self.request.payload.data.get("ticket"))

    def validate_ticket(self, client: Any, raw_ticket: str | None) -> None:
        """Steps 2-7 for an authenticated ``client`` (the Keycloak surface, :mod:`app.keycloak_compat`,
        comes in here with its own client authentication and a ticket it may have issued itself)."""
        data = self.request.payload.data
        session = get_session()
        settings = get_settings()

        if not raw_ticket:
            raise invalid_request("Missing 'ticket'.")
        if len(raw_ticket) > MAX_PARAM_CHARS:
            raise invalid_grant("The ticket is unknown, expired or already used.")
        ticket = redeem_ticket(session, raw_ticket, commit=False)
        if ticket is None:
            session.rollback()
            _revoke_issued_from(hash_token(raw_ticket))
            raise invalid_grant("The ticket is unknown, expired or already used.")
        with spent_on_error(session):
            self._validate_redeemed(client, ticket, data, session, settings)

    def _validate_redeemed(self, client: Any, ticket: TicketValues, data: Any, session: Any, settings: Any) -> None:
        if ticket.client_id is not None and ticket.client_id != client.client_id:
            raise invalid_grant("The ticket belongs to an authorization process of another client.")

        claim_token, claim_format = data.get("claim_token"), data.get("claim_token_format")
        if bool(claim_token) != bool(claim_format):
            raise invalid_request("'claim_token' and 'claim_token_format' must be sent together.")

        resources = load_resources(session, ticket)
        requested = requested_scopes(ticket, resources, data.get("scope"), client)

        claims: dict[str, Any] = {}
        sources: dict[str, Any] = {}
        pct_row: Pct | None = None
        raw_pct = data.get("pct")
        if raw_pct and len(raw_pct) <= MAX_PARAM_CHARS:
            pct = find_pct(session, raw_pct)
            if pct is not None:
                if not pct.check_client(client):
                    raise invalid_grant("The PCT was issued to another client.")
                if _usable(pct):
                    claims.update(pct.claims)
                    sources.update(pct.claim_sources)
                    pct_row = pct
        if pct_row is None and ticket.pct_id is not None:
            # A PCT presented earlier in this process: its claims travel in the ticket already.
            chained = session.get(Pct, ticket.pct_id)
            if chained is not None and chained.check_client(client) and _usable(chained):
                pct_row = chained
        claims.update(ticket.claims)
        sources.update(ticket.claim_sources)
        party_claims, party_sources = self.party_claims()
        claims.update(party_claims)
        sources.update(party_sources)

        problem = None
        if claim_token:
            # Verifying may fetch the issuer's keys over HTTP: hold no write lock meanwhile (SQLite).
            session.commit()
            try:
                verified = verify_claim_token(claim_token, claim_format, settings=settings, client_id=client.client_id)
            except ClaimTokenError as exc:
                problem = str(exc)
            else:
                claims.update(verified.claims)
                sources.update(verified.claim_sources)

        old_rpt = None
        raw_rpt = data.get("rpt")
        if raw_rpt and len(raw_rpt) <= 16 * MAX_PARAM_CHARS:
            old_rpt = find_rpt(session, raw_rpt)

        self.request.uma_assessment = Assessment(
            ticket=ticket,
            client=client,
            requested=requested,
            claims=claims,
            claim_sources=sources,
            pct_claims=dict(pct_row.claims) if pct_row is not None else None,
            pct_id=pct_row.id if pct_row is not None else None,
            old_rpt=old_rpt,
            claim_token_problem=problem,
            requesting_party=requesting_party_of(
                claims,
                sources,
                settings.issuer,
                client.client_id,
                ticket.signed_in_party or (pct_row.subject if pct_row is not None else None),
            ),
        )

    def party_claims(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Verified claims of the requesting party known from the request itself (none here; the
        Keycloak surface's bearer token names one: :mod:`app.keycloak_compat.grant`)."""
        return {}, {}

    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        session = get_session()
        with spent_on_error(session):
            status, body = assess(get_store(), session, get_settings(), self.request.uma_assessment)
        return status, body, self.TOKEN_RESPONSE_HEADER


@contextlib.contextmanager
def spent_on_error(session: Any) -> Iterator[None]:
    """The redeemed ticket stays spent whatever the answer (G-60): the grant commits once on
    success (:func:`.bridge.assess`), and before any error it answers. A database error leaves
    nothing done (rolled back): the ticket can be presented again."""
    try:
        yield
    except SQLAlchemyError:
        raise
    except Exception:
        session.commit()
        raise
