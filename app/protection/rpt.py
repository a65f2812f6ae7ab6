"""RPT storage: issue, introspect, refresh, revoke (G-03, G-27…G-32, G-53…G-56, F-38…F-42).

An RPT is either a JWT signed (RS256) by the active signing key — verifiable
against ``/jwks`` — or an opaque random string (setting ``rpt_format``). Both
are recorded in ``rpts`` (SHA-256 of the token, ``jti``) so they can be
introspected and revoked.

JWT claims: ``iss``, ``aud`` (the RS client id, O-48), ``azp`` (the client),
``sub`` (the requesting party, when known), ``iat``, ``exp``, ``jti`` and
``permissions`` (``resource_id``, ``resource_scopes``, ``iat``, ``exp``).

The UMA grant calls :func:`issue_rpt` and builds its token response from
:func:`token_response` (adding ``pct`` / ``upgraded``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from sqlalchemy import select, update
from sqlmodel import Session

from ..config import Settings
from ..models import Resource, Rpt
from ..oauth.keys import ALGORITHM, active_key, private_key, verification_key
from ..security import hash_token, new_token, now


@dataclass
class IssuedRpt:
    """An RPT just issued: the token (shown once), its row, and the refresh token if any."""

    token: str
    row: Rpt
    refresh_token: str | None
    expires_in: int


def _context(session: Session | None, settings: Settings | None) -> tuple[Session, Settings]:
    if session is None or settings is None:
        from .. import get_settings
        from ..db import get_session

        session = session or get_session()
        settings = settings or get_settings()
    return session, settings


def _normalise_permissions(permissions: list[dict[str, Any]], issued: int, expires_at: int) -> list[dict[str, Any]]:
    out = []
    for p in permissions:
        exp = p.get("exp")
        exp = expires_at if exp is None else min(int(exp), expires_at)
        out.append(
            {
                "resource_id": p["resource_id"],
                "resource_scopes": list(dict.fromkeys(p.get("resource_scopes", []))),
                "iat": int(p.get("iat", issued)),
                "exp": exp,
            }
        )
    return out


def issue_rpt(
    *,
    client_id: str,
    owner: str,
    rs_client_id: str,
    permissions: list[dict[str, Any]],
    requesting_party: str | None = None,
    ticket_id: int | None = None,
    lifetime: int | None = None,
    with_refresh_token: bool | None = None,
    refresh_expires_at: int | None = None,
    session: Session | None = None,
    settings: Settings | None = None,
) -> IssuedRpt:
    """Issue and store an RPT for one (client, requesting party, owner, RS) (G-03); commits.

    ``permissions``: ``[{"resource_id", "resource_scopes", "exp"?: epoch or None}]``;
    each permission's ``exp`` is capped by the RPT's expiry (``lifetime``, default
    the ``rpt_lifetime`` setting). A refresh token is added when
    ``with_refresh_token`` (default: ``rpt_refresh_lifetime`` > 0).
    """
    session, settings = _context(session, settings)
    issued = now()
    expires_at = issued + (lifetime if lifetime is not None else settings.rpt_lifetime)
    perms = _normalise_permissions(permissions, issued, expires_at)
    jti = secrets.token_urlsafe(24)
    if settings.rpt_format == "jwt":
        key = active_key(session)
        claims: dict[str, Any] = {
            "iss": settings.issuer,
            "aud": rs_client_id,
            "azp": client_id,
            "iat": issued,
            "exp": expires_at,
            "jti": jti,
            "permissions": perms,
        }
        if requesting_party:
            claims["sub"] = requesting_party
        token = jwt.encode(claims, private_key(key), algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})
    else:
        token = new_token()
    if with_refresh_token is None:
        with_refresh_token = settings.rpt_refresh_lifetime > 0
    refresh = new_token() if with_refresh_token else None
    row = Rpt(
        jti=jti,
        token_hash=hash_token(token),
        format=settings.rpt_format,
        client_id=client_id,
        requesting_party=requesting_party,
        owner=owner,
        rs_client_id=rs_client_id,
        permissions=perms,
        issued_at=issued,
        expires_at=expires_at,
        refresh_token_hash=hash_token(refresh) if refresh else None,
        refresh_expires_at=(refresh_expires_at or issued + settings.rpt_refresh_lifetime) if refresh else None,
        ticket_id=ticket_id,
    )
    session.add(row)
    session.commit()
    return IssuedRpt(token=token, row=row, refresh_token=refresh, expires_in=expires_at - issued)


def token_response(issued: IssuedRpt) -> dict[str, Any]:
    """The RFC 6749 §5.1 body for an RPT (G-27, G-31: no ``scope``)."""
    body: dict[str, Any] = {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}
    if issued.refresh_token:
        body["refresh_token"] = issued.refresh_token
    return body


def find_rpt(session: Session, token: str) -> Rpt | None:
    return session.execute(select(Rpt).where(Rpt.token_hash == hash_token(token))).scalar_one_or_none()


def find_rpt_by_refresh_token(session: Session, refresh_token: str) -> Rpt | None:
    return session.execute(select(Rpt).where(Rpt.refresh_token_hash == hash_token(refresh_token))).scalar_one_or_none()


def current_permissions(session: Session, row: Rpt, at: int | None = None) -> list[dict[str, Any]]:
    """The RPT's permissions still valid now: not expired, on resources still registered
    by its owner and RS, with scopes still registered for them (F-30, F-42, G-36)."""
    at = now() if at is None else at
    ids = [p["resource_id"] for p in row.permissions]
    if not ids:
        return []
    resources = {
        r.id: r
        for r in session.execute(
            select(Resource).where(
                Resource.id.in_(ids), Resource.owner == row.owner, Resource.rs_client_id == row.rs_client_id
            )
        ).scalars()
    }
    valid = []
    for p in row.permissions:
        resource = resources.get(p["resource_id"])
        if resource is None or p.get("exp", row.expires_at) <= at:
            continue
        scopes = [s for s in p["resource_scopes"] if s in resource.resource_scopes]
        valid.append({**p, "resource_scopes": scopes})
    return valid


def _signature_ok(session: Session, settings: Settings, row: Rpt, token: str) -> bool:
    if row.format != "jwt":
        return True
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = verification_key(session, kid, settings.key_retention) if isinstance(kid, str) else None
        if key is None:
            return False
        jwt.decode(token, key, algorithms=[ALGORITHM], options={"verify_exp": False, "verify_aud": False})
    except jwt.PyJWTError:
        return False
    return True


def introspect_rpt(
    token: str,
    *,
    rs_client_id: str | None = None,
    session: Session | None = None,
    settings: Settings | None = None,
) -> dict[str, Any] | None:
    """RFC 7662 answer for an RPT with UMA ``permissions`` (F-39…F-42), or None if
    ``token`` is not an RPT of this AS.

    ``rs_client_id``: the calling RS; an RPT of another RS is ``{"active": false}``.
    Revoked, expired, badly signed RPTs, and RPTs without any still-valid
    permission are ``{"active": false}`` too. Never contains ``scope`` (F-40).
    """
    session, settings = _context(session, settings)
    row = find_rpt(session, token)
    if row is None:
        return None
    if row.revoked or row.is_expired() or (rs_client_id is not None and row.rs_client_id != rs_client_id):
        return {"active": False}
    if not _signature_ok(session, settings, row, token):
        return {"active": False}
    permissions = current_permissions(session, row)
    if not permissions:
        return {"active": False}
    body: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
        "client_id": row.client_id,
        "iss": settings.issuer,
        "aud": row.rs_client_id,
        "iat": row.issued_at,
        "exp": row.expires_at,
        "jti": row.jti,
        "permissions": permissions,
    }
    if row.requesting_party:
        body["sub"] = row.requesting_party
    return body


def revoke_rpt(session: Session, row: Rpt) -> None:
    row.revoked = True
    session.add(row)
    session.commit()


def refresh_rpt(session: Session, settings: Settings, row: Rpt, scope: str | None) -> dict[str, Any]:
    """Refresh an RPT (G-53…G-55): no new assessment; the still-valid permissions,
    narrowed to ``scope`` when given (G-54, A15), with their own expiry; the refresh
    token rotates (old RPT and refresh token revoked atomically, O-47)."""
    spent = session.execute(
        update(Rpt)
        .where(Rpt.id == row.id, Rpt.revoked.is_(False))
        .values(revoked=True)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if spent.rowcount != 1:
        raise InvalidGrantError("The refresh token was already used.")
    wanted = set(scope.split()) if scope else None
    permissions = []
    for p in current_permissions(session, row):
        scopes = [s for s in p["resource_scopes"] if wanted is None or s in wanted]
        if wanted is not None and not scopes:
            continue
        permissions.append({**p, "resource_scopes": scopes})
    if not permissions:
        raise InvalidGrantError("None of the RPT's permissions is still valid.")
    issued = issue_rpt(
        client_id=row.client_id,
        owner=row.owner,
        rs_client_id=row.rs_client_id,
        permissions=permissions,
        requesting_party=row.requesting_party,
        ticket_id=row.ticket_id,
        with_refresh_token=True,
        refresh_expires_at=row.refresh_expires_at,
        session=session,
        settings=settings,
    )
    return token_response(issued)


def active_rpts(session: Session, owner: str, limit: int = 1000) -> list[tuple[Rpt, list[dict[str, Any]]]]:
    """The owner's RPTs that still work (not revoked, not expired, some permission still valid),
    newest first, each with its still-valid permissions (owner pages, O-31)."""
    rows = session.execute(
        select(Rpt)
        .where(Rpt.owner == owner, Rpt.revoked.is_(False), Rpt.expires_at > now())
        .order_by(Rpt.id.desc())
        .limit(limit)
    ).scalars()
    out = []
    for row in rows:
        permissions = [p for p in current_permissions(session, row) if p["resource_scopes"]]
        if permissions:
            out.append((row, permissions))
    return out
