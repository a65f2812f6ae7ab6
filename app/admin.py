"""What an operator can see and do with clients, users and tokens, written once: ``uma client``,
``uma user`` and ``uma token`` (:mod:`app.cli`) are a thin layer over these functions, and so is
the client management endpoint of dynamic registration (RFC 7592, :mod:`app.oauth.endpoints`)
for deleting a client; a later admin page or API would be one more.

Every function takes the database session and leaves the commit to the caller (one
transaction per command). An unknown client id or user name is :class:`~app.errors.NotFound`;
bad input is :class:`~app.errors.InvalidRequest`. Nothing here returns a stored secret: the
only secret ever handed out is a newly rotated client secret, once.

Every change is in the database. Users and tokens are read at every request, so in every
process at once a disabled user cannot log in (:func:`app.users.authenticate`), the requests of
a signed-in session stop (:func:`app.web.current_user`), and revoked tokens are inactive at
introspection and refused by every API. Client rows are reused for ``row_cache_lifetime``
seconds (:mod:`app.cache`): a client's changes count in other processes within that delay
(``uma client delete`` then revokes what they issued to it meanwhile,
:func:`revoke_tokens_issued_to`).

What a token "of a user" is: an access token (PAT, owner token) or refresh token issued for
them (``subject``), an RPT or a permission ticket whose requesting party they are, a PCT of
theirs, an authorization code they approved. "Of a client": every one issued to that client.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlmodel import Session

from .db import bump_policy_set_version
from .errors import InvalidRequest, NotFound
from .identity.sessions import end_sessions
from .models import (
    AuditRecord,
    AuthorizationCode,
    FederatedIdentity,
    NotificationDelivery,
    NotificationTarget,
    OAuthClient,
    OwnerAction,
    Pct,
    PendingRequest,
    PermissionTicket,
    PolicyDocument,
    Resource,
    Rpt,
    Token,
    User,
)
from .oauth.clients import ClientError, get_client, rotate_secret, update_client
from .security import hash_password, now
from .users import get_user

log = logging.getLogger(__name__)


# -- clients ---------------------------------------------------------------------------


def client_view(client: OAuthClient) -> dict[str, Any]:
    """A client as the operator sees it: its registered metadata, never its secret."""
    return client.to_public_dict()


def list_clients(db: Session) -> list[dict[str, Any]]:
    rows = db.execute(select(OAuthClient).order_by(OAuthClient.client_name, OAuthClient.client_id)).scalars()
    return [client_view(c) for c in rows]


def find_client(db: Session, client_id: str) -> OAuthClient:
    client = get_client(db, client_id)
    if client is None:
        raise NotFound(f"no client {client_id!r}")
    return client


def change_client(db: Session, client_id: str, **changes: Any) -> dict[str, Any]:
    """Change a client's name, redirect URIs, claims redirect URIs, grant types or scopes,
    checked exactly as at registration (:func:`app.oauth.clients.validate_metadata`)."""
    client = find_client(db, client_id)
    try:
        update_client(db, client, **changes)
    except ClientError as exc:
        raise InvalidRequest(str(exc)) from None
    return client_view(client)


def rotate_client_secret(db: Session, client_id: str) -> tuple[dict[str, Any], str]:
    """A new secret for a confidential client; the old one stops working at once. Tokens
    already issued stay valid (revoke them with :func:`revoke_client_tokens`)."""
    client = find_client(db, client_id)
    try:
        secret = rotate_secret(db, client)
    except ClientError as exc:
        raise InvalidRequest(str(exc)) from None
    return client_view(client), secret


def delete_client(db: Session, client: OAuthClient) -> dict[str, int]:
    """Delete a client and what only makes sense with it: every token issued to it is revoked
    (so it introspects inactive); as a resource server, its resource registrations go, the
    RPTs and tickets for them end, and the access requests to them are dropped. Returns counts."""
    counts = revoke_tokens_issued_to(db, client.client_id)
    counts["rpts"] += _count(
        db.execute(
            update(Rpt)
            .where(Rpt.rs_client_id == client.client_id, Rpt.revoked.is_(False))
            .values(revoked=True)
            .execution_options(synchronize_session=False)
        )
    )
    counts["tickets"] += _consume_tickets(db, PermissionTicket.rs_client_id == client.client_id)
    counts["resources"] = _count(
        db.execute(
            delete(Resource)
            .where(Resource.rs_client_id == client.client_id)
            .execution_options(synchronize_session=False)
        )
    )
    counts["requests"] = _count(
        db.execute(
            delete(PendingRequest)
            .where(or_(PendingRequest.client_id == client.client_id, PendingRequest.rs_client_id == client.client_id))
            .execution_options(synchronize_session=False)
        )
    )
    db.delete(client)
    db.flush()
    log.info("client %s deleted", client.client_id)
    return counts


def delete_client_by_id(db: Session, client_id: str) -> dict[str, int]:
    return delete_client(db, find_client(db, client_id))


# -- users -----------------------------------------------------------------------------


def user_view(user: User) -> dict[str, Any]:
    """A user as the operator sees it (never the password hash)."""
    return {
        "username": user.username,
        "enabled": bool(user.is_active),
        "claims": dict(user.claims),
        "created_at": user.created_at,
    }


def list_users(db: Session) -> list[dict[str, Any]]:
    return [user_view(u) for u in db.execute(select(User).order_by(User.username)).scalars()]


def find_user(db: Session, username: str) -> User:
    user = get_user(db, username)
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def set_password(db: Session, username: str, password: str) -> dict[str, Any]:
    """A new password (stored as an Argon2id hash); the user's browser sessions end."""
    user = find_user(db, username)
    if not isinstance(password, str) or not password or "\x00" in password:
        raise InvalidRequest("the password must be a non-empty string")
    user.password_hash = hash_password(password)
    db.add(user)
    db.flush()
    return {**user_view(user), "sessions_ended": _end_sessions(db, user)}


def disable_user(db: Session, username: str) -> dict[str, Any]:
    """The user can no longer log in (login form, owner API), their browser sessions end,
    every token of theirs is revoked, and no new one is issued for them (also not through a
    client whose ``owner`` they are). Their resources, policies and grants to others stay."""
    user = find_user(db, username)
    user.is_active = False
    db.add(user)
    db.flush()
    counts = revoke_user_tokens(db, username)
    counts["sessions"] = _end_sessions(db, user)
    log.info("user %s disabled", username)
    return {**user_view(user), "revoked": counts}


def enable_user(db: Session, username: str) -> dict[str, Any]:
    """The user may log in again (tokens revoked at disabling stay revoked)."""
    user = find_user(db, username)
    user.is_active = True
    db.add(user)
    db.flush()
    return user_view(user)


def delete_user(db: Session, username: str) -> dict[str, Any]:
    """Delete an account and everything it owns, so that nothing passes to a later account of
    the same name: its tokens are revoked, RPTs to its resources end, its resource
    registrations, uploaded policies (a new policy-set version), access requests (as owner and
    as requesting party), audit trail, own actions, notification targets and their deliveries and links to upstream accounts are deleted. Refused while a client acts for it
    (``owner``): delete that client first."""
    user = find_user(db, username)
    owned = list(db.execute(select(OAuthClient.client_id).where(OAuthClient.owner == username)).scalars())
    if owned:
        raise InvalidRequest(
            f"user {username!r} is the owner of client(s) {', '.join(owned)}: delete them first (uma client delete)"
        )
    counts = revoke_user_tokens(db, username)
    counts["rpts"] += _count(
        db.execute(
            update(Rpt)
            .where(Rpt.owner == username, Rpt.revoked.is_(False))
            .values(revoked=True)
            .execution_options(synchronize_session=False)
        )
    )
    counts["tickets"] += _consume_tickets(db, PermissionTicket.owner == username)
    counts["resources"] = _delete_where(db, Resource, Resource.owner == username)
    policies = _delete_where(db, PolicyDocument, PolicyDocument.owner == username)
    if policies:
        bump_policy_set_version(db)
    counts["policy_versions"] = policies
    counts["requests"] = _delete_where(
        db, PendingRequest, or_(PendingRequest.owner == username, PendingRequest.requesting_party == username)
    )
    counts["audit_records"] = _delete_where(db, AuditRecord, AuditRecord.owner == username)
    counts["owner_actions"] = _delete_where(db, OwnerAction, OwnerAction.owner == username)
    _delete_where(db, NotificationDelivery, NotificationDelivery.owner == username)
    counts["notification_targets"] = _delete_where(db, NotificationTarget, NotificationTarget.owner == username)
    # Its links to upstream accounts: none may open a later account (which may reuse the id).
    counts["linked_sign_ins"] = _delete_where(db, FederatedIdentity, FederatedIdentity.user_id == user.id)
    counts["sessions"] = _end_sessions(db, user)
    db.delete(user)
    db.flush()
    log.info("user %s deleted", username)
    return counts


def set_claims(db: Session, username: str, claims: dict[str, Any], unset: list[str] | None = None) -> dict[str, Any]:
    """Set (or, with ``unset``, remove) claims of a user; the next decision sees them."""
    user = find_user(db, username)
    merged = dict(user.claims)
    for name in unset or []:
        if name not in merged:
            raise InvalidRequest(f"user {username!r} has no claim {name!r}")
        del merged[name]
    for name in claims:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise InvalidRequest(f"invalid claim name {name!r}")
    merged.update(claims)
    user.claims = merged  # a new value: in-place changes of JSON columns are not tracked
    db.add(user)
    db.flush()
    return user_view(user)


# -- tokens ----------------------------------------------------------------------------


def revoke_client_tokens(db: Session, client_id: str) -> dict[str, int]:
    """Revoke every token issued to a client: access tokens (PATs) and refresh tokens, RPTs,
    PCTs, unused authorization codes and permission tickets bound to it."""
    find_client(db, client_id)
    return revoke_tokens_issued_to(db, client_id)


def revoke_tokens_issued_to(db: Session, client_id: str) -> dict[str, int]:
    """:func:`revoke_client_tokens` for a client id that may no longer exist: after a client is
    deleted, other processes may still know it for ``row_cache_lifetime`` seconds
    (:mod:`app.cache`) and issue it tokens; ``uma client delete`` revokes these once that
    time has passed."""
    return {
        "tokens": _revoke_where(db, Token, Token.client_id == client_id),
        "rpts": _revoke_where(db, Rpt, Rpt.client_id == client_id),
        "pcts": _revoke_where(db, Pct, Pct.client_id == client_id),
        "codes": _spend_codes(db, AuthorizationCode.client_id == client_id),
        "tickets": _consume_tickets(db, PermissionTicket.client_id == client_id),
    }


def revoke_user_tokens(db: Session, username: str) -> dict[str, int]:
    """Revoke every token of a user: access tokens (PATs, owner tokens) and refresh tokens
    issued for them, RPTs and tickets of theirs as requesting party, their PCTs, unused
    authorization codes they approved."""
    find_user(db, username)
    return {
        "tokens": _revoke_where(db, Token, Token.subject == username),
        "rpts": _revoke_where(db, Rpt, Rpt.requesting_party == username),
        "pcts": _revoke_where(db, Pct, Pct.subject == username),
        "codes": _spend_codes(db, AuthorizationCode.username == username),
        "tickets": _consume_tickets(db, PermissionTicket.requesting_party == username),
    }


# -- helpers -----------------------------------------------------------------------------


def _count(result: Any) -> int:
    return max(int(result.rowcount or 0), 0)


def _revoke_where(db: Session, model: type[Token] | type[Rpt] | type[Pct], condition: Any) -> int:
    return _count(
        db.execute(
            update(model)
            .where(condition, model.revoked.is_(False))
            .values(revoked=True)
            .execution_options(synchronize_session=False)
        )
    )


def _spend_codes(db: Session, condition: Any) -> int:
    """Mark unused codes used: a later exchange fails like a replay (and revokes what it gave)."""
    return _count(
        db.execute(
            update(AuthorizationCode)
            .where(condition, AuthorizationCode.used.is_(False))
            .values(used=True)
            .execution_options(synchronize_session=False)
        )
    )


def _consume_tickets(db: Session, condition: Any) -> int:
    return _count(
        db.execute(
            update(PermissionTicket)
            .where(condition, PermissionTicket.consumed.is_(False))
            .values(consumed=True, consumed_at=now())
            .execution_options(synchronize_session=False)
        )
    )


def _delete_where(db: Session, model: Any, condition: Any) -> int:
    return _count(db.execute(delete(model).where(condition).execution_options(synchronize_session=False)))


def _end_sessions(db: Session, user: User) -> int:
    """End the user's browser sessions in every process, in the caller's transaction."""
    assert user.id is not None
    return end_sessions(user.id, db)
