"""Permission tickets: issue, redeem exactly once (G-57…G-63, F-35).

A ticket is ``secrets.token_urlsafe(32)`` (256 bits, G-57); the database keeps
only its SHA-256. :func:`redeem_ticket` consumes a ticket with one conditional
``UPDATE ... WHERE consumed = false AND expires_at > now`` and commits (or its
caller does), so of
two processes presenting the same ticket at once exactly one gets the row
(G-59, G-60). The UMA grant uses :func:`issue_ticket` with ``predecessor`` to
rotate tickets on ``need_info`` / ``request_submitted``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, update
from sqlmodel import Session

from ..db import policy_set_version_column, remember_policy_set_version
from ..models import PermissionTicket
from ..observability import count_token
from ..security import hash_token, new_token, now

#: A ticket's stored values: the ORM object, or the read-only row :func:`redeem_ticket` returns
#: (the same names as attributes).
TicketValues = PermissionTicket | Row[Any]


def issue_ticket(
    session: Session,
    *,
    owner: str,
    rs_client_id: str,
    permissions: list[dict[str, Any]],
    lifetime: int,
    predecessor: TicketValues | None = None,
    client_id: str | None = None,
    requesting_party: str | None = None,
    claims: dict[str, Any] | None = None,
    claim_sources: dict[str, Any] | None = None,
    signed_in_party: str | None = None,
) -> tuple[str, PermissionTicket]:
    """Create a ticket; returns ``(raw_ticket, row)``. The caller commits.

    With ``predecessor`` the new ticket inherits owner, RS, permissions, bound
    client, requesting party and accumulated claims, overridden by the
    arguments given (ticket rotation, §1.5 of the digest), and the party who signed in at
    the claims interaction.
    """
    if predecessor is not None:
        signed_in_party = signed_in_party or predecessor.signed_in_party
        client_id = client_id or predecessor.client_id
        requesting_party = requesting_party or predecessor.requesting_party
        claims = {**predecessor.claims, **(claims or {})}
        claim_sources = {**predecessor.claim_sources, **(claim_sources or {})}
    raw = new_token()
    issued = now()
    row = PermissionTicket(
        ticket_hash=hash_token(raw),
        owner=owner,
        rs_client_id=rs_client_id,
        permissions=[
            {"resource_id": p["resource_id"], "resource_scopes": list(p["resource_scopes"])} for p in permissions
        ],
        client_id=client_id,
        requesting_party=requesting_party,
        claims=dict(claims or {}),
        claim_sources=dict(claim_sources or {}),
        predecessor_id=predecessor.id if predecessor is not None else None,
        signed_in_party=signed_in_party,
        created_at=issued,
        expires_at=issued + lifetime,
    )
    session.add(row)
    session.flush()
    count_token("permission_ticket")
    return raw, row


# Built once, with bound parameters: building the statement at each call cost about 5 % of a
# grant's CPU (in-process profile of bench/server.py's grant; figure in docs/benchmarks.md).
# A Core statement on the table, run on the session's connection: the ORM's bulk-update path
# (an entity loaded and kept in the identity map) cost about 5 % more of the grant's CPU.
_TICKETS = PermissionTicket.__table__  # type: ignore[attr-defined]
_REDEEM = (
    update(_TICKETS)
    .where(
        _TICKETS.c.ticket_hash == bindparam("digest"),
        _TICKETS.c.consumed.is_(False),
        _TICKETS.c.expires_at > bindparam("at"),
    )
    .values(consumed=True, consumed_at=bindparam("at"))
    .returning(*_TICKETS.c, policy_set_version_column().label("policy_set_version"))
)


def redeem_ticket(session: Session, raw_ticket: str, *, commit: bool = True) -> Row[Any] | None:
    """Consume ``raw_ticket`` atomically and return its row, or None.

    None means unknown, already consumed or expired (→ ``invalid_grant``, G-15).
    One statement, ``UPDATE … RETURNING``, which also reads the policy-set version
    for the decision that follows (:func:`app.db.remember_policy_set_version`).
    The row is read-only, with the ticket's columns as attributes (``ticket.owner``…).
    With ``commit`` (the default) the session is committed in both cases (call this
    first in a request): a presented ticket is spent whatever the outcome of the
    request (G-60), and on SQLite no write lock stays held. The UMA grant passes
    ``commit=False`` and commits once, with the RPT and the audit record, or before
    any error it answers — see :mod:`app.grant.token_grant`.
    """
    found = session.connection().execute(_REDEEM, {"digest": hash_token(raw_ticket), "at": now()}).one_or_none()
    if found is not None:
        remember_policy_set_version(session, found.policy_set_version)
    if commit:
        session.commit()
    return found
