"""The resource owner's API: pending requests and approvals, policy text, audit.

The UMA specifications leave the owner's interface to the AS out of scope (F-08,
§3.1 item 22); this API is this server's: it answers ``request_submitted``
(G-42), takes grants back quickly (G-76), and manages the owner's policy text.

Authentication (each request, one of):

* ``Authorization: Basic`` with the owner's local user name and password (curl, scripts);
  failures count towards the lockout of the login page (429 with ``Retry-After`` while locked,
  :mod:`app.identity.lockout`);
* ``Authorization: Bearer <token>`` with an OAuth access token of scope
  ``uma_owner`` issued to the owner (authorization code + PKCE; for owner apps);
* the browser session of the owner pages (login at ``/login``); unsafe methods
  then need the session's anti-CSRF token in ``X-CSRF-Token``.

Each view reads the request, calls :mod:`app.owner_service` (which the owner pages call too)
and answers JSON; errors ``{"error", "error_description"}``:

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
GET      /owner/notifications                          where the owner is told of pending requests, latest deliveries
POST     /owner/notifications/webhooks                 ``{"url"}``: register a webhook; its secret, this once
POST     /owner/notifications/emails                   ``{"address"}``: register an email address
DELETE   /owner/notifications/<id>                     remove a target (and its deliveries)
GET      /policies/status                              the policy set in use, its version, the last error
=======  ===========================================  =================================================
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_wtf.csrf import CSRFError

from . import audit, get_settings, notifications
from . import owner_service as service
from .body import json_object, refuse_media_type, text_body
from .db import get_session, policy_set_version
from .errors import ApiError, InvalidRequest, NotFound
from .http_auth import read_authorization
from .identity.lockout import guard
from .models import NotificationDelivery, NotificationTarget, PendingRequest, PolicyDocument
from .oauth.tokens import find_access_token
from .policies import MAX_POLICY_BYTES
from .users import authenticate, get_user
from .web import current_user

bp = Blueprint("owner_api", __name__)

OWNER_SCOPE = "uma_owner"
_CHALLENGE = 'Basic realm="uma-owner", Bearer realm="uma-owner"'


class Unauthenticated(ApiError):
    status = 401
    error = "invalid_token"

    def __init__(self, description: str):
        super().__init__(description, headers={"WWW-Authenticate": _CHALLENGE})


class Forbidden(ApiError):
    status = 403
    error = "insufficient_scope"


def _basic(credentials: tuple[str, str] | None) -> str:
    """The owner of RFC 7617 Basic credentials (user name and password as typed: not
    form-encoded, unlike a client's, RFC 6749 §2.3.1)."""
    if credentials is None:
        raise Unauthenticated("Malformed Basic credentials.")
    username, password = credentials
    attempt = guard("user", username)  # 429 while locked, before the password hash is computed
    user = authenticate(get_session(), username, password)
    if user is None:
        attempt.failed()
        raise Unauthenticated("Unknown user name or wrong password.")
    attempt.succeeded()
    return user.username


def _bearer(value: str | None) -> str:
    token = find_access_token(get_session(), value) if value is not None else None
    if token is None or token.is_expired() or token.is_revoked() or not token.subject:
        raise Unauthenticated("The access token is unknown, expired or revoked.")
    user = get_user(get_session(), token.subject)
    if user is None or not user.is_active:  # revoked when disabled; checked again all the same
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
    credentials = read_authorization(header)
    if credentials.scheme == "basic":
        return _basic(credentials.basic)
    if credentials.scheme == "bearer":
        return _bearer(credentials.bearer)
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
    rows = service.list_requests(get_session(), current_owner(), request.args.get("status", "pending"))
    return _json({"requests": [request_json(r) for r in rows]})


@bp.post("/owner/requests/<int(max=2147483647):request_id>/approve")
def approve(request_id: int) -> Response:
    """Approve all requested scopes, or only ``{"scopes": [...]}`` of them (the rest is refused)."""
    db = get_session()
    row = service.find_request(db, current_owner(), request_id)
    scopes = json_object(optional=True).get("scopes", service.ALL_REQUESTED)
    return _json(request_json(service.approve(db, row, scopes)))


@bp.post("/owner/requests/<int(max=2147483647):request_id>/deny")
def deny(request_id: int) -> Response:
    db = get_session()
    return _json(request_json(service.deny(db, service.find_request(db, current_owner(), request_id))))


# -- notifications (issue 15 point 4; the same functions as the notifications page) --------


def target_json(row: NotificationTarget) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "address": row.address, "created_at": row.created_at}


def delivery_json(row: NotificationDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "target_id": row.target_id,
        "request_id": row.request_id,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
    }


@bp.get("/owner/notifications")
def list_notifications() -> Response:
    db, owner = get_session(), current_owner()
    return _json(
        {
            "targets": [target_json(t) for t in notifications.targets(db, owner)],
            "deliveries": [delivery_json(d) for d in notifications.deliveries(db, owner)],
        }
    )


def _string_field(name: str) -> str:
    value = json_object().get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f'The JSON body must be {{"{name}": "…"}}.')
    return value


@bp.post("/owner/notifications/webhooks")
def add_webhook() -> Response:
    """Register a webhook; the answer carries its signing secret, the only time it is shown."""
    row, secret = notifications.add_webhook(
        get_session(), current_owner(), _string_field("url"), get_settings(), current_app.config["SECRET_KEY"]
    )
    return _json({**target_json(row), "secret": secret}, 201)


@bp.post("/owner/notifications/emails")
def add_email() -> Response:
    row = notifications.add_email(get_session(), current_owner(), _string_field("address"), get_settings())
    return _json(target_json(row), 201)


@bp.delete("/owner/notifications/<int(max=2147483647):target_id>")
def remove_target(target_id: int) -> Response:
    return _json(target_json(notifications.remove_target(get_session(), current_owner(), target_id)))


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
    """The body: ``{"text": …}`` as JSON, or the text itself."""
    if len(request.get_data(cache=True)) > MAX_POLICY_BYTES:
        raise InvalidRequest(f"The policy text is larger than {MAX_POLICY_BYTES} bytes.")
    if request.mimetype in ("", "text/plain"):
        return text_body()
    if request.mimetype != "application/json":
        raise refuse_media_type(("text/plain", "application/json"))
    text = json_object().get("text")
    if not isinstance(text, str):
        raise InvalidRequest('The JSON body must be {"text": "<policy text>"}.')
    return text


def _stored(doc: PolicyDocument, warnings: list[dict[str, Any]]) -> Response:
    body = document_json(doc)
    body["warnings"] = warnings
    body["policy_set_version"] = policy_set_version(get_session())
    return _json(body)


@bp.get("/owner/policy")
def get_policy() -> Response:
    doc = service.active_document(get_session(), current_owner())
    if doc is None:
        raise NotFound("You have no uploaded policy.")
    return _json(document_json(doc))


@bp.put("/owner/policy")
def put_policy() -> Response:
    """Check the text with the policy engine; store it as a new active version only if it checks."""
    return _stored(*service.save_policy(get_session(), current_owner(), _policy_text()))


@bp.delete("/owner/policy")
def delete_policy() -> Response:
    owner = current_owner()
    service.remove_policy(get_session(), owner)
    return _json({"owner": owner, "active": False, "policy_set_version": policy_set_version(get_session())})


@bp.get("/owner/policy/versions")
def list_versions() -> Response:
    rows = service.policy_versions(get_session(), current_owner())
    return _json({"versions": [document_json(r, with_text=False) for r in rows]})


@bp.get("/owner/policy/versions/<int(max=2147483647):number>")
def get_version(number: int) -> Response:
    return _json(document_json(service.find_version(get_session(), current_owner(), number)))


@bp.post("/owner/policy/versions/<int(max=2147483647):number>/restore")
def restore_version(number: int) -> Response:
    """The text of version ``number`` becomes the active one, as a new version (checked again)."""
    return _stored(*service.restore_version(get_session(), current_owner(), number))


# -- audit --------------------------------------------------------------------


@bp.get("/owner/audit")
def list_audit() -> Response:
    """The owner's decisions, newest first; filters ``resource_id``, ``outcome``; paging ``before``."""
    try:
        limit = int(request.args.get("limit", "100"))
        before = request.args.get("before")
        before_id = int(before) if before is not None else None
    except ValueError:
        raise InvalidRequest("limit and before must be integers.") from None
    rows = service.audit_records(
        get_session(),
        current_owner(),
        resource_id=request.args.get("resource_id"),
        outcome=request.args.get("outcome"),
        limit=limit,
        before_id=before_id,
    )
    return _json({"records": [audit.audit_json(r) for r in rows]})


# -- the policy set in use ----------------------------------------------------


@bp.get("/policies/status")
def policies_status() -> Response:
    """Version in the database, version this process serves, and the last set that did not check."""
    return _json(service.policies_status(current_owner()))
