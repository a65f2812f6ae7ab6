"""Server-rendered pages: login/logout, the session of a logged-in person.

Who is logged in is kept server-side (:mod:`app.identity.sessions`): the cookie carries a
session id, so logout, a password change or ``end_sessions`` end the session in every process.

Other parts (OAuth consent here; claims interaction and owner pages of the UMA
grant) use :func:`current_user` and :func:`login_required`. Every unsafe request
to a page carries the session's anti-CSRF token: forms render ``{{ csrf_token() }}``
in a hidden ``csrf_token`` field, scripts send it in ``X-CSRF-Token``; Flask-WTF's
``CSRFProtect`` checks it before any page's view runs (``app/factory.py``), so a
view never has to remember to.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, render_template, request, session, url_for

from .. import get_settings
from ..db import get_session
from ..identity.lockout import Locked, guard, wait_in_words
from ..identity.sessions import end_session, session_user, start_session
from ..models import User
from ..users import authenticate

bp = Blueprint("web", __name__)

#: The cookie's session id (its SHA-256 is the ``browser_sessions`` row).
_SESSION_ID = "sid"

#: Every HTML page loads only this server's own stylesheet and script: no inline code, no other
#: origin, never framed; its forms post to this server (``form-action``, completed by
#: :func:`page_csp` with the targets a page allowed through :func:`allow_form_target`).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_HOST_PORT = re.compile(r"[a-z0-9.-]+(:[0-9]{1,5})?|\[[0-9a-f:.]+\](:[0-9]{1,5})?")


def _csp_source(uri: str) -> str | None:
    """The CSP source expression of a redirect URI's origin (``https://host:port``; ``scheme:`` for
    a native app's private-use scheme), or None when it cannot be written safely (then the page's
    form cannot redirect there: closed, not open)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not _SCHEME.fullmatch(scheme):
        return None
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    host = parts.netloc.rpartition("@")[2].lower()
    return f"{scheme}://{host}" if _HOST_PORT.fullmatch(host) else None


def allow_form_target(uri: str | None) -> None:
    """Let this request's page's form lead to ``uri``, a client's registered redirect URI that the
    AS redirects to after the form posts (OAuth consent, claims interaction: O-55). Browsers check
    ``form-action`` on the redirect too, by origin."""
    source = _csp_source(uri) if uri else None
    if source is not None:
        g.setdefault("uma_form_targets", []).append(source)


def page_csp() -> str:
    """The Content-Security-Policy of an HTML page of this request (set by ``app/factory.py``)."""
    targets = " ".join(["'self'", *g.get("uma_form_targets", [])])
    return f"{PAGE_CSP}; form-action {targets}"


@bp.after_request
def _page_headers(response: Response) -> Response:
    """Owner pages are private and change often: never cached (their CSP: ``app/factory.py``)."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def current_user() -> User | None:
    """The person whose live server-side session the cookie names (looked up once a request)."""
    if "uma_user" not in g:
        sid = session.get(_SESSION_ID)
        g.uma_user = session_user(get_session(), sid) if sid else None
    return g.uma_user


def login_user(user: User) -> None:
    """Start a fresh session for ``user`` (renewal on login: the old session, if any, ends and
    nothing of it survives)."""
    db = get_session()
    end_session(db, session.get(_SESSION_ID))
    sid = start_session(db, user)
    db.commit()
    session.clear()
    session[_SESSION_ID] = sid
    session.permanent = True
    g.uma_user = user


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else becomes ``/`` (no open redirect, O-44)."""
    if (
        not target
        or len(target) > 2048
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return url_for("web.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("web.home")
    return target


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anonymous visitors to the login page, coming back to this URL afterwards."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")), code=303)
        return view(*args, **kwargs)

    return wrapped


@bp.get("/")
def home() -> Any:
    """The signed-in owner's overview (links to every page), or a welcome with the login link."""
    user = current_user()
    if user is None:
        return render_template("home.html", user=None)
    from .. import owner_service
    from .common import render_page

    return render_page("home.html", user=user, overview=owner_service.overview(get_session(), user.username))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Log in with a local account; 303 to ``next`` afterwards (O-54). Too many failures for the
    name or from the address: 429 and ``Retry-After``, the page saying when to try again, and no
    password checked (:mod:`app.identity.lockout`)."""
    target = safe_next(request.values.get("next"))
    error, status = None, 200
    headers: dict[str, str] = {}
    settings = get_settings()
    if request.method == "POST" and not settings.password_login:
        error, status = "Sign-in with a password is turned off here: use one of the identity providers.", 401
    elif request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        error, status = "Unknown user name or wrong password.", 401
        if username and password:
            try:
                attempt = guard("user", username)  # before the password hash is computed
            except Locked as locked:
                error, status, headers = _locked_words(locked), 429, dict(locked.headers)
            else:
                user = authenticate(get_session(), username, password)
                if user is not None:
                    attempt.succeeded()
                    login_user(user)
                    return redirect(target, code=303)
                attempt.failed()
    purpose = "claims" if target.startswith("/uma/claims") else "authorize" if target.startswith("/authorize") else None
    return (
        render_template(
            "login.html",
            next=target,
            error=error,
            purpose=purpose,
            password_login=settings.password_login,
            providers=settings.identity_providers,
        ),
        status,
        headers,
    )


def _locked_words(locked: Locked) -> str:
    """What the login page says while the name or the address is locked (issue 13, point 3)."""
    return (
        "Too many failed sign-ins for this user name or from your network. For your protection, "
        f"sign-in is paused: try again in {wait_in_words(locked.retry_after)}."
    )


@bp.post("/logout")
def logout() -> Any:
    """End the session here and in every process: the cookie, replayed, is anonymous."""
    db = get_session()
    end_session(db, session.get(_SESSION_ID))
    db.commit()
    session.clear()
    g.uma_user = None
    return redirect(url_for("web.login"), code=303)


# The pages of the other modules join ``bp`` when they are imported.
from . import notifications, policy_pages, shared, sharing, upstream  # noqa: E402, F401
