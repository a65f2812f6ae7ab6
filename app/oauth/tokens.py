"""OAuth access/refresh tokens (PATs included): issue, look up, revoke.

Tokens are random (256 bits) and stored as SHA-256 digests in ``tokens``.
A token whose scope contains ``uma_protection`` is a PAT for the pair
(``Token.owner``, ``Token.client_id``) (F-05).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from sqlalchemy import select, update
from sqlmodel import Session

from ..config import Settings
from ..models import PROTECTION_SCOPE, Pct, Token
from ..security import hash_token, new_token, now


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


def revoke_family(session: Session, family_id: str) -> None:
    """Revoke every token of a refresh-rotation chain (reuse detection, O-47)."""
    session.execute(
        update(Token)
        .where(Token.family_id == family_id)
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )


def spend_refresh_token(session: Session, row: Token) -> bool:
    """Mark a refresh token as used by a refresh, atomically; False if it already was."""
    result = session.execute(
        update(Token)
        .where(Token.id == row.id, Token.rotated.is_(False), Token.revoked.is_(False))
        .values(rotated=True, revoked=True)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
