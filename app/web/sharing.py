"""Owner pages: my resources (who can use them, active grants), requests, history.

The pages call the same functions as the owner API and the UMA grant: the
engine's who-can over the policy set in use (:func:`policy_lang.who_can_data`),
the owner's requests and answers (:mod:`app.owner_api`), the RPT store
(:mod:`app.protection.rpt`) and the audit trail (:mod:`app.audit`).

=====  ======================================  =============================================
GET    /my/resources                            every resource of the owner, its scopes
GET    /my/resources/<id>                       who can use it (rules per scope), active grants
POST   /my/grants/<rpt id>/revoke               revoke an RPT: it introspects inactive at once
POST   /my/approvals/<request id>/revoke        withdraw an approval (its RPTs lose it, G-76)
GET    /my/requests                             pending ask requests, recent answers
POST   /my/requests/<id>/approve                approve all or some scopes (form ``scopes``)
POST   /my/requests/<id>/deny                   refuse
GET    /my/history?resource_id=&outcome=&before= the owner's audit trail
=====  ======================================  =============================================
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from flask import abort, flash, redirect, request, url_for
from sqlalchemy import select

from policy_lang import who_can_data

from .. import audit
from ..db import get_session
from ..errors import InvalidRequest
from ..grant.bridge import resource_attributes
from ..models import AuditRecord, PendingRequest, Resource, Rpt
from ..owner_api import answer_request, approved_scopes, owner_requests
from ..policies import get_store
from ..protection.rpt import active_rpts, revoke_rpt
from . import bp, login_required
from .common import (
    MAX_ID,
    client_names,
    own_request,
    own_resource,
    owner,
    owner_resources,
    render_page,
    resources_by_id,
    storable,
)


def _who_can(resource: Resource) -> OrderedDict[str, list[dict[str, Any]]]:
    """Per scope, the rules of the set in use that can decide it (the engine's who-can)."""
    policy_set = get_store().current().policy_set
    by_scope: OrderedDict[str, list[dict[str, Any]]] = OrderedDict((s, []) for s in resource.resource_scopes)
    for entry in who_can_data(policy_set, resource_attributes(resource), list(resource.resource_scopes)):
        by_scope.setdefault(entry["scope"], []).append(entry)
    return by_scope


def _grants(db: Any, owner_name: str, resource_id: str | None = None) -> list[dict[str, Any]]:
    """Working RPTs of the owner (on one resource, or all), newest first."""
    out = []
    for row, permissions in active_rpts(db, owner_name):
        perms = [p for p in permissions if resource_id is None or p["resource_id"] == resource_id]
        if perms:
            others = len({p["resource_id"] for p in permissions} - {p["resource_id"] for p in perms})
            out.append({"rpt": row, "permissions": perms, "other_resources": others})
    return out


def _approvals(db: Any, owner_name: str, resource_id: str | None = None) -> list[PendingRequest]:
    query = select(PendingRequest).where(PendingRequest.owner == owner_name, PendingRequest.status == "approved")
    if resource_id is not None:
        query = query.where(PendingRequest.resource_id == resource_id)
    return list(db.execute(query.order_by(PendingRequest.decided_at.desc()).limit(200)).scalars())


@bp.get("/my/resources")
@login_required
def resources() -> Any:
    """Every resource registered for the signed-in owner, with its scopes and grant counts."""
    db = get_session()
    user = owner()
    rows = owner_resources(db, user.username)
    grants = _grants(db, user.username)
    counts: dict[str, int] = {}
    for g in grants:
        for p in g["permissions"]:
            counts[p["resource_id"]] = counts.get(p["resource_id"], 0) + 1
    for a in _approvals(db, user.username):
        counts[a.resource_id] = counts.get(a.resource_id, 0) + 1
    servers = client_names(db, (r.rs_client_id for r in rows))
    return render_page("web/resources.html", user=user, resources=rows, counts=counts, servers=servers)


@bp.get("/my/resources/<resource_id>")
@login_required
def resource(resource_id: str) -> Any:
    """Who can use this resource now: the rules per scope, the active grants, each revocable."""
    db = get_session()
    user = owner()
    row = own_resource(db, user.username, resource_id)
    grants = _grants(db, user.username, row.id)
    approvals = _approvals(db, user.username, row.id)
    names = client_names(
        db, [row.rs_client_id, *(g["rpt"].client_id for g in grants), *(a.client_id for a in approvals)]
    )
    return render_page(
        "web/resource.html",
        user=user,
        resource=row,
        who_can=_who_can(row),
        grants=grants,
        approvals=approvals,
        names=names,
    )


def _back_to(resource_id: str | None, owner_name: str) -> Any:
    """After a change: the resource's page when the form named one of the owner's resources, else the list."""
    db = get_session()
    if resource_id and storable(resource_id) and resources_by_id(db, owner_name, [resource_id]):
        return redirect(url_for("web.resource", resource_id=resource_id), code=303)
    return redirect(url_for("web.resources"), code=303)


@bp.post("/my/grants/<int:rpt_id>/revoke")
@login_required
def revoke_grant(rpt_id: int) -> Any:
    """Revoke one RPT of the owner: from now on it introspects ``{"active": false}`` (O-31)."""
    db = get_session()
    user = owner()
    row = db.get(Rpt, rpt_id) if 0 < rpt_id <= MAX_ID else None
    if row is None or row.owner != user.username:
        abort(404)
    if not row.revoked:
        revoke_rpt(db, row)
    flash("Access revoked: that token no longer works.")
    return _back_to(request.form.get("resource_id"), user.username)


@bp.post("/my/approvals/<int:request_id>/revoke")
@login_required
def revoke_approval(request_id: int) -> Any:
    """Withdraw an approval: the answer becomes a refusal, and the party's tokens lose what it gave (G-42, G-76)."""
    db = get_session()
    user = owner()
    row = own_request(db, user.username, request_id)
    if row.status != "approved":
        abort(404)
    answer_request(db, row, "denied", [])  # tokens are decided again at each introspection (G-76)
    flash("Approval withdrawn: the access it gave stops now.")
    return _back_to(request.form.get("resource_id") or row.resource_id, user.username)


# -- requests -------------------------------------------------------------------


@bp.get("/my/requests")
@login_required
def requests_page() -> Any:
    """Pending ask requests (who, which client, which resource and scopes, when) and recent answers."""
    db = get_session()
    user = owner()
    pending = owner_requests(db, user.username, "pending")
    answered = [r for r in owner_requests(db, user.username, "all", limit=60) if r.status != "pending"][:20]
    rows = [*pending, *answered]
    return render_page(
        "web/requests.html",
        user=user,
        pending=pending,
        answered=answered,
        why=_asked_by(db, pending),
        resources=resources_by_id(db, user.username, (r.resource_id for r in rows)),
        names=client_names(db, (r.client_id for r in rows)),
        nav_pending=len(pending),
    )


def _asked_by(db: Any, pending: list[PendingRequest]) -> dict[int, list[dict[str, Any]]]:
    """For each pending request, the rules of its latest audited ``request_submitted`` decision."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in pending:
        record = (
            db.execute(
                select(AuditRecord)
                .where(
                    AuditRecord.owner == row.owner,
                    AuditRecord.resource_id == row.resource_id,
                    AuditRecord.requesting_party == row.requesting_party,
                    AuditRecord.outcome == "request_submitted",
                )
                .order_by(AuditRecord.id.desc())
                .limit(1)
            )
            .scalars()
            .first()
        )
        if record is not None:
            out[row.id] = [r for r in record.rules if r.get("effect") == "ask"]
    return out


@bp.post("/my/requests/<int:request_id>/approve")
@login_required
def approve_request(request_id: int) -> Any:
    """Approve the checked scopes (all requested when the form names none); the polling client
    then gets its RPT (G-42)."""
    db = get_session()
    user = owner()
    row = own_request(db, user.username, request_id)
    chosen = request.form.getlist("scopes")
    try:
        scopes = approved_scopes(row, chosen or list(row.scopes_requested))
    except InvalidRequest as exc:
        flash(exc.description, "error")
        return redirect(url_for("web.requests_page"), code=303)
    answer_request(db, row, "approved", scopes)
    flash(f"Approved {', '.join(scopes)} for {row.requesting_party or 'the requesting party'}.")
    return redirect(url_for("web.requests_page"), code=303)


@bp.post("/my/requests/<int:request_id>/deny")
@login_required
def deny_request(request_id: int) -> Any:
    """Refuse: the polling client gets ``request_denied`` (G-41, G-42)."""
    db = get_session()
    user = owner()
    row = own_request(db, user.username, request_id)
    answer_request(db, row, "denied", [])
    flash(f"Refused the request of {row.requesting_party or 'the requesting party'}.")
    return redirect(url_for("web.requests_page"), code=303)


# -- history --------------------------------------------------------------------


@bp.get("/my/history")
@login_required
def history() -> Any:
    """The owner's audit trail, newest first; filters by resource and outcome, 50 per page."""
    db = get_session()
    user = owner()
    resource_id = request.args.get("resource_id") or None
    outcome = request.args.get("outcome") or None
    if outcome is not None and outcome not in audit.OUTCOMES:
        abort(400, description="Unknown outcome filter.")
    if resource_id is not None and (len(resource_id) > 64 or not storable(resource_id)):
        abort(400, description="Unknown resource filter.")
    before = request.args.get("before")
    before_id = int(before) if before and before.isdigit() and len(before) <= 10 and int(before) <= MAX_ID else None
    records = audit.list_records(
        db, user.username, resource_id=resource_id, outcome=outcome, limit=51, before_id=before_id
    )
    more = len(records) > 50
    records = records[:50]
    mine = owner_resources(db, user.username)
    return render_page(
        "web/history.html",
        user=user,
        records=records,
        more=more,
        outcomes=audit.OUTCOMES,
        resource_id=resource_id,
        outcome=outcome,
        all_resources=mine,
        resources=resources_by_id(db, user.username, (r.resource_id for r in records)),
        names=client_names(db, (r.client_id for r in records)),
    )


def overview(owner_name: str) -> dict[str, Any]:
    """What the home page shows the signed-in owner: counts and the latest decisions."""
    from ..owner_api import active_document

    db = get_session()
    doc = active_document(db, owner_name)
    recent = audit.list_records(db, owner_name, limit=5)
    return {
        "resources": len(owner_resources(db, owner_name)),
        "grants": len(_grants(db, owner_name)) + len(_approvals(db, owner_name)),
        "pending": len(owner_requests(db, owner_name, "pending")),
        "policy_version": doc.version if doc is not None else None,
        "recent": recent,
        "resource_names": resources_by_id(db, owner_name, (r.resource_id for r in recent)),
        "names": client_names(db, (r.client_id for r in recent)),
    }
