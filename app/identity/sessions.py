"""Browser sessions, stored server-side, so that they end when they should (issue 10, point 7;
O-47's security events: logout, password change).

The session cookie (``uma_session``: Flask's signed cookie, HttpOnly, SameSite=Lax, Secure
when the issuer is https; see ``app/factory.py``) carries a random session id and the
page's anti-CSRF token, never who is logged in. The table ``browser_sessions`` keeps the
SHA-256 of the id (never the id), the user it belongs to, a fingerprint of that user's
password hash at login, and an expiry. Every request that asks who is logged in
(:func:`session_user`) looks the id up in the database, so, in every process at once:

* logging out deletes the row: the same cookie, replayed, is anonymous;
* a password change — from any place that stores a new password hash — makes the
  fingerprint differ: every session begun with the old password is refused (and a hash
  upgraded at login, ``app.users.authenticate``, ends the user's other sessions once);
* :func:`end_sessions` ends every session of a user (``uma user disable/passwd/delete``);
* a disabled or deleted user's sessions are refused (the user is looked up each time).

A session lives ``PERMANENT_SESSION_LIFETIME`` (1 hour) after its last use: its expiry is
pushed forward when less than half of that is left, so an active page costs one small
write every half hour, not one per request. Expired rows go with the purge (:mod:`app.purge`).
"""

from __future__ import annotations

import hashlib

from flask import current_app
from sqlalchemy import delete, select, update
from sqlmodel import Session

from ..models import BrowserSession, User
from ..security import hash_token, new_token, now


def _lifetime() -> int:
    return int(current_app.permanent_session_lifetime.total_seconds())


def credential_fingerprint(user: User) -> str:
    """What a session remembers of the password it was begun with: a digest of the stored hash."""
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()


def start_session(session: Session, user: User) -> str:
    """A new session for ``user``; returns the id for the cookie (stored hashed). The caller commits."""
    at = now()
    sid = new_token()
    assert user.id is not None
    session.add(
        BrowserSession(
            sid_hash=hash_token(sid),
            user_id=user.id,
            credential=credential_fingerprint(user),
            created_at=at,
            expires_at=at + _lifetime(),
        )
    )
    session.flush()
    return sid


def session_user(session: Session, sid: str) -> User | None:
    """The active user whose live session ``sid`` is, or None (ended, expired, password changed,
    user disabled or gone). Extends the session when less than half its lifetime is left."""
    if not isinstance(sid, str) or not sid:
        return None
    row = session.execute(select(BrowserSession).where(BrowserSession.sid_hash == hash_token(sid))).scalar_one_or_none()
    at = now()
    if row is None or row.expires_at <= at:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active or row.credential != credential_fingerprint(user):
        return None
    lifetime = _lifetime()
    if row.expires_at - at < lifetime // 2:  # in a transaction of its own: the caller's stays untouched
        with Session(session.get_bind()) as own:
            own.execute(update(BrowserSession).where(BrowserSession.id == row.id).values(expires_at=at + lifetime))
            own.commit()
    return user


def end_session(session: Session, sid: str) -> None:
    """End one session (logout). The caller commits."""
    if isinstance(sid, str) and sid:
        session.execute(delete(BrowserSession).where(BrowserSession.sid_hash == hash_token(sid)))


def end_sessions(user_id: int, session: Session | None = None) -> int:
    """End every browser session of the user with this id, in every process; returns how many.

    With ``session`` the deletion joins the caller's transaction (commit it together with the
    change that calls for it: disabling, a new password, deleting the user). Without, it runs
    and commits on its own, on the current app's database (needs an app context).
    """
    if session is not None:
        return session.execute(delete(BrowserSession).where(BrowserSession.user_id == user_id)).rowcount or 0
    from ..db import get_engine

    with Session(get_engine()) as own:
        ended = own.execute(delete(BrowserSession).where(BrowserSession.user_id == user_id)).rowcount or 0
        own.commit()
    return ended
