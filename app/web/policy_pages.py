"""Owner pages: my policies (an editor that checks as you type, versions) and "try a request".

Each view reads the request, calls :mod:`app.owner_service` (which ``PUT /owner/policy``
calls too) and renders a page. The editor's text is checked by the same function that
guards a save (``policy_lang``'s checker over the owner's text with the signed-in owner as
uploader, together with the set in use). "Try a request" builds the policy request the UMA
grant builds and asks the engine to decide and explain it on the set in use; nothing is
recorded and nobody is asked.

=====  ===================================  ==================================================
GET    /my/policy                            the editor with the active text, the versions
POST   /my/policy                            save (``text``); refused with diagnostics (400)
POST   /my/policy/check                      JSON ``{"text"}`` → ``{"ok", "errors", "warnings"}``
GET    /my/policy/versions/<n>               one earlier version's text
POST   /my/policy/versions/<n>/restore       make it the active text (a new version)
GET    /my/try, POST /my/try                 resource, scopes, claims, client, person → why
=====  ===================================  ==================================================
"""

from __future__ import annotations

from typing import Any

from flask import flash, jsonify, redirect, request, url_for

from policy_lang import EXPLAIN_STEPS as STEPS

from .. import owner_service as service
from ..body import BodyError, json_object, loads_strict
from ..db import get_session
from ..errors import InvalidRequest
from ..policies import MAX_POLICY_BYTES
from . import bp, login_required
from .common import owner, render_page

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
        active=service.active_document(db, user.username),
        errors=errors or [],
        warnings=warnings or [],
        marks=marks,
        refused=refused,
        line_count=max(1, text.count("\n") + 1),
        versions=service.policy_versions(db, user.username),
        max_bytes=MAX_POLICY_BYTES,
    )


@bp.get("/my/policy")
@login_required
def policy() -> Any:
    """The owner's policy text in the editor (a starter text when none was uploaded yet)."""
    db = get_session()
    user = owner()
    active = service.active_document(db, user.username)
    if active is None:
        return _editor(STARTER)
    try:  # the text in use, checked as the editor would: its warnings show at once
        return _editor(active.text, warnings=service.check_policy(user.username, active.text))
    except service.InvalidPolicy as exc:  # it checked when saved; the operator's files may have changed since
        return _editor(active.text, errors=exc.diagnostics)


def _posted_text() -> str:
    """The form's ``text``, with a browser's line ends made plain."""
    text = request.form.get("text")
    if text is None:
        raise InvalidRequest("The form has no policy text.")
    return text.replace("\r\n", "\n")


def _saved(doc: Any, warnings: list[dict[str, Any]], message: str) -> Any:
    flash(message)
    if warnings:
        flash(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}: see below the editor.", "warning")
    return redirect(url_for("web.policy"), code=303)


@bp.post("/my/policy")
@login_required
def save_policy() -> Any:
    """Save a new version if it checks; otherwise show the text again with the diagnostics at
    their lines (400) and change nothing."""
    text = _posted_text()
    try:
        doc, warnings = service.save_policy(get_session(), owner().username, text)
    except service.InvalidPolicy as exc:
        return _editor(text, 400, errors=exc.diagnostics, refused=True)
    return _saved(doc, warnings, f"Saved as version {doc.version}; it decides every request from now on.")


@bp.post("/my/policy/check")
@login_required
def check_policy() -> Any:
    """Check a text as the owner's upload without saving: ``{"ok", "errors", "warnings"}``.

    Body: JSON ``{"text": …}`` with the anti-CSRF token in ``X-CSRF-Token`` (the editor's
    script), or a form with ``csrf_token`` and ``text``.
    """
    text = json_object().get("text") if request.is_json else request.form.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f'Send {{"text": …}} of at most {MAX_POLICY_BYTES} bytes.')
    try:
        warnings = service.check_policy(owner().username, text.replace("\r\n", "\n"))
        body = {"ok": True, "errors": [], "warnings": warnings}
    except service.InvalidPolicy as exc:
        body = {"ok": False, "errors": exc.diagnostics, "warnings": []}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/my/policy/versions/<int:number>")
@login_required
def policy_version(number: int) -> Any:
    user = owner()
    doc = service.find_version(get_session(), user.username, number)
    return render_page("web/policy_version.html", user=user, doc=doc, lines=doc.text.split("\n"))


@bp.get("/my/policy/diff")
@login_required
def policy_diff() -> Any:
    """The line diff between any two versions of the owner's text (``from``, ``to``)."""
    user = owner()
    numbers = [request.args.get("from", ""), request.args.get("to", "")]
    if not all(n.isascii() and n.isdigit() and 0 < len(n) <= 10 for n in numbers):
        raise InvalidRequest("Choose two versions to compare.")
    db = get_session()
    change = service.version_diff(db, user.username, int(numbers[0]), int(numbers[1]))
    return render_page("web/policy_diff.html", user=user, versions=service.policy_versions(db, user.username), **change)


@bp.post("/my/policy/versions/<int:number>/restore")
@login_required
def restore_policy_version(number: int) -> Any:
    """Make an earlier text the active one, as a new version (checked again, like a save)."""
    db = get_session()
    user = owner()
    try:
        new, warnings = service.restore_version(db, user.username, number)
    except service.InvalidPolicy as exc:
        return _editor(service.find_version(db, user.username, number).text, 400, errors=exc.diagnostics, refused=True)
    return _saved(new, warnings, f"Version {number} restored as version {new.version}.")


# -- try a request ----------------------------------------------------------------


def _parse_claims(raw: str) -> dict[str, Any]:
    """Claims as a JSON object, or ``name = value`` lines (values read as JSON when they parse)."""
    raw = raw.strip()
    if not raw:
        return {}
    if len(raw.encode()) > MAX_CLAIMS_BYTES:
        raise InvalidRequest(f"The claims are larger than {MAX_CLAIMS_BYTES} bytes.")
    if raw.startswith("{"):
        try:
            data = loads_strict(raw)
        except BodyError as exc:
            raise InvalidRequest(f"The claims are {exc}.") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The claims must be a JSON object.")
        return data
    claims: dict[str, Any] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise InvalidRequest(f"Line {number} of the claims is not 'name = value'.")
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
    mine = service.list_resources(db, user.username)
    form = {
        "resource_id": request.values.get("resource_id", mine[0].id if mine else ""),
        "scopes": "",
        "claims": "",
        "client_id": "",
        "client_other": "",
        "answer": "none",
        "party": "",
    }
    result = None
    problem = None
    if request.method == "POST":
        form.update({k: request.form.get(k, "") for k in form})
        resource = next((r for r in mine if r.id == form["resource_id"]), None)
        try:
            if resource is None:
                raise InvalidRequest("Pick one of your resources.")
            result = service.try_request(
                db,
                user.username,
                resource,
                form["scopes"].split() or list(resource.resource_scopes),
                _parse_claims(form["claims"]),
                form["client_other"].strip() or form["client_id"],
                form["answer"],
                form["party"],
            )
        except InvalidRequest as exc:
            problem = exc.description
    return render_page(
        "web/try.html",
        400 if problem else 200,
        user=user,
        resources=mine,
        choices=service.try_choices(db, user.username),
        form=form,
        result=result,
        problem=problem,
        steps=STEPS,
    )
