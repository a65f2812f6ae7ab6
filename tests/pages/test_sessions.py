"""Browser sessions end when they should, in every process (issue 10, point 7; O-47's security
events): logout, a password change and ``end_sessions`` refuse a replayed session cookie at this
server and at a second server on the same database; the cookie carries only a session id, which
the database keeps hashed. Over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from app.identity.sessions import end_sessions
from app.models import BrowserSession, User
from app.security import hash_password, hash_token
from tests.pages.pages_support import sign_in
from tests.support.server import serve_app

COOKIE = "uma_session"
PRIVATE = "/my/resources"


@pytest.fixture()
def other_process(live_server, database_url, tmp_path) -> Iterator[str]:
    """A second server on the same database with the same secret key, as several workers or
    machines behind one name are deployed (docs/operations.md)."""
    config = {
        "database_url": database_url,
        "instance_path": str(tmp_path),
        "issuer": live_server.url,
        "secret_key": live_server.app.config["SECRET_KEY"],
    }
    with serve_app(config) as url:
        yield url


def replay(url: str, cookie: str) -> int:
    """Status of a private page fetched with nothing but this session cookie (200: signed in;
    303 to the login page: anonymous)."""
    r = httpx.get(f"{url}{PRIVATE}", headers={"Cookie": f"{COOKIE}={cookie}"}, timeout=30, follow_redirects=False)
    assert r.status_code in (200, 303), r.text
    if r.status_code == 303:
        assert r.headers["location"].startswith("/login")
    return r.status_code


def signed_in(browser: httpx.Client, user) -> tuple[str, str]:
    """Sign ``user`` in; returns (the session cookie, the page's CSRF token)."""
    csrf = sign_in(browser, user)
    return browser.cookies[COOKIE], csrf


def user_id(engine, username: str) -> int:
    with Session(engine) as db:
        return db.execute(select(User.id).where(User.username == username)).scalar_one()


def test_a_cookie_replayed_after_logout_is_refused_in_every_process_O_47(
    browser, live_server, other_process, make_user
):
    cookie, csrf = signed_in(browser, make_user())
    assert replay(live_server.url, cookie) == 200 and replay(other_process, cookie) == 200
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert replay(live_server.url, cookie) == 303
    assert replay(other_process, cookie) == 303


def test_a_logout_at_the_other_process_ends_the_session_here(browser, live_server, other_process, make_user):
    cookie, csrf = signed_in(browser, make_user())
    with httpx.Client(base_url=other_process, timeout=30, follow_redirects=False) as there:
        there.cookies.set(COOKIE, cookie)
        assert there.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert replay(live_server.url, cookie) == 303


def test_a_password_change_ends_every_session_begun_with_the_old_password_O_47(
    browser, live_server, other_process, make_user, engine
):
    user = make_user()
    first, _ = signed_in(browser, user)
    with httpx.Client(base_url=other_process, timeout=30, follow_redirects=False) as there:
        second, _ = signed_in(there, user)
    assert replay(live_server.url, second) == 200
    with Session(engine) as db:  # as any place that stores a new password does (``uma user passwd``)
        db.execute(update(User).where(User.username == user.username).values(password_hash=hash_password("new-pw-1")))
        db.commit()
    for cookie in (first, second):
        assert replay(live_server.url, cookie) == 303 and replay(other_process, cookie) == 303
    user.password = "new-pw-1"
    again, _ = signed_in(browser, user)
    assert replay(other_process, again) == 200


def test_end_sessions_ends_all_of_a_users_sessions_everywhere_and_only_theirs(
    browser, live_server, other_process, make_user, engine
):
    alice, bob = make_user(), make_user()
    alices = [signed_in(browser, alice)[0]]
    with httpx.Client(base_url=other_process, timeout=30, follow_redirects=False) as there:
        alices.append(signed_in(there, alice)[0])
    with httpx.Client(base_url=live_server.url, timeout=30, follow_redirects=False) as bobs_browser:
        bobs = signed_in(bobs_browser, bob)[0]
    with live_server.app.app_context():
        assert end_sessions(user_id(engine, alice.username)) == 2
    for cookie in alices:
        assert replay(live_server.url, cookie) == 303 and replay(other_process, cookie) == 303
    assert replay(other_process, bobs) == 200
    # In the caller's transaction: nothing ends until it commits.
    with Session(engine) as db:
        assert end_sessions(user_id(engine, bob.username), session=db) == 1
        assert replay(live_server.url, bobs) == 200
        db.commit()
    assert replay(live_server.url, bobs) == 303


def test_a_disabled_user_and_an_expired_session_are_anonymous(browser, live_server, make_user, engine):
    user = make_user()
    cookie, _ = signed_in(browser, user)
    with Session(engine) as db:
        db.execute(
            update(BrowserSession).where(BrowserSession.user_id == user_id(engine, user.username)).values(expires_at=0)
        )
        db.commit()
    assert replay(live_server.url, cookie) == 303
    cookie, _ = signed_in(browser, user)
    with Session(engine) as db:
        db.execute(update(User).where(User.username == user.username).values(is_active=False))
        db.commit()
    assert replay(live_server.url, cookie) == 303


def test_the_cookie_holds_a_session_id_stored_only_hashed(browser, live_server, make_user, engine):
    user = make_user()
    cookie, _ = signed_in(browser, user)
    app = live_server.app
    data = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert set(data) <= {"sid", "csrf_token", "_permanent"} and "user" not in data  # nobody's name in it
    sid = data["sid"]
    with Session(engine) as db:
        rows = (
            db.execute(select(BrowserSession).where(BrowserSession.user_id == user_id(engine, user.username)))
            .scalars()
            .all()
        )
    [row] = rows
    assert row.sid_hash == hash_token(sid) and sid not in (row.sid_hash, row.credential)
    assert row.expires_at - row.created_at == int(app.permanent_session_lifetime.total_seconds())


def test_logging_in_again_ends_the_session_the_browser_had(browser, live_server, make_user):
    """Renewal at login: the old session id is ended, not merely replaced in this browser."""
    user = make_user()
    before, _ = signed_in(browser, user)
    after, _ = signed_in(browser, user)
    assert before != after
    assert replay(live_server.url, before) == 303 and replay(live_server.url, after) == 200


def test_a_session_in_use_is_extended_and_one_left_idle_expires(browser, live_server, make_user, engine):
    """Idle expiry: a session used when less than half its hour is left gets a new hour."""
    from app.security import now

    user = make_user()
    cookie, _ = signed_in(browser, user)
    uid = user_id(engine, user.username)
    with Session(engine) as db:
        db.execute(update(BrowserSession).where(BrowserSession.user_id == uid).values(expires_at=now() + 60))
        db.commit()
    assert replay(live_server.url, cookie) == 200
    with Session(engine) as db:
        [expires_at] = db.execute(select(BrowserSession.expires_at).where(BrowserSession.user_id == uid)).scalars()
    assert expires_at >= now() + 3000
