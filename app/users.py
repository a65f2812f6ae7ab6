"""Local accounts (owners and requesting parties) with a claim set each."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from .models import OAuthClient, User
from .observability import PASSWORD_VERIFICATIONS
from .security import dummy_password_check, hash_password, needs_rehash, verify_password

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$")
#: The ``password_hash`` of an account without password (one an identity provider created):
#: no password verifies against it.
NO_PASSWORD = "!"


class UserError(ValueError):
    """Invalid or duplicate user data."""


def get_user(session: Session, username: str) -> User | None:
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        return None
    return session.execute(select(User).where(User.username == username)).scalar_one_or_none()


def check_username(username: str) -> None:
    """Raise :class:`UserError` unless ``username`` is a valid user name."""
    if not USERNAME_RE.match(username):
        raise UserError(f"invalid user name {username!r}: letters, digits and . _ @ + - only, at most 255")


def create_user(session: Session, username: str, password: str, claims: dict[str, Any] | None = None) -> User:
    """Add a user (the caller commits). Raises :class:`UserError` on bad or taken names."""
    check_username(username)
    if not password or "\x00" in password:
        raise UserError("the password must be a non-empty string")
    if get_user(session, username) is not None:
        raise UserError(f"user {username!r} already exists")
    if session.execute(select(OAuthClient.id).where(OAuthClient.client_id == username)).first() is not None:
        # A client acting for itself is an owner named by its client_id (O-51): never share the name.
        raise UserError(f"{username!r} is the id of a client; choose another user name")
    user = User(username=username, password_hash=hash_password(password), claims=dict(claims or {}))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, or None (same cost either way).

    The one place where a password is checked (the login form and the owner
    API's Basic authentication both come here): a hash made with older or weaker
    parameters (scrypt, or Argon2 below today's) is replaced by a fresh Argon2id
    hash on success, in its own transaction so the caller's stays untouched.
    """
    PASSWORD_VERIFICATIONS.inc()  # one hash checked on every path below
    user = get_user(session, username)
    if user is None or not user.is_active or user.password_hash == NO_PASSWORD:
        dummy_password_check(password)
        return None
    if not verify_password(password, user.password_hash):
        return None
    if needs_rehash(user.password_hash):
        _upgrade_hash(session, user, hash_password(password))
    return user


def _upgrade_hash(session: Session, user: User, new_hash: str) -> None:
    """Store ``new_hash`` unless another login replaced the old hash first."""
    with Session(session.get_bind()) as own:
        own.execute(
            update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash)
            .values(password_hash=new_hash)
        )
        own.commit()
    set_committed_value(user, "password_hash", new_hash)
