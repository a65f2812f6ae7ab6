"""Helpers shared by the owner pages: the signed-in owner, rendering with the navigation,
template filters. What the pages show and change comes from :mod:`app.owner_service`,
where every lookup is scoped to the signed-in owner."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import abort, render_template
from markupsafe import Markup

from .. import owner_service
from ..db import get_session
from ..models import User
from ..policies import UPLOAD_PREFIX
from . import current_user


def owner() -> User:
    """The signed-in person (routes using this are behind :func:`login_required`)."""
    user = current_user()
    if user is None:  # login_required ran first; a user removed meanwhile is simply not found
        abort(404)
    return user


def render_page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """Render an owner page with the navigation (signed-in owner, pending-request count)."""
    user = context.get("user") or owner()
    context["user"] = user
    context.setdefault("nav_pending", owner_service.pending_count(get_session(), user.username))
    context["owner_nav"] = True
    return render_template(template, **context), status


# -- template filters -----------------------------------------------------------


def when(epoch: int | None) -> str:
    """``2026-11-27 10:00 UTC`` for an epoch, ``—`` for none."""
    if epoch is None:
        return "—"
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M UTC")


_RULE_RE = re.compile(r"^(?P<file>.+):(?P<line>\d+)$")


def rule_link(ref: str | None, owner_name: str) -> Markup:
    """A rule reference (``file:line``); the owner's own uploaded text links to that line of the editor."""
    if not ref:
        return Markup("default deny")
    match = _RULE_RE.match(ref)
    prefix = f"{UPLOAD_PREFIX}/{owner_name}/"
    if match and match["file"].startswith(prefix):
        return Markup('<a class="rule" href="/my/policy#L{line}">line {line} of your policy</a>').format(
            line=int(match["line"])
        )
    return Markup('<code class="rule">{}</code>').format(ref)


def claims_text(value: Any) -> str:
    """A claim value as it reads in a policy (strings unquoted only when plain)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False)


def party(value: str | None, names: dict[str, str]) -> str:
    """A requesting party as people read it: a person's name as recorded, or for a party known
    only by its application (``client:<id>``, :func:`app.grant.bridge.requesting_party_of`)
    "someone using" the application's name (issue 15 point 5)."""
    if not value:
        return "the requesting party"
    if value.startswith("client:"):
        client_id = value.removeprefix("client:")
        return f"someone using {names.get(client_id, client_id)}"
    return value


def query_link(path: str, **params: Any) -> str:
    parts = [f"{quote(k)}={quote(str(v), safe='')}" for k, v in params.items() if v not in (None, "")]
    return path + ("?" + "&".join(parts) if parts else "")


def init_filters(app: Any) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["claim_text"] = claims_text
    app.jinja_env.globals["rule_link"] = rule_link
    app.jinja_env.globals["query_link"] = query_link
    app.jinja_env.globals["party"] = party
