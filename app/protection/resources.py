"""Resource registration endpoint (FedAuthz §3.2; F-14…F-30, G-02, A8, A9, A12).

Every operation is scoped to the PAT's (owner, RS) pair: a resource of another
owner or registered by another RS is "not found" (F-27).

    POST   /uma/resources/        → 201, Location {rreguri}/{_id}, {"_id", "user_access_policy_uri"?}
    GET    /uma/resources/{_id}   → 200, the description + "_id"
    PUT    /uma/resources/{_id}   → 200, {"_id", ...}  (full replacement, F-24)
    DELETE /uma/resources/{_id}   → 204
    GET    /uma/resources/        → 200, ["_id", ...]
    other methods                 → 405 unsupported_method_type (F-28)
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify
from sqlalchemy import select
from sqlmodel import Session

from .. import get_settings
from ..body import json_body
from ..db import get_session
from ..errors import NO_STORE, InvalidRequest, NotFound
from ..models import Resource, Token
from ..security import now
from .auth import current_pat, pat_required

bp = Blueprint("resources", __name__)

RREG_PATH = "/uma/resources"
MAX_SCOPES = 256
MAX_SCOPE_LENGTH = 512
MAX_TEXT = 4096
TEXT_MEMBERS = ("name", "type", "description", "icon_uri")
#: Members the AS sets itself; ignored in a request body.
AS_MEMBERS = ("_id", "user_access_policy_uri")


def parse_description(data: Any) -> dict[str, Any]:
    """Validate a resource description (F-14, F-15, F-29); returns the fields to store."""
    if not isinstance(data, dict):
        raise InvalidRequest("The resource description must be a JSON object.")
    scopes = data.get("resource_scopes")
    if scopes is None:
        raise InvalidRequest("'resource_scopes' is required (F-14).")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequest("'resource_scopes' must be an array of strings.")
    if len(scopes) > MAX_SCOPES:
        raise InvalidRequest(f"At most {MAX_SCOPES} resource_scopes are accepted.")
    for scope in scopes:
        if not scope or len(scope) > MAX_SCOPE_LENGTH or any(c.isspace() or ord(c) < 0x20 for c in scope):
            raise InvalidRequest("Each scope must be a non-empty string without spaces or control characters.")
    fields: dict[str, Any] = {"resource_scopes": list(dict.fromkeys(scopes))}
    for member in TEXT_MEMBERS:
        value = data.get(member)
        if value is None:
            fields[member] = None
            continue
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise InvalidRequest(f"'{member}' must be a string of at most {MAX_TEXT} characters.")
        fields[member] = value
    icon = fields["icon_uri"]
    if icon is not None:
        parts = urlsplit(icon)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise InvalidRequest("'icon_uri' must be an absolute http(s) URI.")
    extra = {k: v for k, v in data.items() if k not in ("resource_scopes", *TEXT_MEMBERS, *AS_MEMBERS)}
    fields["extra"] = extra
    return fields


def _policy_uri(resource_id: str) -> str | None:
    template = get_settings().user_access_policy_uri
    if not template:
        return None
    return template.format(issuer=get_settings().issuer, id=resource_id)


def find_resource(session: Session, pat: Token, resource_id: str) -> Resource:
    """The resource ``resource_id`` of the PAT's (owner, RS), or :class:`NotFound` (F-27)."""
    if len(resource_id) > 64 or "\x00" in resource_id:
        raise NotFound("No such resource.")
    row = session.get(Resource, resource_id)
    if row is None or row.owner != pat.owner or row.rs_client_id != pat.client_id:
        raise NotFound(f"No resource {resource_id!r} is registered for this owner and resource server.")
    return row


def register_resource(session: Session, pat: Token, fields: dict[str, Any]) -> Resource:
    """Store a new resource of the PAT's (owner, RS) with ``fields`` (:func:`parse_description`); commits."""
    resource_id = secrets.token_urlsafe(16)
    row = Resource(id=resource_id, owner=pat.owner, rs_client_id=pat.client_id, **fields)
    row.user_access_policy_uri = _policy_uri(resource_id)
    session.add(row)
    session.commit()
    return row


def replace_resource(session: Session, row: Resource, fields: dict[str, Any]) -> None:
    """Replace a resource's whole description with ``fields`` (F-24); commits."""
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = now()
    session.add(row)
    session.commit()


def resources_of(session: Session, pat: Token) -> list[Resource]:
    """Every resource of the PAT's (owner, RS), oldest first (F-26)."""
    return list(
        session.execute(
            select(Resource)
            .where(Resource.owner == pat.owner, Resource.rs_client_id == pat.client_id)
            .order_by(Resource.created_at, Resource.id)
        ).scalars()
    )


def _id_answer(row: Resource, status: int) -> Response:
    body: dict[str, Any] = {"_id": row.id}
    if row.user_access_policy_uri:
        body["user_access_policy_uri"] = row.user_access_policy_uri
    response = jsonify(body)
    response.status_code = status
    response.headers.update(NO_STORE)
    return response


@bp.post(RREG_PATH)
@bp.post(RREG_PATH + "/")
@pat_required
def create_resource() -> Response:
    """Create (F-22): ``POST rreguri/`` + resource description → 201 + Location + ``_id``."""
    row = register_resource(get_session(), current_pat(), parse_description(json_body()))
    response = _id_answer(row, 201)
    response.headers["Location"] = get_settings().url(f"{RREG_PATH}/{row.id}")
    return response


@bp.get(RREG_PATH)
@bp.get(RREG_PATH + "/")
@pat_required
def list_resources() -> Response:
    """List (F-26, A8): the ``_id`` of every resource of the PAT's (owner, RS)."""
    response = jsonify([row.id for row in resources_of(get_session(), current_pat())])
    response.headers.update(NO_STORE)
    return response


@bp.get(RREG_PATH + "/<path:resource_id>")
@pat_required
def read_resource(resource_id: str) -> Response:
    """Read (F-23): the stored description with ``_id``; 404 ``not_found`` otherwise."""
    row = find_resource(get_session(), current_pat(), resource_id)
    response = jsonify(row.description_document())
    response.headers.update(NO_STORE)
    return response


@bp.put(RREG_PATH + "/<path:resource_id>")
@pat_required
def update_resource(resource_id: str) -> Response:
    """Update (F-24): PUT replaces the whole description; 200 ``{"_id"}``."""
    session = get_session()
    row = find_resource(session, current_pat(), resource_id)
    replace_resource(session, row, parse_description(json_body()))
    return _id_answer(row, 200)


@bp.delete(RREG_PATH + "/<path:resource_id>")
@pat_required
def delete_resource(resource_id: str) -> Response:
    """Delete (F-25, A12): deregister → 204. Introspection stops listing it (F-30)."""
    session = get_session()
    row = find_resource(session, current_pat(), resource_id)
    session.delete(row)
    session.commit()
    return Response(status=204, headers=NO_STORE)
