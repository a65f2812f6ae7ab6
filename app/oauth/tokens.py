"""OAuth access/refresh tokens (PATs included): issue, look up, revoke; refresh families.

Tokens are random (256 bits) and stored as SHA-256 digests in ``tokens``.
A token whose scope contains ``uma_protection`` is a PAT for the pair
(``Token.owner``, ``Token.client_id``) (F-05).
"""

from __future__ import annotations

import hashlib
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import func, select, update
from sqlmodel import Session

from ..config import Settings
from ..models import PROTECTION_SCOPE, Pct, Rpt, Token
from ..observability import count_token
from ..security import hash_token, new_token, now


def count_issued(scope: str, with_refresh: bool) -> None:
    """Count an issued OAuth token in ``uma_tokens_issued_total`` (a PAT when its scope has
    ``uma_protection``), and its refresh token."""
    count_token("pat" if PROTECTION_SCOPE in scope_to_list(scope) else "access_token")
    if with_refresh:
        count_token("refresh_token")


def access_lifetime(settings: Settings, scope: str) -> int:
    return settings.pat_lifetime if PROTECTION_SCOPE in scope_to_list(scope) else settings.access_token_lifetime


def issue_token(
    session: Session,
    settings: Settings,
    *,
    client_id: str,
    subject: str | None,
    scope: str,
    grant_type: str,
    include_refresh: bool,
    family_id: str | None = None,
) -> tuple[dict[str, Any], Token]:
    """Create a token row (the caller commits); returns the RFC 6749 §5.1 body and the row."""
    access = new_token()
    refresh = new_token() if include_refresh else None
    issued = now()
    lifetime = access_lifetime(settings, scope)
    row = Token(
        access_token_hash=hash_token(access),
        refresh_token_hash=hash_token(refresh) if refresh else None,
        client_id=client_id,
        subject=subject,
        scope=scope,
        grant_type=grant_type,
        family_id=family_id or new_token()[:43],
        issued_at=issued,
        expires_at=issued + lifetime,
        refresh_expires_at=issued + settings.refresh_token_lifetime if refresh else None,
    )
    session.add(row)
    session.flush()
    count_issued(scope, refresh is not None)
    body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": lifetime}
    if scope:
        body["scope"] = scope
    if refresh:
        body["refresh_token"] = refresh
    return body, row


def find_access_token(session: Session, raw: str) -> Token | None:
    return session.execute(select(Token).where(Token.access_token_hash == hash_token(raw))).scalar_one_or_none()


def find_refresh_token(session: Session, raw: str) -> Token | None:
    return session.execute(select(Token).where(Token.refresh_token_hash == hash_token(raw))).scalar_one_or_none()


def find_pct(session: Session, raw: str) -> Pct | None:
    return session.execute(select(Pct).where(Pct.pct_hash == hash_token(raw))).scalar_one_or_none()


def lock_family(session: Session, family_id: str) -> None:
    """Take the lock of a refresh-rotation family for the rest of the transaction.

    Every change to several tokens of one family (spending a refresh token and
    issuing its successor, revoking the family) takes this one lock first, so two
    of them never interleave: a reuse revokes the successor a concurrent refresh
    issues, and no two transactions lock the family's rows in different orders
    (concurrent refresh replays deadlocked on PostgreSQL before, O-47). A
    PostgreSQL advisory lock keyed by the family; SQLite has one writer at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(family_id.encode()).digest()[:8], "big", signed=True)
        session.execute(select(func.pg_advisory_xact_lock(key)))


def revoke_family(session: Session, family_id: str, model: type[Token] | type[Rpt] = Token) -> None:
    """Revoke every token of a refresh-rotation family (reuse detection, O-47); the caller commits."""
    lock_family(session, family_id)
    session.execute(
        update(model)
        .where(model.family_id == family_id, model.revoked.is_(False))
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )


def spend_refresh_token(session: Session, row: Token | Rpt) -> bool:
    """Spend ``row``'s refresh token for one refresh, atomically (O-47).

    True: this call spent it (the token is revoked and marked rotated; the caller
    issues the successor in the same transaction, under the family lock). False:
    it was spent or revoked already; a spent one presented again is reuse, and
    its whole family is revoked (committed).
    """
    model = type(row)
    lock_family(session, row.family_id)
    spent = session.execute(
        update(model)
        .where(model.id == row.id, model.rotated.is_(False), model.revoked.is_(False))
        .values(rotated=True, revoked=True)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount == 1:
        return True
    if session.execute(select(model.rotated).where(model.id == row.id)).scalar_one():
        revoke_family(session, row.family_id, model)
    session.commit()
    return False
