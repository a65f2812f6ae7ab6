"""RPT storage: issue, introspect, revoke (G-03, G-27…G-32, G-56, F-38…F-42).

An RPT is either a JWT signed (RS256) by the active signing key — verifiable
against ``/jwks`` — or an opaque random string (setting ``rpt_format``). Both
are recorded in ``rpts`` (SHA-256 of the token, ``jti``) so they can be
introspected and revoked, with what they were decided from (``basis``).

Access stays live: introspection answers only the permissions the current
policy still grants (:func:`live_permissions`, which has the grant bridge
decide again), so a removed grant, a withdrawn approval, a removed scope or a
deleted resource takes effect at the next introspection. The RPT's ``exp`` is
capped by the earliest ``for``/``until`` bound of its permissions (point of
:func:`issue_rpt`). Refreshing is the bridge's (:func:`app.grant.bridge.refresh_rpt`).

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
from sqlalchemy import insert, select
from sqlmodel import Session

from ..cache import detached, row_cache
from ..config import Settings
from ..db import policy_set_version_column, remember_policy_set_version
from ..models import Resource, Rpt
from ..oauth.keys import ALGORITHM, active_key, private_key, verification_key
from ..observability import count_token
from ..security import hash_token, new_token, now


@dataclass
class IssuedRpt:
    """An RPT just issued: the token (shown once), what its row holds, and the refresh token if any."""

    token: str
    row: dict[str, Any]
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
    basis: dict[str, Any] | None = None,
    family_id: str | None = None,
    lifetime: int | None = None,
    with_refresh_token: bool | None = None,
    refresh_expires_at: int | None = None,
    session: Session | None = None,
    settings: Settings | None = None,
    commit: bool = True,
) -> IssuedRpt:
    """Issue and store an RPT for one (client, requesting party, owner, RS) (G-03); commits
    unless ``commit`` is false (the UMA grant commits once, with the ticket and the audit record).

    ``permissions``: ``[{"resource_id", "resource_scopes", "exp"?: epoch or None}]``,
    where ``exp`` is the policy's bound (``for``/``until``). The RPT expires after
    ``lifetime`` (default the ``rpt_lifetime`` setting) or at the earliest bound,
    whichever comes first, and so does its refresh token; each permission's ``exp``
    is capped by the RPT's. ``basis`` records what the permissions were decided from
    (claims, claim sources, policy version; the bounds are added here). A refresh
    token is added when ``with_refresh_token`` (default: ``rpt_refresh_lifetime`` > 0).
    ``family_id``: the refresh family of the RPT this one replaces (default: a new one).
    """
    session, settings = _context(session, settings)
    issued = now()
    bounds = {p["resource_id"]: (None if p.get("exp") is None else int(p["exp"])) for p in permissions}
    earliest = min((b for b in bounds.values() if b is not None), default=None)
    expires_at = issued + (lifetime if lifetime is not None else settings.rpt_lifetime)
    if earliest is not None:
        expires_at = min(expires_at, earliest)
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
    refresh_until = None
    if refresh:
        refresh_until = refresh_expires_at or issued + settings.rpt_refresh_lifetime
        if earliest is not None:
            refresh_until = min(refresh_until, earliest)
    row: dict[str, Any] = dict(
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
        refresh_expires_at=refresh_until,
        ticket_id=ticket_id,
        family_id=family_id or new_token()[:43],
        basis={**(basis or {}), "bounds": bounds},
        revoked=False,
        rotated=False,
    )
    # A Core INSERT, not an ORM object: building and flushing an ``Rpt`` cost about 1 ms of the
    # grant's 7-9 ms of CPU (in-process profile of bench/server.py's grant; figure in docs/benchmarks.md).
    session.connection().execute(insert(Rpt.__table__), row)  # type: ignore[arg-type]
    if commit:
        session.commit()
    count_token("rpt")
    if refresh:
        count_token("refresh_token")
    return IssuedRpt(token=token, row=row, refresh_token=refresh, expires_in=expires_at - issued)


def token_response(issued: IssuedRpt) -> dict[str, Any]:
    """The RFC 6749 §5.1 body for an RPT (G-27, G-31: no ``scope``)."""
    body: dict[str, Any] = {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in}
    if issued.refresh_token:
        body["refresh_token"] = issued.refresh_token
    return body


def find_rpt(session: Session, token: str) -> Rpt | None:
    """The RPT whose token is ``token``; the same statement reads the policy-set version
    for a decision that follows (:func:`app.db.remember_policy_set_version`)."""
    found = session.execute(
        select(Rpt, policy_set_version_column()).where(Rpt.token_hash == hash_token(token))
    ).one_or_none()
    if found is None:
        return None
    remember_policy_set_version(session, found[1])
    return found[0]


def find_rpt_by_refresh_token(session: Session, refresh_token: str) -> Rpt | None:
    return session.execute(select(Rpt).where(Rpt.refresh_token_hash == hash_token(refresh_token))).scalar_one_or_none()


def registered_resources(session: Session, ids: list[str], owner: str, rs_client_id: str) -> dict[str, Resource]:
    """The resources among ``ids`` that ``owner`` registered at ``rs_client_id``, by id: read-only
    copies, reused for ``row_cache_lifetime`` seconds (:mod:`app.cache`); one query for the rest."""
    cache = row_cache()
    found: dict[str, Resource] = {}
    missing = []
    for rid in dict.fromkeys(ids):
        hit = cache.get("resource", rid, lambda: None)
        if hit is None:
            missing.append(rid)
        else:
            found[rid] = hit
    if missing:
        for r in session.execute(select(Resource).where(Resource.id.in_(missing))).scalars():
            found[r.id] = cache.get("resource", r.id, lambda r=r: detached(r))
    return {rid: r for rid, r in found.items() if r.owner == owner and r.rs_client_id == rs_client_id}


def policy_bound(row: Rpt, permission: dict[str, Any]) -> int | None:
    """A permission's ``for``/``until`` bound as recorded at issue (None: the policy set none).
    RPTs issued before bounds were recorded count their permission's ``exp``."""
    bounds = row.basis.get("bounds", {})
    if permission["resource_id"] in bounds:
        return bounds[permission["resource_id"]]
    return permission.get("exp")


def registered_permissions(session: Session, row: Rpt, at: int | None = None) -> list[tuple[dict[str, Any], Resource]]:
    """The RPT's permissions within their policy bound, on resources still registered by its owner
    and RS, narrowed to the scopes still registered for them (F-30, F-42, G-36); each with its
    resource. The RPT's own expiry is not looked at (a refresh renews it)."""
    at = now() if at is None else at
    ids = [p["resource_id"] for p in row.permissions]
    if not ids:
        return []
    resources = registered_resources(session, ids, row.owner, row.rs_client_id)
    held = []
    for p in row.permissions:
        resource = resources.get(p["resource_id"])
        bound = policy_bound(row, p)
        if resource is None or (bound is not None and bound <= at):
            continue
        scopes = [s for s in p["resource_scopes"] if s in resource.resource_scopes]
        if scopes:
            held.append(({**p, "resource_scopes": scopes}, resource))
    return held


def granted_now(session: Session, row: Rpt) -> list[dict[str, Any]]:
    """The RPT's permissions the policy grants now: registered (:func:`registered_permissions`)
    and decided again from the RPT's basis by the grant bridge with the policy set of the
    version stored now and the owner's current answers (G-61, G-76). Never more than was
    issued; each permission's ``exp`` is its policy bound (None: none)."""
    held = registered_permissions(session, row)
    if not held:
        return []
    from ..grant.bridge import redecide  # the bridge issues RPTs through this module

    return redecide(session, row, held)


def live_permissions(session: Session, row: Rpt) -> list[dict[str, Any]]:
    """:func:`granted_now` as introspection shows it: each ``exp`` capped by the RPT's."""
    return [
        {**p, "exp": row.expires_at if p["exp"] is None else min(p["exp"], row.expires_at)}
        for p in granted_now(session, row)
    ]


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
    row: Rpt | None = None,
) -> dict[str, Any] | None:
    """RFC 7662 answer for an RPT with UMA ``permissions`` (F-39…F-42), or None if
    ``token`` is not an RPT of this AS. ``row``: the RPT of ``token`` already looked up.

    ``rs_client_id``: the calling RS; an RPT of another RS is ``{"active": false}``.
    Revoked, expired, badly signed RPTs, and RPTs of which the current policy
    grants nothing any more are ``{"active": false}`` too. Never contains
    ``scope`` (F-40). Needs an app context (the policy store).
    """
    session, settings = _context(session, settings)
    row = row or find_rpt(session, token)
    if row is None:
        return None
    if row.revoked or row.is_expired() or (rs_client_id is not None and row.rs_client_id != rs_client_id):
        return {"active": False}
    if not _signature_ok(session, settings, row, token):
        return {"active": False}
    permissions = live_permissions(session, row)
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


def active_rpts(session: Session, owner: str, limit: int = 1000) -> list[tuple[Rpt, list[dict[str, Any]]]]:
    """The owner's RPTs that still work (not revoked, not expired, some permission still granted),
    newest first, each with its live permissions (owner pages, O-31)."""
    rows = session.execute(
        select(Rpt)
        .where(Rpt.owner == owner, Rpt.revoked.is_(False), Rpt.expires_at > now())
        .order_by(Rpt.id.desc())
        .limit(limit)
    ).scalars()
    out = []
    for row in rows:
        permissions = live_permissions(session, row)
        if permissions:
            out.append((row, permissions))
    return out
