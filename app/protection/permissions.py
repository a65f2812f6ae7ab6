"""Permission endpoint (FedAuthz §4; F-31…F-37, G-57, A7).

    POST /uma/permission   Authorization: Bearer <PAT>
    {"resource_id": "r1", "resource_scopes": ["view"]}            (or an array of such objects)
    → 201 {"ticket": "<256-bit random value>"}

Errors (400): ``invalid_request`` (malformed body), ``invalid_resource_id`` (unknown
resource, or one of another owner or RS, F-34), ``invalid_scope`` (scope not
registered for that resource).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select

from .. import get_settings
from ..body import json_body
from ..db import get_session
from ..errors import NO_STORE, InvalidRequest, InvalidResourceId, InvalidScope
from ..models import Resource
from .auth import current_pat, pat_required
from .tickets import issue_ticket

bp = Blueprint("permissions", __name__)

MAX_PERMISSIONS = 100


def parse_permission_request(data: Any) -> list[dict[str, Any]]:
    """One permission object or a non-empty array of them (F-31, F-32), merged per resource."""
    items = data if isinstance(data, list) else [data]
    if not items:
        raise InvalidRequest("The array of permissions is empty.")
    if len(items) > MAX_PERMISSIONS:
        raise InvalidRequest(f"At most {MAX_PERMISSIONS} permissions per request.")
    merged: dict[str, list[str]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise InvalidRequest("Each permission must be a JSON object.")
        resource_id = item.get("resource_id")
        scopes = item.get("resource_scopes")
        if not isinstance(resource_id, str) or not resource_id:
            raise InvalidRequest("'resource_id' is required and must be a string.")
        if scopes is None:
            raise InvalidRequest("'resource_scopes' is required (it may be an empty array).")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise InvalidRequest("'resource_scopes' must be an array of strings.")
        known = merged.setdefault(resource_id, [])
        known.extend(s for s in scopes if s not in known)
    return [{"resource_id": rid, "resource_scopes": scopes} for rid, scopes in merged.items()]


@bp.post("/uma/permission")
@pat_required
def request_permission() -> Response:
    """RS asks a ticket for the requested permissions of the PAT's owner (F-35: one ticket)."""
    permissions = parse_permission_request(json_body())
    pat = current_pat()
    session = get_session()
    ids = [p["resource_id"] for p in permissions]
    usable = [i for i in ids if len(i) <= 64 and "\x00" not in i]
    resources = {
        r.id: r
        for r in session.execute(
            select(Resource).where(
                Resource.id.in_(usable), Resource.owner == pat.owner, Resource.rs_client_id == pat.client_id
            )
        ).scalars()
    }
    missing = [i for i in ids if i not in resources]
    if missing:
        raise InvalidResourceId(f"Unknown resource id {missing[0][:64]!r}.")
    for p in permissions:
        available = set(resources[p["resource_id"]].resource_scopes)
        unknown = [s for s in p["resource_scopes"] if s not in available]
        if unknown:
            raise InvalidScope(f"Scope {unknown[0][:64]!r} is not registered for resource {p['resource_id']!r}.")
    raw, _ = issue_ticket(
        session,
        owner=pat.owner,
        rs_client_id=pat.client_id,
        permissions=permissions,
        lifetime=get_settings().ticket_lifetime,
    )
    session.commit()
    response = jsonify({"ticket": raw})
    response.status_code = 201
    response.headers.update(NO_STORE)
    return response
