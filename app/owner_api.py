"""The resource owner's API: pending requests and approvals, policy text, audit.

The UMA specifications leave the owner's interface to the AS out of scope (F-08,
§3.1 item 22); this API is this server's: it answers ``request_submitted``
(G-42), takes grants back quickly (G-76), and manages the owner's policy text.

Authentication (each request, one of):

* ``Authorization: Basic`` with the owner's local user name and password (curl, scripts);
* ``Authorization: Bearer <token>`` with an OAuth access token of scope
  ``uma_owner`` issued to the owner (authorization code + PKCE; for owner apps);
* the browser session of the owner pages (login at ``/login``); unsafe methods
  then need the session's anti-CSRF token in ``X-CSRF-Token``.

Endpoints (JSON; errors ``{"error", "error_description"}``):

=======  ===========================================  =================================================
GET      /owner/requests?status=pending|…|all          the owner's access requests (G-42)
POST     /owner/requests/<id>/approve                  ``{"scopes": [...]}`` optional: approve all or fewer
POST     /owner/requests/<id>/deny                     refuse (live RPTs lose the refused scopes at once)
GET      /owner/policy                                 the active uploaded policy text and its version
PUT      /owner/policy                                 new text (``text/plain`` or ``{"text": …}``), checked first
DELETE   /owner/policy                                 stop using the uploaded text
GET      /owner/policy/versions                        every version (newest first)
GET      /owner/policy/versions/<n>                    one version's text
POST     /owner/policy/versions/<n>/restore            make an earlier text the active one (a new version)
GET      /owner/audit?resource_id=&outcome=&limit=     the owner's decisions, newest first
GET      /policies/status                              the policy set in use, its version, the last error
=======  ===========================================  =================================================
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import audit
from .body import json_object, text_body
from .db import get_session, policy_set_version
from .errors import ApiError, InvalidRequest, NotFound
from .models import PendingRequest, PolicyDocument
from .oauth.tokens import find_access_token
from .policies import MAX_POLICY_BYTES, UPLOAD_PREFIX, PolicyRejected, get_store, upload_name
from .security import now
from .users import authenticate
from .web import current_user

bp = Blueprint("owner_api", __name__)

OWNER_SCOPE = "uma_owner"
_CHALLENGE = 'Basic realm="uma-owner", Bearer realm="uma-owner"'
STATUSES = ("pending", "approved", "denied")


class Unauthenticated(ApiError):
    status = 401
    error = "invalid_token"

    def __init__(self, description: str):
        super().__init__(description, headers={"WWW-Authenticate": _CHALLENGE})


class Forbidden(ApiError):
    status = 403
    error = "insufficient_scope"


class Conflict(ApiError):
    status = 409
    error = "conflict"


class InvalidPolicy(ApiError):
    """The uploaded text does not check; ``diagnostics`` lists why."""

    error = "invalid_policy"


def _basic(value: str) -> str:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthenticated("Malformed Basic credentials.") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthenticated("Malformed Basic credentials.")
    user = authenticate(get_session(), username, password)
    if user is None:
        raise Unauthenticated("Unknown user name or wrong password.")
    return user.username


def _bearer(value: str) -> str:
    token = find_access_token(get_session(), value.strip()) if value.strip() else None
    if token is None or token.is_expired() or token.is_revoked() or not token.subject:
        raise Unauthenticated("The access token is unknown, expired or revoked.")
    if OWNER_SCOPE not in scope_to_list(token.scope or ""):
        raise Forbidden(f"This API needs an owner token (scope {OWNER_SCOPE}).")
    return token.subject


@bp.before_request
def _authenticate() -> None:
    """Every request of this API is authenticated before its view runs (see the module docstring)."""
    g.uma_owner = _authenticated_owner()


def _authenticated_owner() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        return _basic(value)
    if scheme.lower() == "bearer":
        return _bearer(value)
    if header:
        raise Unauthenticated("Use Basic or Bearer authentication.")
    user = current_user()
    if user is None:
        raise Unauthenticated("Log in, or send Basic or Bearer credentials.")
    # The browser sends the session cookie by itself: a change needs the pages' anti-CSRF token.
    try:
        current_app.extensions["csrf"].protect()
    except CSRFError:
        raise Forbidden("Send the page's anti-CSRF token in X-CSRF-Token.") from None
    return user.username


def current_owner() -> str:
    """The authenticated owner's user name."""
    return str(g.uma_owner)


def _json(data: Any, status: int = 200) -> Response:
    response = jsonify(data)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


# -- access requests ----------------------------------------------------------


def request_json(row: PendingRequest) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "requesting_party": row.requesting_party,
        "client_id": row.client_id,
        "resource_id": row.resource_id,
        "scopes_requested": list(row.scopes_requested),
        "scopes_approved": list(row.scopes_approved),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "decided_at": row.decided_at,
    }


@bp.get("/owner/requests")
def list_requests() -> Response:
    """The owner's access requests, newest first; ``status`` filters (default ``pending``)."""
    owner = current_owner()
    status = request.args.get("status", "pending")
    if status not in (*STATUSES, "all"):
        raise InvalidRequest("status must be pending, approved, denied or all.")
    return _json({"requests": [request_json(r) for r in owner_requests(get_session(), owner, status)]})


def owner_requests(db: Any, owner: str, status: str = "pending", limit: int = 500) -> list[PendingRequest]:
    """An owner's access requests with ``status`` (or ``all``), newest first (API and owner pages)."""
    query = select(PendingRequest).where(PendingRequest.owner == owner)
    if status != "all":
        query = query.where(PendingRequest.status == status)
    return list(db.execute(query.order_by(PendingRequest.id.desc()).limit(limit)).scalars())


def _own_request(request_id: int) -> PendingRequest:
    row = get_session().get(PendingRequest, request_id)
    if row is None or row.owner != current_owner():
        raise NotFound("No such request.")
    return row


@bp.post("/owner/requests/<int(max=2147483647):request_id>/approve")
def approve(request_id: int) -> Response:
    """Approve all requested scopes, or only ``{"scopes": [...]}`` of them (the rest is refused)."""
    row = _own_request(request_id)
    data = json_object(optional=True)
    scopes = approved_scopes(row, data.get("scopes", list(row.scopes_requested)))
    return _answer(row, "approved", scopes)


def approved_scopes(row: PendingRequest, scopes: Any) -> list[str]:
    """Validate the scopes an owner approves: a non-empty subset of those requested."""
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequest("'scopes' must be a non-empty array of requested scopes (use deny to refuse all).")
    unknown = [s for s in scopes if s not in row.scopes_requested]
    if unknown:
        raise InvalidRequest(f"Scope {unknown[0][:64]!r} was not requested.")
    return list(dict.fromkeys(scopes))


@bp.post("/owner/requests/<int(max=2147483647):request_id>/deny")
def deny(request_id: int) -> Response:
    return _answer(_own_request(request_id), "denied", [])


def _answer(row: PendingRequest, status: str, scopes: list[str]) -> Response:
    return _json(request_json(answer_request(get_session(), row, status, scopes)))


def answer_request(db: Any, row: PendingRequest, status: str, scopes: list[str]) -> PendingRequest:
    """Record the owner's answer (``approved`` with ``scopes``, or ``denied``); commits (G-42).

    A refusal takes back what an earlier approval gave at once (G-76): introspection and
    refresh decide every RPT again with the owner's current answers (:mod:`app.grant.bridge`)."""
    at = now()
    row.status = status
    row.scopes_approved = scopes
    row.decided_at = at
    row.updated_at = at
    db.add(row)
    db.commit()
    return row


# -- policy text --------------------------------------------------------------


def document_json(doc: PolicyDocument, with_text: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "owner": doc.owner,
        "name": doc.name,
        "version": doc.version,
        "active": doc.active,
        "created_at": doc.created_at,
    }
    if with_text:
        data["text"] = doc.text
    return data


def _policy_text() -> str:
    if len(request.get_data(cache=True)) > MAX_POLICY_BYTES:
        raise InvalidRequest(f"The policy text is larger than {MAX_POLICY_BYTES} bytes.")
    if request.mimetype == "application/json":
        text = json_object().get("text")
        if not isinstance(text, str):
            raise InvalidRequest('The JSON body must be {"text": "<policy text>"}.')
        return _no_nul(text)
    return _no_nul(text_body())


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise InvalidRequest("The policy text must not contain NUL characters.")
    return text


def _store(owner: str, text: str, status: int) -> Response:
    session = get_session()
    try:
        doc, warnings = get_store().store_upload(session, owner, text)
    except PolicyRejected as exc:
        session.rollback()
        raise InvalidPolicy("The policy does not check; nothing was changed.", diagnostics=exc.diagnostics) from None
    except IntegrityError:
        session.rollback()
        raise Conflict("Another change of your policy was stored at the same moment; send it again.") from None
    body = document_json(doc)
    body["warnings"] = warnings
    body["policy_set_version"] = policy_set_version(session)
    return _json(body, status)


@bp.get("/owner/policy")
def get_policy() -> Response:
    doc = active_document(get_session(), current_owner())
    if doc is None:
        raise NotFound("You have no uploaded policy.")
    return _json(document_json(doc))


def active_document(db: Any, owner: str) -> PolicyDocument | None:
    """The owner's uploaded policy text in use, if any."""
    return (
        db.execute(select(PolicyDocument).where(PolicyDocument.owner == owner, PolicyDocument.active.is_(True)))
        .scalars()
        .first()
    )


@bp.put("/owner/policy")
def put_policy() -> Response:
    """Check the text with the policy engine; store it as a new active version only if it checks."""
    owner = current_owner()
    return _store(owner, _policy_text(), 200)


@bp.delete("/owner/policy")
def delete_policy() -> Response:
    owner = current_owner()
    if not get_store().remove_upload(get_session(), owner):
        raise NotFound("You have no uploaded policy.")
    return _json({"owner": owner, "active": False, "policy_set_version": policy_set_version(get_session())})


@bp.get("/owner/policy/versions")
def list_versions() -> Response:
    rows = policy_versions(get_session(), current_owner())
    return _json({"versions": [document_json(r, with_text=False) for r in rows]})


def policy_versions(db: Any, owner: str) -> list[PolicyDocument]:
    """Every version of the owner's uploaded policy text, newest first."""
    return list(
        db.execute(
            select(PolicyDocument).where(PolicyDocument.owner == owner).order_by(PolicyDocument.version.desc())
        ).scalars()
    )


def find_version(db: Any, owner: str, number: int) -> PolicyDocument | None:
    """Version ``number`` of the owner's policy text (never another owner's)."""
    return (
        db.execute(select(PolicyDocument).where(PolicyDocument.owner == owner, PolicyDocument.version == number))
        .scalars()
        .first()
    )


def _version(owner: str, number: int) -> PolicyDocument:
    doc = find_version(get_session(), owner, number)
    if doc is None:
        raise NotFound(f"No version {number}.")
    return doc


@bp.get("/owner/policy/versions/<int(max=2147483647):number>")
def get_version(number: int) -> Response:
    return _json(document_json(_version(current_owner(), number)))


@bp.post("/owner/policy/versions/<int(max=2147483647):number>/restore")
def restore_version(number: int) -> Response:
    """The text of version ``number`` becomes the active one, as a new version (checked again)."""
    owner = current_owner()
    return _store(owner, _version(owner, number).text, 200)


# -- audit --------------------------------------------------------------------


@bp.get("/owner/audit")
def list_audit() -> Response:
    """The owner's decisions, newest first; filters ``resource_id``, ``outcome``; paging ``before``."""
    owner = current_owner()
    outcome = request.args.get("outcome")
    if outcome is not None and outcome not in audit.OUTCOMES:
        raise InvalidRequest("outcome must be one of " + ", ".join(audit.OUTCOMES) + ".")
    try:
        limit = int(request.args.get("limit", "100"))
        before = request.args.get("before")
        before_id = int(before) if before is not None else None
    except ValueError:
        raise InvalidRequest("limit and before must be integers.") from None
    if before_id is not None and not 0 <= before_id <= 2**31 - 1:
        raise InvalidRequest("before is not a record id.")
    resource_id = request.args.get("resource_id")
    if resource_id is not None and ("\x00" in resource_id or len(resource_id) > 64):
        raise InvalidRequest("resource_id is not a resource id.")
    rows = audit.list_records(
        get_session(), owner, resource_id=resource_id, outcome=outcome, limit=limit, before_id=before_id
    )
    return _json({"records": [audit.audit_json(r) for r in rows]})


# -- the policy set in use ----------------------------------------------------


@bp.get("/policies/status")
def policies_status() -> Response:
    """Version in the database, version this process serves, and the last set that did not check.

    Diagnostics about other owners' uploaded texts are shown without their text
    (an owner's rules are their own business)."""
    owner = current_owner()
    status = get_store().status()
    if status["error"]:
        status["error"]["diagnostics"] = _visible(status["error"]["diagnostics"], owner)
    status["warnings"] = _visible(status["warnings"], owner)
    return _json(status)


def _visible(diagnostics: list[dict[str, Any]], owner: str) -> list[dict[str, Any]]:
    mine = upload_name(owner).rsplit("/", 1)[0] + "/"
    out = []
    for d in diagnostics:
        name = d.get("file") or ""
        if name.startswith(UPLOAD_PREFIX + "/") and not name.startswith(mine):
            d = {
                "code": d["code"],
                "severity": d["severity"],
                "file": f"{UPLOAD_PREFIX}/(another owner)",
                "line": None,
                "column": None,
                "message": "in another owner's uploaded policy",
                "hint": None,
                "rendered": f"{UPLOAD_PREFIX}/(another owner): {d['severity']}[{d['code']}]",
            }
        out.append(d)
    return out
