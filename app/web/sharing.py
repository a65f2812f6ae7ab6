"""Owner pages: my resources (who can use them, active grants), requests, history.

Each view reads the request, calls :mod:`app.owner_service` (which the owner API calls
too) and renders a page: who can use a resource is the engine's who-can over the policy
set in use, grants are the RPTs that still work, requests and answers are the owner API's.

=====  ======================================  =============================================
GET    /my/resources                            every resource of the owner, its scopes
GET    /my/resources/<id>                       who can use it (rules per scope), shares, active grants
POST   /my/resources/<id>/share                 share with a person: the diff, then (confirm=1) saved
POST   /my/resources/<id>/unshare               stop sharing (form line, claim, person): diff, then saved
POST   /my/grants/<rpt id>/revoke               revoke an RPT: it introspects inactive at once
POST   /my/approvals/<request id>/revoke        withdraw an approval (its RPTs lose it, G-76)
GET    /my/requests                             pending ask requests, recent answers
POST   /my/requests/<id>/approve                approve all or some scopes (form ``scopes``)
POST   /my/requests/<id>/deny                   refuse: what would be refused, then (confirm=1) refused
GET    /my/history?resource_id=&outcome=&show=  the owner's audit trail and own actions
=====  ======================================  =============================================
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from .. import audit
from .. import owner_service as service
from ..db import get_session
from ..errors import InvalidRequest
from . import bp, login_required
from .common import owner, render_page


@bp.get("/my/resources")
@login_required
def resources() -> Any:
    """Every resource registered for the signed-in owner, with its scopes and grant counts."""
    db = get_session()
    user = owner()
    rows = service.list_resources(db, user.username)
    counts: dict[str, int] = {}
    for g in service.grants(db, user.username):
        for p in g["permissions"]:
            counts[p["resource_id"]] = counts.get(p["resource_id"], 0) + 1
    for a in service.approvals(db, user.username):
        counts[a.resource_id] = counts.get(a.resource_id, 0) + 1
    servers = service.client_names(db, (r.rs_client_id for r in rows))
    return render_page("web/resources.html", user=user, resources=rows, counts=counts, servers=servers)


@bp.get("/my/resources/<resource_id>")
@login_required
def resource(resource_id: str) -> Any:
    """Who can use this resource now: the rules per scope, the active grants, each revocable."""
    db = get_session()
    user = owner()
    row = service.find_resource(db, user.username, resource_id)
    who_can = service.who_can(row)
    grants = service.grants(db, user.username, row.id)
    approvals = service.approvals(db, user.username, row.id)
    names = service.client_names(
        db, [row.rs_client_id, *(g["rpt"].client_id for g in grants), *(a.client_id for a in approvals)]
    )
    return render_page(
        "web/resource.html",
        user=user,
        resource=row,
        who_can=who_can,
        can_get=any(e["effect"] in ("permit", "ask") and not e["expired"] for es in who_can.values() for e in es),
        grants=grants,
        approvals=approvals,
        names=names,
        people=service.known_people(db),
        **service.shares(db, user.username, row),
    )


def _share_form() -> dict[str, Any]:
    form = request.form
    return {
        "who": form.get("who", "auto"),
        "claim": form.get("claim", ""),
        "person": form.get("person", ""),
        "scopes": form.getlist("scopes"),
        "duration": form.get("duration", ""),
        "until": form.get("until", ""),
        "ask": form.get("ask", ""),
    }


def _base_version() -> int:
    raw = request.form.get("version", "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= service.MAX_ID):
        raise InvalidRequest("The form names no policy version.")
    return int(raw)


def _confirm_or_save(row: Any, change: dict[str, Any], action: str, fields: dict[str, Any], done: str) -> Any:
    """First the diff with a confirm button (the same form again, ``confirm=1``); then the save,
    as a new version checked like any upload, only if the text is still the one shown."""
    user = owner()
    if request.form.get("confirm") != "1":
        return render_page(
            "web/share_confirm.html", user=user, resource=row, change=change, action=action, fields=fields
        )
    db = get_session()
    try:
        doc, _warnings = service.save_change(db, user.username, _base_version(), change["new"])
    except service.Conflict as exc:
        flash(exc.description, "error")
        return redirect(url_for("web.resource", resource_id=row.id), code=303)
    except service.InvalidPolicy as exc:
        first = exc.diagnostics[0]["rendered"] if exc.diagnostics else "the text does not check"
        flash(f"Nothing was changed: your policy would not check ({first}).", "error")
        return redirect(url_for("web.resource", resource_id=row.id), code=303)
    flash(f"{done} Saved as version {doc.version} of your policy.")
    return redirect(url_for("web.resource", resource_id=row.id), code=303)


@bp.post("/my/resources/<resource_id>/share")
@login_required
def share(resource_id: str) -> Any:
    """Share with a person: the rule the form makes, shown in the owner's text as a diff, then
    (``confirm=1``) saved as a new version (issue 15, point 1)."""
    db = get_session()
    user = owner()
    row = service.find_resource(db, user.username, resource_id)
    fields = _share_form()
    try:
        change = service.share_change(db, user.username, row, fields)
    except InvalidRequest as exc:
        flash(exc.description, "error")
        return redirect(url_for("web.resource", resource_id=row.id), code=303)
    return _confirm_or_save(row, change, url_for("web.share", resource_id=row.id), fields, "Shared.")


@bp.post("/my/resources/<resource_id>/unshare")
@login_required
def unshare(resource_id: str) -> Any:
    """Stop sharing with a person: their rule removed (or narrowed to the others it names),
    shown as a diff, then saved as a new version."""
    db = get_session()
    user = owner()
    row = service.find_resource(db, user.username, resource_id)
    raw_line = request.form.get("line", "")
    if not (raw_line.isascii() and raw_line.isdigit() and 0 < len(raw_line) <= 6):
        raise InvalidRequest("The form names no rule.")
    fields = {"line": raw_line, "claim": request.form.get("claim", ""), "person": request.form.get("person", "")}
    change = service.unshare_change(db, user.username, row, int(raw_line), fields["claim"], fields["person"])
    return _confirm_or_save(row, change, url_for("web.unshare", resource_id=row.id), fields, "Stopped sharing.")


def _back_to(resource_id: str | None, owner_name: str) -> Any:
    """After a change: the resource's page when the form named one of the owner's resources, else the list."""
    if resource_id and service.resources_by_id(get_session(), owner_name, [resource_id]):
        return redirect(url_for("web.resource", resource_id=resource_id), code=303)
    return redirect(url_for("web.resources"), code=303)


@bp.post("/my/grants/<int:rpt_id>/revoke")
@login_required
def revoke_grant(rpt_id: int) -> Any:
    """Revoke one RPT of the owner: from now on it introspects ``{"active": false}`` (O-31)."""
    user = owner()
    service.revoke_grant(get_session(), user.username, rpt_id)
    flash("Access revoked: that token no longer works.")
    return _back_to(request.form.get("resource_id"), user.username)


@bp.post("/my/approvals/<int:request_id>/revoke")
@login_required
def revoke_approval(request_id: int) -> Any:
    """Withdraw an approval: the answer becomes a refusal, and the party's tokens lose what it gave (G-42, G-76)."""
    user = owner()
    row = service.withdraw_approval(get_session(), user.username, request_id)
    flash("Approval withdrawn: the access it gave stops now.")
    return _back_to(request.form.get("resource_id") or row.resource_id, user.username)


# -- requests -------------------------------------------------------------------


@bp.get("/my/requests")
@login_required
def requests_page() -> Any:
    """Pending ask requests (who, which client, which resource and scopes, when) and recent answers."""
    db = get_session()
    user = owner()
    pending = service.list_requests(db, user.username, "pending")
    answered = [r for r in service.list_requests(db, user.username, "all", limit=60) if r.status != "pending"][:20]
    rows = [*pending, *answered]
    return render_page(
        "web/requests.html",
        user=user,
        pending=pending,
        answered=answered,
        why=service.asked_by(db, pending),
        resources=service.resources_by_id(db, user.username, (r.resource_id for r in rows)),
        names=service.client_names(db, (r.client_id for r in rows)),
        nav_pending=len(pending),
    )


@bp.post("/my/requests/<int:request_id>/approve")
@login_required
def approve_request(request_id: int) -> Any:
    """Approve the checked scopes (all requested when the form names none); the polling client
    then gets its RPT (G-42)."""
    db = get_session()
    row = service.find_request(db, owner().username, request_id)
    try:
        row = service.approve(db, row, request.form.getlist("scopes") or service.ALL_REQUESTED)
    except InvalidRequest as exc:
        flash(exc.description, "error")
        return redirect(url_for("web.requests_page"), code=303)
    flash(f"Approved {', '.join(row.scopes_approved)} for {row.requesting_party or 'the requesting party'}.")
    return redirect(url_for("web.requests_page"), code=303)


@bp.post("/my/requests/<int:request_id>/deny")
@login_required
def deny_request(request_id: int) -> Any:
    """Refuse: the polling client gets ``request_denied`` (G-41, G-42). The Deny button first
    shows what would be refused, with a confirm button posting this form again with
    ``confirm=1`` (issue 15 point 6: a slip of the finger refuses nothing; no script needed)."""
    db = get_session()
    user = owner()
    row = service.find_request(db, user.username, request_id)
    if request.form.get("confirm") != "1":
        return render_page(
            "web/deny_confirm.html",
            user=user,
            r=row,
            resource=service.resources_by_id(db, user.username, [row.resource_id]).get(row.resource_id),
            names=service.client_names(db, [row.client_id]),
        )
    row = service.deny(db, row)
    flash(f"Refused the request of {row.requesting_party or 'the requesting party'}.")
    return redirect(url_for("web.requests_page"), code=303)


# -- history --------------------------------------------------------------------

#: Records shown on one page of the history.
PAGE_SIZE = 50
#: What the history shows: decisions and the owner's own actions, or one of them.
SHOW = ("all", "decisions", "actions")


@bp.get("/my/history")
@login_required
def history() -> Any:
    """The owner's audit trail, newest first; filters by resource and outcome, 50 per page;
    beside it the owner's own actions (policy versions, shares, answers; issue 15 point 5)."""
    db = get_session()
    user = owner()
    resource_id = request.args.get("resource_id") or None
    outcome = request.args.get("outcome") or None
    before = request.args.get("before")  # a link of this page; anything else starts at the newest
    digits = before is not None and before.isascii() and before.isdigit() and len(before) <= 10
    before_id = int(before) if digits and int(before) <= service.MAX_ID else None  # type: ignore[arg-type]
    show = request.args.get("show") or "all"
    if show not in SHOW:
        raise InvalidRequest("show must be all, decisions or actions.")
    records = (
        service.audit_records(
            db, user.username, resource_id=resource_id, outcome=outcome, limit=PAGE_SIZE + 1, before_id=before_id
        )
        if show != "actions"
        else []
    )
    actions = (
        service.owner_actions(db, user.username, resource_id=resource_id)
        if show != "decisions" and before_id is None and outcome is None
        else []
    )
    return render_page(
        "web/history.html",
        user=user,
        records=records[:PAGE_SIZE],
        more=len(records) > PAGE_SIZE,
        outcomes=audit.OUTCOMES,
        resource_id=resource_id,
        outcome=outcome,
        all_resources=service.list_resources(db, user.username),
        resources=service.resources_by_id(
            db, user.username, [*(r.resource_id for r in records), *(a.get("resource_id") for a in actions)]
        ),
        names=service.client_names(db, [*(r.client_id for r in records), *(a.get("client_id") for a in actions)]),
        actions=actions,
        show=show,
        versions=service.policy_versions(db, user.username),
    )
