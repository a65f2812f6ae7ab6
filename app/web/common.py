"""Helpers shared by the owner pages: the signed-in owner, owner-scoped lookups, rendering.

Every lookup here is scoped to the signed-in owner: an id of another owner's
resource, request, grant or policy version is "not found" (404), the same as an
id that does not exist, so the pages never show or change anything of another
owner (issue item 7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import abort, render_template
from markupsafe import Markup
from sqlalchemy import func, select
from sqlmodel import Session

from ..db import get_session
from ..models import OAuthClient, PendingRequest, Resource, User
from ..policies import UPLOAD_PREFIX
from . import current_user


def owner() -> User:
    """The signed-in person (routes using this are behind :func:`login_required`)."""
    user = current_user()
    if user is None:  # login_required ran first; a user removed meanwhile is simply not found
        abort(404)
    return user


def storable(value: str) -> bool:
    """Whether a string from a request can be compared in SQL (PostgreSQL refuses NUL characters)."""
    return "\x00" not in value


def own_resource(db: Session, owner_name: str, resource_id: str) -> Resource:
    row = db.get(Resource, resource_id) if len(resource_id) <= 64 and storable(resource_id) else None
    if row is None or row.owner != owner_name:
        abort(404)
    return row


#: Largest id a table's integer key can hold; a bigger number in a path is simply not found.
MAX_ID = 2**31 - 1


def own_request(db: Session, owner_name: str, request_id: int) -> PendingRequest:
    row = db.get(PendingRequest, request_id) if 0 < request_id <= MAX_ID else None
    if row is None or row.owner != owner_name:
        abort(404)
    return row


def owner_resources(db: Session, owner_name: str) -> list[Resource]:
    return list(
        db.execute(select(Resource).where(Resource.owner == owner_name).order_by(Resource.name, Resource.id)).scalars()
    )


def resources_by_id(db: Session, owner_name: str, ids: Iterable[str | None]) -> dict[str, Resource]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = db.execute(select(Resource).where(Resource.owner == owner_name, Resource.id.in_(wanted))).scalars()
    return {r.id: r for r in rows}


def client_names(db: Session, ids: Iterable[str | None]) -> dict[str, str]:
    """Display names of clients (their registered ``client_name``, else the id)."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = db.execute(select(OAuthClient).where(OAuthClient.client_id.in_(wanted))).scalars()
    return {c.client_id: c.client_name or c.client_id for c in rows}


def pending_count(db: Session, owner_name: str) -> int:
    return int(
        db.execute(
            select(func.count())
            .select_from(PendingRequest)
            .where(PendingRequest.owner == owner_name, PendingRequest.status == "pending")
        ).scalar_one()
    )


def render_page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """Render an owner page with the navigation (signed-in owner, pending-request count)."""
    user = context.get("user") or owner()
    context["user"] = user
    context.setdefault("nav_pending", pending_count(get_session(), user.username))
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


def query_link(path: str, **params: Any) -> str:
    parts = [f"{quote(k)}={quote(str(v), safe='')}" for k, v in params.items() if v not in (None, "")]
    return path + ("?" + "&".join(parts) if parts else "")


def init_filters(app: Any) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["claim_text"] = claims_text
    app.jinja_env.globals["rule_link"] = rule_link
    app.jinja_env.globals["query_link"] = query_link
