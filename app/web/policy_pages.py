"""Owner pages: my policies (an editor that checks as you type, versions) and "try a request".

The editor's text is checked by the same function that guards a save, the
policy store's :meth:`~app.policies.PolicyStore.validate_upload` (``policy_lang``'s
checker over the owner's text with the signed-in owner as uploader, together with
the set in use); saving goes through :meth:`~app.policies.PolicyStore.store_upload`,
as ``PUT /owner/policy`` does. "Try a request" builds the policy request the UMA
grant builds (:func:`app.grant.bridge.policy_request`) and asks the engine to
decide and explain it (:func:`policy_lang.explain`) on the set in use;
nothing is recorded and nobody is asked.

=====  ===================================  ==================================================
GET    /my/policy                            the editor with the active text, the versions
POST   /my/policy                            save (``text``); refused with diagnostics (400)
POST   /my/policy/check                      JSON ``{"text"}`` → ``{"ok", "errors", "warnings"}``
GET    /my/policy/versions/<n>               one earlier version's text
POST   /my/policy/versions/<n>/restore       make it the active text (a new version)
GET    /my/try, POST /my/try                 pick resource, scopes, claims → decision + why
=====  ===================================  ==================================================
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, request, url_for

from policy_lang import EXPLAIN_STEPS as STEPS
from policy_lang import RequestError, explain

from ..body import BodyError, json_object, loads_strict
from ..db import get_session
from ..grant.bridge import iso_now, load_approvals, policy_request
from ..models import OAuthClient
from ..oauth.clients import get_client
from ..owner_api import active_document, find_version, policy_versions
from ..policies import MAX_POLICY_BYTES, PolicyRejected, get_store
from . import bp, login_required
from .common import MAX_ID, owner, owner_resources, render_page, storable

STARTER = """# Your sharing rules. Each rule: EFFECT SCOPES on TARGET [when CONDITION].
# For example:
# permit view on type "photo-album" when claims.email == "bob@example.com"
# ask view, download on any resource when claims.email ends with "@example.com"
"""

MAX_CLAIMS_BYTES = 16 * 1024


def _editor(
    text: str,
    status: int = 200,
    errors: list[dict[str, Any]] | None = None,
    warnings: list[dict[str, Any]] | None = None,
    refused: bool = False,
) -> Any:
    db = get_session()
    user = owner()
    active = active_document(db, user.username)
    marks: dict[int, str] = {}
    for d in warnings or []:
        if d.get("line"):
            marks[int(d["line"])] = "warning"
    for d in errors or []:
        if d.get("line"):
            marks[int(d["line"])] = "error"
    return render_page(
        "web/policy.html",
        status,
        user=user,
        text=text,
        active=active,
        errors=errors or [],
        warnings=warnings or [],
        marks=marks,
        refused=refused,
        line_count=max(1, text.count("\n") + 1),
        versions=policy_versions(db, user.username),
        max_bytes=MAX_POLICY_BYTES,
    )


@bp.get("/my/policy")
@login_required
def policy() -> Any:
    """The owner's policy text in the editor (a starter text when none was uploaded yet)."""
    db = get_session()
    user = owner()
    active = active_document(db, user.username)
    if active is None:
        return _editor(STARTER)
    try:  # the text in use, checked as the editor would: its warnings show at once
        return _editor(active.text, warnings=get_store().validate_upload(db, user.username, active.text))
    except PolicyRejected as exc:  # it checked when saved; the operator's files may have changed since
        return _editor(active.text, errors=exc.diagnostics)


def _posted_text() -> str | None:
    text = request.form.get("text")
    if text is None or len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        return None
    return text.replace("\r\n", "\n")


@bp.post("/my/policy")
@login_required
def save_policy() -> Any:
    """Save a new version if it checks; otherwise show the text again with the diagnostics at
    their lines (400) and change nothing."""
    text = _posted_text()
    if text is None:
        abort(400, description=f"The policy text is missing or larger than {MAX_POLICY_BYTES} bytes.")
    db = get_session()
    user = owner()
    try:
        doc, warnings = get_store().store_upload(db, user.username, text)
    except PolicyRejected as exc:
        db.rollback()
        return _editor(text, 400, errors=exc.diagnostics, refused=True)
    flash(f"Saved as version {doc.version}; it decides every request from now on.")
    if warnings:
        flash(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}: see below the editor.", "warning")
    return redirect(url_for("web.policy"), code=303)


@bp.post("/my/policy/check")
@login_required
def check_policy() -> Any:
    """Check a text as the owner's upload without saving: ``{"ok", "errors", "warnings"}``.

    Body: JSON ``{"text": …}`` with the anti-CSRF token in ``X-CSRF-Token`` (the editor's
    script), or a form with ``csrf_token`` and ``text``.
    """
    if request.is_json:
        text = json_object().get("text")
    else:
        text = request.form.get("text")
    if not isinstance(text, str) or len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        response = jsonify(
            {
                "error": "invalid_request",
                "error_description": f'Send {{"text": …}} of at most {MAX_POLICY_BYTES} bytes.',
            }
        )
        response.status_code = 400
        return response
    db = get_session()
    try:
        warnings = get_store().validate_upload(db, owner().username, text.replace("\r\n", "\n"))
        body = {"ok": True, "errors": [], "warnings": warnings}
    except PolicyRejected as exc:
        body = {"ok": False, "errors": exc.diagnostics, "warnings": []}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/my/policy/versions/<int:number>")
@login_required
def policy_version(number: int) -> Any:
    user = owner()
    doc = find_version(get_session(), user.username, number) if number <= MAX_ID else None
    if doc is None:
        abort(404)
    return render_page("web/policy_version.html", user=user, doc=doc, lines=doc.text.split("\n"))


@bp.post("/my/policy/versions/<int:number>/restore")
@login_required
def restore_policy_version(number: int) -> Any:
    """Make an earlier text the active one, as a new version (checked again, like a save)."""
    db = get_session()
    user = owner()
    doc = find_version(db, user.username, number) if number <= MAX_ID else None
    if doc is None:
        abort(404)
    try:
        new, _ = get_store().store_upload(db, user.username, doc.text)
    except PolicyRejected as exc:
        db.rollback()
        return _editor(doc.text, 400, errors=exc.diagnostics, refused=True)
    flash(f"Version {number} restored as version {new.version}.")
    return redirect(url_for("web.policy"), code=303)


# -- try a request ----------------------------------------------------------------

ANSWERS = ("none", "approved", "denied")


def _parse_claims(raw: str) -> dict[str, Any]:
    """Claims as a JSON object, or ``name = value`` lines (values read as JSON when they parse)."""
    raw = raw.strip()
    if not raw:
        return {}
    if len(raw.encode()) > MAX_CLAIMS_BYTES:
        raise ValueError(f"The claims are larger than {MAX_CLAIMS_BYTES} bytes.")
    if raw.startswith("{"):
        try:
            data = loads_strict(raw)
        except BodyError as exc:
            raise ValueError(f"The claims are {exc}.") from None
        if not isinstance(data, dict):
            raise ValueError("The claims must be a JSON object.")
        return data
    claims: dict[str, Any] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"Line {number} of the claims is not 'name = value'.")
        value = value.strip()
        try:
            claims[name.strip()] = loads_strict(value)
        except BodyError:
            claims[name.strip()] = value
    return claims


@bp.route("/my/try", methods=["GET", "POST"])
@login_required
def try_request() -> Any:
    """Decide a request the owner makes up, with the engine's explanation; records nothing."""
    db = get_session()
    user = owner()
    mine = owner_resources(db, user.username)
    form = {
        "resource_id": request.values.get("resource_id", mine[0].id if mine else ""),
        "scopes": "",
        "claims": "",
        "client_id": "",
        "answer": "none",
        "party": "",
    }
    result = None
    problem = None
    if request.method == "POST":
        form.update({k: request.form.get(k, "") for k in form})
        resource = next((r for r in mine if r.id == form["resource_id"]), None)
        scopes = form["scopes"].split() or (list(resource.resource_scopes) if resource else [])
        try:
            if resource is None:
                raise ValueError("Pick one of your resources.")
            unknown = [s for s in scopes if s not in resource.resource_scopes]
            if unknown:
                raise ValueError(
                    f"Scope {unknown[0][:64]} is not registered for this resource "
                    f"(it has {', '.join(resource.resource_scopes) or 'none'})."
                )
            if not scopes:
                raise ValueError("This resource has no scopes to try.")
            claims = _parse_claims(form["claims"])
            client_id = form["client_id"].strip()[:255] or "any-client"
            client = get_client(db, client_id) or OAuthClient(client_id=client_id, client_name="")
            if form["answer"] not in ANSWERS:
                raise ValueError("Pick what your answer to an ask would be.")
            if not storable(form["party"]):
                raise ValueError("The requesting party contains a NUL character.")
            if form["answer"] == "none" and form["party"].strip():
                approvals = load_approvals(db, user.username, form["party"].strip()[:255], [resource.id])
            elif form["answer"] == "none":
                approvals = {}
            else:
                approvals = {resource.id: [{"scope": s, "answer": form["answer"]} for s in scopes]}
            policy_req = policy_request([(resource, scopes)], client, claims, {}, approvals, iso_now())
            result = explain(get_store().current().policy_set, policy_req)
        except (ValueError, RequestError) as exc:
            problem = str(exc)
    return render_page(
        "web/try.html",
        400 if problem else 200,
        user=user,
        resources=mine,
        form=form,
        result=result,
        problem=problem,
        steps=STEPS,
    )
