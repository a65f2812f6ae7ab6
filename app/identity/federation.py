"""Accounts at upstream OpenID Providers and the local accounts they sign in as (issue 14).

An upstream account is known by its (issuer, subject) pair — the ID token's ``iss`` and
``sub``, the only pair OpenID Connect promises is stable and unique — and by nothing else:
an email address (or any other claim) never links two accounts, because a provider may let
anyone claim any address, and addresses move from person to person.

A pair signs in as a local account only when a row of ``federated_identities`` says so.
Such a row is made in two ways, never implicitly:

* a first sign-in at a provider whose ``create_accounts`` is true creates a new local account
  (:func:`create_account`), named from the subject and the provider's host, never from a claim
  (``sub@host``, made unique with ``+2``, ``+3``… when taken), with no password;
* the owner of a local account, signed in, asks to link and then signs in at the provider
  (:func:`link`); the pair must not be linked to another account already.

Unlinking (:func:`unlink`) is refused when it would leave the account with no way to sign in.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlmodel import Session

from ..models import FederatedIdentity, User
from ..security import now
from ..users import NO_PASSWORD, USERNAME_RE, get_user

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


class LinkError(ValueError):
    """A link or unlink that cannot be done; the message says why (for the person)."""


def find_identity(session: Session, issuer: str, subject: str) -> FederatedIdentity | None:
    return session.execute(
        select(FederatedIdentity).where(FederatedIdentity.issuer == issuer, FederatedIdentity.subject == subject)
    ).scalar_one_or_none()


def identities_of(session: Session, user_id: int) -> list[FederatedIdentity]:
    return list(
        session.execute(
            select(FederatedIdentity).where(FederatedIdentity.user_id == user_id).order_by(FederatedIdentity.id)
        ).scalars()
    )


def has_password(user: User) -> bool:
    return user.password_hash != NO_PASSWORD


def account_name(session: Session, issuer: str, subject: str) -> str:
    """A free user name for a new account of (issuer, subject): ``sub@host``, from the subject
    and the issuer's host only (a hash of the subject when it does not fit a user name)."""
    host = (urlsplit(issuer).hostname or "provider").lower()
    local = _NOT_IN_NAME.sub("-", subject).strip("-.")
    if not local or local != subject or len(local) > 64:
        local = "id-" + hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    base = f"{local}@{host}"[:240]
    name, n = base, 1
    while get_user(session, name) is not None or not USERNAME_RE.match(name):
        n += 1
        name = f"{base}+{n}"
    return name


def create_account(session: Session, issuer: str, subject: str) -> User:
    """A new local account signed in by (issuer, subject), without password (the caller commits)."""
    user = User(username=account_name(session, issuer, subject), password_hash=NO_PASSWORD, claims={})
    session.add(user)
    session.flush()
    assert user.id is not None
    session.add(FederatedIdentity(issuer=issuer, subject=subject, user_id=user.id, last_sign_in_at=now()))
    session.flush()
    return user


def link(session: Session, user: User, issuer: str, subject: str) -> FederatedIdentity:
    """Link (issuer, subject) to ``user``, who is signed in and asked for it (the caller commits)."""
    existing = find_identity(session, issuer, subject)
    if existing is not None:
        if existing.user_id != user.id:
            raise LinkError("this account at the provider already signs in to another account here")
        return existing
    assert user.id is not None
    row = FederatedIdentity(issuer=issuer, subject=subject, user_id=user.id)
    session.add(row)
    session.flush()
    return row


def unlink(session: Session, user: User, identity_id: int) -> FederatedIdentity:
    """Remove one of ``user``'s links, unless it is the account's last way to sign in."""
    row = session.get(FederatedIdentity, identity_id)
    if row is None or row.user_id != user.id:
        raise LinkError("there is no such link on your account")
    assert user.id is not None
    if not has_password(user) and len(identities_of(session, user.id)) <= 1:
        raise LinkError("this is the only way to sign in to your account: it has no password")
    session.delete(row)
    session.flush()
    return row
