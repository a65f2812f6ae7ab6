"""Shared fixtures: a database per test session and xdist worker, the app, a live HTTP server,
and helpers to create users, clients and PATs.

Database choice: ``UMA_TEST_DATABASE_URL`` (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) selects PostgreSQL, where
every xdist worker gets its own schema (``search_path`` in the connection
options); without it each worker uses a fresh SQLite file. The schema is
created by the alembic migrations, as in production.

Helpers for other test modules (all session-safe, names are unique per call):

* ``make_user(username=None, password="pw-…", claims=None) -> UserInfo``
* ``make_client(**create_client kwargs) -> ClientInfo`` (client_id, client_secret, row)
* ``make_rs(owner=None) -> ClientInfo`` a resource server client (scope uma_protection)
* ``pat_for(owner, rs=None) -> PatInfo`` a PAT for (owner, RS) issued directly in the database
* ``http`` an ``httpx.Client`` on the live server (no cookies kept between tests)
* ``db_session`` a SQLModel session on the test database
* ``fresh_database_url`` a database of the test's own, not migrated
* ``serve_app(config) -> context manager yielding the URL`` another server (own app, own
  settings) on the same database: a second process's worth of state, or other settings;
  ``close_app(app)`` closes such an app's connections and stops its threads (the apps made on a
  database that ends, a PostgreSQL schema or ``own_database``, are closed before it goes)
* ``wait_for(condition, what)`` polls a condition with a deadline (convergence, not speed)
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session
from werkzeug.serving import make_server

import app as app_package
from app.db import make_engine, upgrade_database

PG_ENV = "UMA_TEST_DATABASE_URL"
# Only the apps of tests/server/test_notifications.py send notifications (they say so in their
# settings): every other test app, each with a secret key of its own, could not sign for their
# webhooks, and would count failed attempts on their deliveries. Also for `uma` and gunicorn
# processes that tests start (they inherit the environment).
os.environ.setdefault("UMA_NOTIFICATION_INTERVAL", "0")
#: The test databases that end during the session (a PostgreSQL schema is dropped; see
#: :func:`apps_closed_after`), by URL, each with the apps made on it through ``app.create_app``
#: (the test modules and ``app.cli`` import it after this module replaced it, as their conftest
#: imports this module first) and not closed yet. Held, not weakly referenced: an app's policy
#: thread holds its policy store, not the app, so an app a test dropped without closing it could
#: be collected, and forgotten, while that thread went on reading a dropped schema (an error
#: logged every 2 s until the session ends).
_open_apps: dict[str, list[Any]] = {}
_make_app = app_package.create_app


def create_app(*args: Any, **kwargs: Any) -> Any:
    made = _make_app(*args, **kwargs)
    apps = _open_apps.get(made.config["UMA_SETTINGS"].database_url)
    if apps is not None:
        apps[:] = [a for a in apps if not a.extensions.get("uma_closed")]  # closed since (`uma` commands close theirs)
        apps.append(made)
    return made


app_package.create_app = create_app


@contextmanager
def apps_closed_after(url: str) -> Iterator[str]:
    """A test database that ends with the block: the apps made on ``url`` inside it are closed at
    its end (their background threads stopped, their connections closed), before the database goes."""
    _open_apps[url] = []
    try:
        yield url
    finally:
        for made in _open_apps.pop(url):
            close_app(made)


#: The shipped example policies: the live server and ``serve_app`` use them unless told otherwise.
SHIPPED_POLICIES = str(Path(__file__).resolve().parents[2] / "policies")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A clean database for this session and worker."""
    if not os.environ.get(PG_ENV):
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'uma-test.db'}"
        return
    with _pg_schema(f"uma_test_{_worker()}_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture()
def fresh_database_url(tmp_path: Any) -> Iterator[str]:
    """A database of the test's own, not migrated (a SQLite file, or a PostgreSQL schema dropped
    afterwards): for servers whose policy files must not meet those of the session's servers."""
    with own_database(tmp_path) as url:
        yield url


@contextmanager
def own_database(tmp_path: Any) -> Iterator[str]:
    """``fresh_database_url`` as a block: a SQLite file in ``tmp_path``, or a PostgreSQL schema
    dropped at the end; either way the apps made on it inside are closed at the end."""
    if not os.environ.get(PG_ENV):
        with apps_closed_after(f"sqlite:///{tmp_path / 'own.db'}") as url:
            yield url
        return
    with _pg_schema(f"uma_own_{uuid.uuid4().hex[:10]}") as url:
        yield url


@contextmanager
def _pg_schema(schema: str) -> Iterator[str]:
    """A new PostgreSQL schema, as a database URL whose search path is that schema; dropped after
    the apps made on it (:func:`apps_closed_after`)."""
    base = os.environ[PG_ENV]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        with apps_closed_after(f"{base}{sep}options=-csearch_path%3D{schema}") as url:
            yield url
    finally:
        _drop_schema(admin, schema)
        admin.dispose()


def _drop_schema(admin: Any, schema: str) -> None:
    """Drop a test schema; an app some test left running may still read it from a background
    thread, and PostgreSQL then ends one side of the deadlock: try again."""
    for attempt in range(5):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(1)


@pytest.fixture(scope="session")
def engine(database_url: str):
    eng = make_engine(database_url)
    upgrade_database(eng)
    yield eng
    eng.dispose()


@pytest.fixture()
def db_session(engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


class _Dispatch:
    """WSGI entry bound before the app exists, so the app's issuer can name the real port."""

    app: Any = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@dataclass
class LiveServer:
    url: str
    port: int
    app: Any

    def __str__(self) -> str:
        return self.url


@pytest.fixture(scope="session")
def live_server(engine, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app served over real HTTP on 127.0.0.1 with a free port, in a background thread."""
    dispatch = _Dispatch()
    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    dispatch.app = create_app(
        {
            "database_url": database_url,
            "issuer": url,
            "secret_key": secrets.token_hex(32),
            "instance_path": str(tmp_path_factory.mktemp("instance")),
            "policy_dir": SHIPPED_POLICIES,
            "rpt_format": "jwt",
            "purge_interval": 0,  # tests/server/test_purge.py purges; a background purge mid-test would not be seen
            # Every test's requests come from 127.0.0.1: a limit per address would soon lock them all
            # out (the lockout's own tests serve apps with their limits: tests/server/test_lockout.py).
            "lockout_address_attempts": 0,
            "TESTING": True,
        }
    )
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(url=url, port=server.port, app=dispatch.app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        close_app(dispatch.app)  # its policy and purge threads stop before the schema is dropped


@contextmanager
def serve_app(config: dict[str, Any]) -> Iterator[str]:
    """Serve ``create_app(config)`` over HTTP on a free port (its ``issuer`` defaults to its own
    URL) until the block ends; yields the URL."""
    dispatch = _Dispatch()
    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    dispatch.app = create_app(
        {"issuer": url, "secret_key": secrets.token_hex(32), "policy_dir": SHIPPED_POLICIES, "TESTING": True, **config}
    )
    thread = threading.Thread(target=server.serve_forever, name="other-server", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)
        close_app(dispatch.app)


@pytest.fixture(autouse=True)
def background_lines_out_of_captured_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """The background threads of the apps a test session keeps open (``uma-policies``,
    ``uma-purge``, ``uma-notify``) log whenever the shared database changes, and the server's
    stderr handler writes to whatever ``sys.stderr`` is then: the stderr ``capsys`` captured for
    another test, which counts its lines (a CI run failed on "policy set version … in use" from
    another app in the middle of ``uma bogus``'s one-line error). Those lines are left out of
    stderr here; pytest's log capture (``caplog``, a failure's "Captured log" section) keeps them."""
    from app import logs

    own_filter = logs._StderrHandler.filter

    def filter_(self: Any, record: Any) -> Any:
        return not record.threadName.startswith("uma-") and own_filter(self, record)

    monkeypatch.setattr(logs._StderrHandler, "filter", filter_)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail naming ``what``
    after ``timeout`` seconds. For changes that another thread or process takes in within a
    bounded delay: a deadline for a condition, not an assertion about speed."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def close_app(app: Any) -> None:
    """Stop an app's purge, notification and policy threads and close its database connections (a test's extra
    app must not keep PostgreSQL connections, nor an inotify watch, until the end of the session);
    :func:`app.factory.close_app`, waiting for a check or batch in flight to end before the database goes."""
    from app.factory import close_app as close

    close(app, wait=10)
    apps = _open_apps.get(app.config["UMA_SETTINGS"].database_url, [])
    apps[:] = [a for a in apps if a is not app]


@pytest.fixture(scope="session")
def app(live_server: LiveServer):
    """The application object behind the live server."""
    return live_server.app


@pytest.fixture(scope="session")
def settings(app):
    return app.config["UMA_SETTINGS"]


@pytest.fixture()
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30, follow_redirects=False) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class UserInfo:
    username: str
    password: str
    claims: dict[str, Any]


@dataclass
class ClientInfo:
    client_id: str
    client_secret: str | None
    row: Any

    @property
    def basic_auth(self) -> tuple[str, str]:
        assert self.client_secret is not None
        return (self.client_id, self.client_secret)


@dataclass
class PatInfo:
    token: str
    owner: str
    rs: ClientInfo

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def make_user(engine):
    from app.users import create_user

    def _make(username: str | None = None, password: str | None = None, claims: dict | None = None) -> UserInfo:
        username = username or unique("user")
        password = password or "pw-" + secrets.token_hex(8)
        with Session(engine) as session:
            create_user(session, username, password, claims)
            session.commit()
        return UserInfo(username, password, dict(claims or {}))

    return _make


@pytest.fixture(scope="session")
def make_client(engine):
    from app.oauth.clients import create_client

    def _make(**kwargs: Any) -> ClientInfo:
        kwargs.setdefault("client_name", unique("client"))
        with Session(engine, expire_on_commit=False) as session:
            row, secret = create_client(session, **kwargs)
            session.commit()
        return ClientInfo(row.client_id, secret, row)

    return _make


@pytest.fixture(scope="session")
def make_rs(make_client):
    """A confidential resource-server client allowed the uma_protection scope."""

    def _make(owner: str | None = None, **kwargs: Any) -> ClientInfo:
        kwargs.setdefault("grant_types", ["client_credentials", "authorization_code", "refresh_token"])
        kwargs.setdefault("redirect_uris", ["https://rs.example.net/cb"])
        kwargs.setdefault("scope", "uma_protection")
        return make_client(owner=owner, **kwargs)

    return _make


@pytest.fixture(scope="session")
def pat_for(engine, make_rs, app):
    """Issue a PAT for ``owner`` at ``rs`` (a new RS when not given) straight into the database."""
    from app.oauth.tokens import issue_token

    def _make(owner: str, rs: ClientInfo | None = None, scope: str = "uma_protection") -> PatInfo:
        rs = rs or make_rs()
        with Session(engine) as session:
            body, _ = issue_token(
                session,
                app.config["UMA_SETTINGS"],
                client_id=rs.client_id,
                subject=owner,
                scope=scope,
                grant_type="authorization_code",
                include_refresh=False,
            )
            session.commit()
        return PatInfo(body["access_token"], owner, rs)

    return _make


_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no CSRF token in page"
    return match.group(1)


_HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_CHECKED_RE = re.compile(r'<input type="checkbox"[^>]* name="claim" value="([^"]+)" checked>')


def consent_form(html: str, decision: str = "allow", *, remember: bool = False, claims: Any = None) -> dict[str, Any]:
    """What a browser posts from the claims-interaction consent page: its hidden fields, the
    claim boxes ticked (as the page ticks them, or only ``claims``), the remember box, the button."""
    form: dict[str, Any] = {name: value.replace("&amp;", "&") for name, value in _HIDDEN_RE.findall(html)}
    ticked = _CHECKED_RE.findall(html)
    form["claim"] = [c for c in ticked if claims is None or c in claims]
    if remember:
        form["remember"] = "yes"
    form["decision"] = decision
    return form


@pytest.fixture(scope="session")
def login():
    """``login(http, user)``: log ``user`` in through the login form (GET, read CSRF, POST)."""

    def _login(http: httpx.Client, user: UserInfo) -> httpx.Response:
        page = http.get("/login")
        assert page.status_code == 200
        response = http.post(
            "/login",
            data={
                "username": user.username,
                "password": user.password,
                "csrf_token": csrf_from(page.text),
                "next": "/",
            },
        )
        assert response.status_code == 303, response.text
        return response

    return _login
