"""What a resource owner can see and do, written once: the owner API (:mod:`app.owner_api`,
JSON) and the owner pages (:mod:`app.web`, HTML) are two thin layers over these functions.

Every function takes the database session and the signed-in owner's user name, and only
ever reads or changes that owner's things: an id of another owner's resource, request,
grant or policy version is :class:`~app.errors.NotFound`, the same as an id that does not
exist. Bad input is :class:`~app.errors.InvalidRequest`; a policy text that does not check is
:class:`InvalidPolicy` (with the checker's diagnostics); a change that raced another is
:class:`Conflict`. The API answers these as JSON, the pages as pages (or, for a refused
policy text, as the editor showing the diagnostics at their lines).

Sections: access requests and answers (G-42, G-76); resources, who can use them and the
grants in force (O-31); the owner's uploaded policy text and its versions; the audit
trail; "try a request" (the engine's decision and explanation, nothing recorded).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from policy_lang import RequestError, Source, explain, parse_source, who_can_data

from . import audit, notifications, sharing
from .errors import ApiError, InvalidRequest, NotFound
from .grant.bridge import iso_now, load_approvals, policy_request, resource_attributes
from .models import AuditRecord, OAuthClient, OwnerAction, PendingRequest, PolicyDocument, Resource, Rpt, User
from .oauth.clients import get_client
from .policies import MAX_POLICY_BYTES, UPLOAD_PREFIX, PolicyRejected, get_store, upload_name
from .protection.rpt import active_rpts, live_permissions, revoke_rpt
from .security import now

#: Largest id a table's integer key can hold; a bigger number is simply not found.
MAX_ID = 2**31 - 1
#: What an access request can be; ``all`` also lists them all.
STATUSES = ("pending", "approved", "denied")


class Conflict(ApiError):
    status = 409
    error = "conflict"


class InvalidPolicy(ApiError):
    """The policy text does not check; ``diagnostics`` lists why (nothing was changed)."""

    error = "invalid_policy"

    def __init__(self, diagnostics: list[dict[str, Any]]):
        super().__init__("The policy does not check; nothing was changed.", diagnostics=diagnostics)
        self.diagnostics = diagnostics


def storable(value: str) -> bool:
    """Whether a string from a request can be compared in SQL (PostgreSQL refuses NUL characters)."""
    return "\x00" not in value


def _valid_id(number: int) -> bool:
    return 0 < number <= MAX_ID


# -- access requests and answers -------------------------------------------------------


def list_requests(db: Session, owner: str, status: str = "pending", limit: int = 500) -> list[PendingRequest]:
    """The owner's access requests with ``status`` (or ``all``), newest first."""
    if status not in (*STATUSES, "all"):
        raise InvalidRequest("status must be pending, approved, denied or all.")
    query = select(PendingRequest).where(PendingRequest.owner == owner)
    if status != "all":
        query = query.where(PendingRequest.status == status)
    return list(db.execute(query.order_by(PendingRequest.id.desc()).limit(limit)).scalars())


def pending_count(db: Session, owner: str) -> int:
    return int(
        db.execute(
            select(func.count())
            .select_from(PendingRequest)
            .where(PendingRequest.owner == owner, PendingRequest.status == "pending")
        ).scalar_one()
    )


def find_request(db: Session, owner: str, request_id: int) -> PendingRequest:
    row = db.get(PendingRequest, request_id) if _valid_id(request_id) else None
    if row is None or row.owner != owner:
        raise NotFound("No such request.")
    return row


def approved_scopes(row: PendingRequest, scopes: Any) -> list[str]:
    """The scopes an owner approves: a non-empty subset of those requested (order kept, once each)."""
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise InvalidRequest("'scopes' must be a non-empty array of requested scopes (use deny to refuse all).")
    unknown = [s for s in scopes if s not in row.scopes_requested]
    if unknown:
        raise InvalidRequest(f"Scope {unknown[0][:64]!r} was not requested.")
    return list(dict.fromkeys(scopes))


def answer_request(db: Session, row: PendingRequest, status: str, scopes: list[str]) -> PendingRequest:
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


#: ``scopes`` of :func:`approve` when the owner approves everything the request asked for.
ALL_REQUESTED: Any = object()


def approve(db: Session, row: PendingRequest, scopes: Any = ALL_REQUESTED) -> PendingRequest:
    """Approve ``scopes`` of a request (validated by :func:`approved_scopes`); the rest is refused.
    The polling client then gets its RPT (G-42)."""
    chosen = approved_scopes(row, list(row.scopes_requested) if scopes is ALL_REQUESTED else scopes)
    return answer_request(db, row, "approved", chosen)


def deny(db: Session, row: PendingRequest) -> PendingRequest:
    """Refuse a request: the polling client gets ``request_denied`` (G-41, G-42)."""
    return answer_request(db, row, "denied", [])


def withdraw_approval(db: Session, owner: str, request_id: int) -> PendingRequest:
    """An approval becomes a refusal; the party's tokens lose what it gave (G-42, G-76)."""
    row = find_request(db, owner, request_id)
    if row.status != "approved":
        raise NotFound("No such approval.")
    db.add(
        OwnerAction(
            owner=owner,
            kind="withdraw_approval",
            ref_id=row.id,
            requesting_party=row.requesting_party,
            client_id=row.client_id,
            permissions=[{"resource_id": row.resource_id, "scopes": list(row.scopes_approved)}],
        )
    )
    return answer_request(db, row, "denied", [])  # commits the action with the answer


def asked_by(db: Session, pending: list[PendingRequest]) -> dict[int, list[dict[str, Any]]]:
    """For each pending request, the ``ask`` rules of its latest ``request_submitted`` decision."""
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


# -- resources, who can use them, grants ------------------------------------------------


def list_resources(db: Session, owner: str) -> list[Resource]:
    return list(
        db.execute(select(Resource).where(Resource.owner == owner).order_by(Resource.name, Resource.id)).scalars()
    )


def find_resource(db: Session, owner: str, resource_id: str) -> Resource:
    row = db.get(Resource, resource_id) if len(resource_id) <= 64 and storable(resource_id) else None
    if row is None or row.owner != owner:
        raise NotFound("No such resource.")
    return row


def resources_by_id(db: Session, owner: str, ids: Iterable[str | None]) -> dict[str, Resource]:
    """The owner's resources among ``ids`` (others' and unknown ids are left out)."""
    wanted = sorted({i for i in ids if i and storable(i)})
    if not wanted:
        return {}
    rows = db.execute(select(Resource).where(Resource.owner == owner, Resource.id.in_(wanted))).scalars()
    return {r.id: r for r in rows}


def client_names(db: Session, ids: Iterable[str | None]) -> dict[str, str]:
    """Display names of clients (their registered ``client_name``, else the id)."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = db.execute(select(OAuthClient).where(OAuthClient.client_id.in_(wanted))).scalars()
    return {c.client_id: c.client_name or c.client_id for c in rows}


def who_can(resource: Resource) -> OrderedDict[str, list[dict[str, Any]]]:
    """Per scope, the rules of the whole set in use (the operator's files included) that can
    decide it (the engine's who-can). Each entry also says whose rule it is: ``origin`` is
    ``"yours"`` (the owner's uploaded text), ``"operator"`` (a policy file of the operator,
    read-only for the owner, its ``source`` text shown) or ``None`` (the default deny)."""
    in_use = get_store().current()
    files = {s.name: s for s in in_use.file_sources}
    mine = upload_name(resource.owner).rsplit("/", 1)[0] + "/"
    by_scope: OrderedDict[str, list[dict[str, Any]]] = OrderedDict((s, []) for s in resource.resource_scopes)
    for entry in who_can_data(in_use.policy_set, resource_attributes(resource), list(resource.resource_scopes)):
        file, _, line = (entry.get("rule") or "").rpartition(":")
        entry["origin"], entry["source"] = None, None
        if file.startswith(mine):
            entry["origin"] = "yours"
        elif file in files and line.isdigit():
            entry["origin"] = "operator"
            entry["source"] = _rule_source(files[file].name, files[file].text, int(line))
        by_scope.setdefault(entry["scope"], []).append(entry)
    return by_scope


@functools.lru_cache(maxsize=64)
def _rule_spans(name: str, text: str) -> dict[int, int]:
    """First line → last line of each rule of an operator's file (read once per text)."""
    parsed = parse_source(Source(name, text))
    return {r.pos.line: r.pos.end_line for r in parsed.file.rules} if parsed.file is not None else {}


def _rule_source(name: str, text: str, line: int) -> str:
    """The text of the rule starting at ``line`` of an operator's file."""
    end = _rule_spans(name, text).get(line, line)
    return "\n".join(text.splitlines()[line - 1 : end])


def grants(db: Session, owner: str, resource_id: str | None = None) -> list[dict[str, Any]]:
    """Working RPTs of the owner (on one resource, or all), newest first, with their live permissions."""
    out = []
    for row, permissions in active_rpts(db, owner):
        perms = [p for p in permissions if resource_id is None or p["resource_id"] == resource_id]
        if perms:
            others = len({p["resource_id"] for p in permissions} - {p["resource_id"] for p in perms})
            out.append({"rpt": row, "permissions": perms, "other_resources": others})
    return out


def approvals(db: Session, owner: str, resource_id: str | None = None) -> list[PendingRequest]:
    """The owner's approvals in force (on one resource, or all), latest first."""
    query = select(PendingRequest).where(PendingRequest.owner == owner, PendingRequest.status == "approved")
    if resource_id is not None:
        query = query.where(PendingRequest.resource_id == resource_id)
    return list(db.execute(query.order_by(PendingRequest.decided_at.desc()).limit(200)).scalars())


def revoke_grant(db: Session, owner: str, rpt_id: int) -> Rpt:
    """Revoke one RPT of the owner: from now on it introspects ``{"active": false}`` (O-31)."""
    row = db.get(Rpt, rpt_id) if _valid_id(rpt_id) else None
    if row is None or row.owner != owner:
        raise NotFound("No such grant.")
    if not row.revoked:
        # What stops working, for the owner's history (the RPT row is purged once it expired).
        held = live_permissions(db, row) or row.permissions  # what it gave, else what it was issued
        live = [{"resource_id": p["resource_id"], "scopes": list(p["resource_scopes"])} for p in held]
        db.add(
            OwnerAction(
                owner=owner,
                kind="revoke_grant",
                ref_id=row.id,
                requesting_party=row.requesting_party,
                client_id=row.client_id,
                permissions=live,
            )
        )
        revoke_rpt(db, row)  # commits the action with the revocation
    return row


def overview(db: Session, owner: str) -> dict[str, Any]:
    """Counts and the latest decisions (the home page)."""
    doc = active_document(db, owner)
    recent = audit.list_records(db, owner, limit=5)
    return {
        "resources": len(list_resources(db, owner)),
        "grants": len(grants(db, owner)) + len(approvals(db, owner)),
        "pending": pending_count(db, owner),
        "policy_version": doc.version if doc is not None else None,
        "recent": recent,
        "resource_names": resources_by_id(db, owner, (r.resource_id for r in recent)),
        "names": client_names(db, (r.client_id for r in recent)),
    }


# -- the owner's policy text --------------------------------------------------------------


def active_document(db: Session, owner: str) -> PolicyDocument | None:
    """The owner's uploaded policy text in use, if any."""
    return (
        db.execute(select(PolicyDocument).where(PolicyDocument.owner == owner, PolicyDocument.active.is_(True)))
        .scalars()
        .first()
    )


def policy_versions(db: Session, owner: str) -> list[PolicyDocument]:
    """Every version of the owner's uploaded policy text, newest first."""
    return list(
        db.execute(
            select(PolicyDocument).where(PolicyDocument.owner == owner).order_by(PolicyDocument.version.desc())
        ).scalars()
    )


def find_version(db: Session, owner: str, number: int) -> PolicyDocument:
    """Version ``number`` of the owner's policy text (never another owner's)."""
    doc = (
        db.execute(select(PolicyDocument).where(PolicyDocument.owner == owner, PolicyDocument.version == number))
        .scalars()
        .first()
        if _valid_id(number)
        else None
    )
    if doc is None:
        raise NotFound(f"No version {number}.")
    return doc


def check_text(text: str) -> str:
    """A policy text fit to be checked: at most :data:`MAX_POLICY_BYTES` of UTF-8, no NUL."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise InvalidRequest(f"The policy text is larger than {MAX_POLICY_BYTES} bytes.")
    if "\x00" in text:
        raise InvalidRequest("The policy text must not contain NUL characters.")
    return text


def check_policy(owner: str, text: str) -> list[dict[str, Any]]:
    """Check ``text`` as the owner's upload without saving it: its warnings, or :class:`InvalidPolicy`."""
    try:
        return get_store().validate_upload(owner, check_text(text))
    except PolicyRejected as exc:
        raise InvalidPolicy(exc.diagnostics) from None


def save_policy(db: Session, owner: str, text: str) -> tuple[PolicyDocument, list[dict[str, Any]]]:
    """Store ``text`` as the owner's new active version if it checks; it decides from now on.
    Returns the new version and its warnings."""
    try:
        return get_store().store_upload(db, owner, check_text(text))
    except PolicyRejected as exc:
        db.rollback()
        raise InvalidPolicy(exc.diagnostics) from None
    except IntegrityError:
        db.rollback()
        raise Conflict("Another change of your policy was stored at the same moment; send it again.") from None


def restore_version(db: Session, owner: str, number: int) -> tuple[PolicyDocument, list[dict[str, Any]]]:
    """The text of version ``number`` becomes the active one, as a new version (checked again)."""
    return save_policy(db, owner, find_version(db, owner, number).text)


def remove_policy(db: Session, owner: str) -> None:
    """Stop using the owner's uploaded text."""
    if not get_store().remove_upload(db, owner):
        raise NotFound("You have no uploaded policy.")


def policies_status(owner: str) -> dict[str, Any]:
    """The version in the database, the version this process serves, and the last set that did
    not check. Diagnostics about other owners' uploaded texts are shown without their text
    (an owner's rules are their own business)."""
    status = get_store().status()
    if status["error"]:
        status["error"]["diagnostics"] = _visible(status["error"]["diagnostics"], owner)
    status["warnings"] = _visible(status["warnings"], owner)
    return status


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


# -- sharing from the pages (issue 15): changes of the owner's text, shown then saved ----------


def known_people(db: Session, limit: int = 500) -> list[str]:
    """Suggestions for the share form: the user names and email addresses of active accounts."""
    out: list[str] = []
    for user in db.execute(select(User).where(User.is_active.is_(True)).order_by(User.username).limit(limit)).scalars():
        out.append(user.username)
        email = (user.claims or {}).get("email")
        if isinstance(email, str) and email:
            out.append(email)
    return list(dict.fromkeys(out))


def policy_text(db: Session, owner: str) -> tuple[str, int]:
    """The owner's uploaded text in use (empty without one) and its version (0 without one)."""
    doc = active_document(db, owner)
    return (doc.text, doc.version) if doc is not None else ("", 0)


def shares(db: Session, owner: str, resource: Resource) -> dict[str, Any]:
    """The shares of ``resource`` read back from the owner's text, the rules naming it that the
    form cannot represent (shown as text), and the version they were read from."""
    text, version = policy_text(db, owner)
    return {
        "shares": sharing.read_shares(text, resource.id),
        "other_rules": sharing.other_rules(text, resource.id),
        "version": version,
    }


def share_change(db: Session, owner: str, resource: Resource, form: dict[str, Any]) -> dict[str, Any]:
    """The owner's text with a new share rule (not saved): ``{"old", "new", "rule", "version",
    "diff"}``; :class:`InvalidRequest` for input that makes no share (a share is a rule of the owner's text,
     checked like any upload when saved)."""
    scopes = [s for s in form.get("scopes", []) if isinstance(s, str)]
    unknown = [s for s in scopes if s not in resource.resource_scopes]
    if unknown:
        raise InvalidRequest(f"Scope {unknown[0][:64]} is not registered for this resource.")
    person = str(form.get("person") or "").strip()
    who = str(form.get("who") or "auto")
    if who == "auto":
        who = "email" if "@" in person else "username"
    claim = sharing.IDENTIFIERS.get(who) if who != "claim" else str(form.get("claim") or "").strip()
    if claim is None:
        raise InvalidRequest("Choose how the person is named: user name, email or another claim.")
    until = str(form.get("until") or "").strip() or None
    duration = str(form.get("duration") or "").strip() or None
    effect = "ask" if form.get("ask") else "permit"
    try:
        rule = sharing.share_rule(resource.id, scopes, claim, [person], effect, duration, until)
    except sharing.ShareError as exc:
        raise InvalidRequest(str(exc)) from None
    old, version = policy_text(db, owner)
    new = sharing.add_share(old, rule)
    return {"old": old, "new": new, "rule": rule, "version": version, "diff": sharing.text_diff(old, new)}


def unshare_change(db: Session, owner: str, resource: Resource, line: int, claim: str, person: str) -> dict[str, Any]:
    """The owner's text without one person's share (the rule removed, or narrowed to the
    others it names); not saved. :class:`NotFound` when that share is no longer there."""
    old, version = policy_text(db, owner)
    try:
        new = sharing.stop_sharing(old, resource.id, line, claim, person)
    except sharing.ShareError as exc:
        raise NotFound(str(exc)) from None
    return {"old": old, "new": new, "rule": None, "version": version, "diff": sharing.text_diff(old, new)}


def save_change(db: Session, owner: str, base_version: int, text: str) -> tuple[PolicyDocument, list[dict[str, Any]]]:
    """Save a change shown to the owner as a new version (:func:`save_policy`, checked like any
    upload) only while the text it was made from is still the one in use, else :class:`Conflict`."""
    if policy_text(db, owner)[1] != base_version:
        raise Conflict("Your policy changed since this change was shown; look at it again.")
    return save_policy(db, owner, text)


# -- shared with me (issue 15 point 3): the same engine, from the requesting party's side -----

#: Most resources "shared with me" decides per page view (each is one engine decision; a
#: server with more lists the first ones by owner and name, and the page says so).
SHARED_SCAN_LIMIT = 2000
#: What the requesting party's page calls a request made there (no application in between).
PAGE_CLIENT = ""


def _party_request(db: Session, user: User, resources: list[Resource]) -> Any:
    """The engine's decision on every scope of ``resources`` for the signed-in person: their
    account's claims as a local sign-in gives them (``sub`` = user name, from this server), no
    application (rules on ``client`` do not match), the owners' answers to their requests."""
    from . import get_settings

    claims = dict(user.claims or {})
    claims["sub"] = user.username
    sources = {name: {"issuer": get_settings().issuer} for name in claims}
    client = OAuthClient(client_id=PAGE_CLIENT, client_name="")
    answers: dict[str, list[dict[str, str]]] = {}
    for owner_name in sorted({r.owner for r in resources}):
        ids = [r.id for r in resources if r.owner == owner_name]
        answers.update(load_approvals(db, owner_name, user.username, ids))
    request = policy_request(
        [(r, list(r.resource_scopes)) for r in resources], client, claims, sources, answers, iso_now()
    )
    return get_store().current().policy_set.decide(request)


def shared_with_me(db: Session, user: User) -> dict[str, Any]:
    """Others' resources the person can reach (the who-can analysis inverted: every resource
    decided for their claims): ``reachable`` (``scopes`` they would get now, and until when),
    ``askable`` (``ask``: scopes the owner would be asked for), ``requests`` (theirs, any status),
    ``truncated`` when more resources exist than one page view decides."""
    rows = list(
        db.execute(
            select(Resource)
            .where(Resource.owner != user.username)
            .order_by(Resource.owner, Resource.name, Resource.id)
            .limit(SHARED_SCAN_LIMIT + 1)
        ).scalars()
    )
    truncated = len(rows) > SHARED_SCAN_LIMIT
    rows = [r for r in rows[:SHARED_SCAN_LIMIT] if r.resource_scopes]
    by_id = {r.id: r for r in rows}
    per: dict[str, dict[str, Any]] = {}
    if rows:
        for res in _party_request(db, user, rows).results:
            if res.outcome not in ("granted", "submitted"):
                continue
            entry = per.setdefault(
                res.resource_id, {"resource": by_id[res.resource_id], "scopes": [], "ask": [], "until": None}
            )
            entry["scopes" if res.outcome == "granted" else "ask"].append(res.scope)
            if res.outcome == "granted" and res.expires_at is not None:
                at = int(res.expires_at.timestamp())
                entry["until"] = at if entry["until"] is None else min(entry["until"], at)
    requests = list(
        db.execute(
            select(PendingRequest)
            .where(PendingRequest.requesting_party == user.username)
            .order_by(PendingRequest.id.desc())
            .limit(100)
        ).scalars()
    )
    return {
        "reachable": [e for e in per.values() if e["scopes"]],
        "askable": [e for e in per.values() if e["ask"]],
        "requests": requests,
        "request_resources": {
            r.id: r
            for r in db.execute(select(Resource).where(Resource.id.in_({q.resource_id for q in requests}))).scalars()
        }
        if requests
        else {},
        "truncated": truncated,
    }


def reachable_resource(db: Session, user: User, resource_id: str) -> tuple[Resource, list[str], list[str]]:
    """Another owner's resource the person was sent a link to, with the scopes they would get
    and those they may ask for; :class:`NotFound` when neither (a resource they cannot reach
    is not shown: its name stays the owner's business)."""
    row = db.get(Resource, resource_id) if len(resource_id) <= 64 and storable(resource_id) else None
    if row is None or row.owner == user.username or not row.resource_scopes:
        raise NotFound("No such resource, or nothing of it is shared with you.")
    results = _party_request(db, user, [row]).results
    get = [r.scope for r in results if r.outcome == "granted"]
    ask = [r.scope for r in results if r.outcome == "submitted"]
    if not get and not ask:
        raise NotFound("No such resource, or nothing of it is shared with you.")
    return row, get, ask


def request_access(
    db: Session, user: User, resource: Resource, scopes: list[str], askable: list[str]
) -> PendingRequest:
    """A request from the person's own page for ``scopes`` the owner's ``ask`` rules let them ask
    for: pending until the owner answers on the requests page (G-42); the answer then counts
    for the person's applications as for any request. One pending request per resource."""
    wanted = list(dict.fromkeys(s for s in scopes if isinstance(s, str)))
    if not wanted or any(s not in askable for s in wanted):
        raise InvalidRequest("Choose among the scopes you may ask for.")
    open_row = (
        db.execute(
            select(PendingRequest).where(
                PendingRequest.requesting_party == user.username,
                PendingRequest.resource_id == resource.id,
                PendingRequest.status == "pending",
            )
        )
        .scalars()
        .first()
    )
    if open_row is not None:
        raise Conflict("You already asked for this resource; the owner has not answered yet.")
    row = PendingRequest(
        owner=resource.owner,
        requesting_party=user.username,
        client_id=PAGE_CLIENT,
        rs_client_id=resource.rs_client_id,
        resource_id=resource.id,
        scopes_requested=wanted,
    )
    db.add(row)
    from . import get_settings

    notifications.request_pending(db, row, get_settings().issuer)  # the owner's outbox, same transaction
    db.commit()
    return row


# -- the audit trail ------------------------------------------------------------------------


def audit_records(
    db: Session,
    owner: str,
    *,
    resource_id: str | None = None,
    outcome: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditRecord]:
    """The owner's decisions, newest first, filtered by resource and outcome, paged by record id."""
    if outcome is not None and outcome not in audit.OUTCOMES:
        raise InvalidRequest("outcome must be one of " + ", ".join(audit.OUTCOMES) + ".")
    if resource_id is not None and (len(resource_id) > 64 or not storable(resource_id)):
        raise InvalidRequest("resource_id is not a resource id.")
    if before_id is not None and not 0 <= before_id <= MAX_ID:
        raise InvalidRequest("before is not a record id.")
    return audit.list_records(db, owner, resource_id=resource_id, outcome=outcome, limit=limit, before_id=before_id)


#: Policy versions the owner's actions are read from (each one parsed for its shares).
ACTION_VERSIONS = 200


def owner_actions(db: Session, owner: str, resource_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The owner's own actions, newest first (issue 15 point 5): each policy version saved, the
    shares it added and stopped (read from the text of consecutive versions, :mod:`app.sharing`),
    each answer to a request (approved, denied), and each revocation (an RPT revoked, an
    approval withdrawn: :class:`~app.models.OwnerAction`).
    ``{"at", "kind": "version"|"share"|"unshare"|"approved"|"denied"|"revoked"|"withdrawn", ...}``."""
    out: list[dict[str, Any]] = []
    versions = list(reversed(policy_versions(db, owner)[:ACTION_VERSIONS]))
    before: set[Any] = set()
    for i, doc in enumerate(versions):
        now_shares = {
            (s.resource_id, s.effect, s.scopes, s.claim, s.person, s.expiry)
            for s in sharing.read_shares(doc.text, None)
        }
        if resource_id is None:
            previous = versions[i - 1].version if i else None
            out.append({"at": doc.created_at, "kind": "version", "version": doc.version, "previous": previous})
        if i or doc.version == 1:  # an older version cut off leaves nothing to compare with
            for kind, changed in (("share", now_shares - before), ("unshare", before - now_shares)):
                for rid, effect, scopes, claim, person, expiry in sorted(changed):
                    if resource_id is None or rid == resource_id:
                        out.append(
                            {
                                "at": doc.created_at,
                                "kind": kind,
                                "version": doc.version,
                                "resource_id": rid,
                                "effect": effect,
                                "scopes": list(scopes),
                                "claim": claim,
                                "person": person,
                                "expiry": expiry,
                            }
                        )
        before = now_shares
    withdrawn: set[int] = set()
    recorded = select(OwnerAction).where(OwnerAction.owner == owner).order_by(OwnerAction.at.desc())
    for action in db.execute(recorded.limit(limit)).scalars():
        if action.kind == "withdraw_approval" and action.ref_id is not None:
            withdrawn.add(action.ref_id)
        permissions = [p for p in action.permissions if resource_id is None or p.get("resource_id") == resource_id]
        if resource_id is not None and not permissions:
            continue
        out.append(
            {
                "at": action.at,
                "kind": "revoked" if action.kind == "revoke_grant" else "withdrawn",
                "resource_id": permissions[0]["resource_id"] if permissions else None,
                "person": action.requesting_party,
                "client_id": action.client_id,
                "scopes": sorted({s for p in permissions for s in p.get("scopes", [])}),
                "resources": len(permissions),
            }
        )
    query = select(PendingRequest).where(PendingRequest.owner == owner, PendingRequest.decided_at.is_not(None))
    if resource_id is not None:
        query = query.where(PendingRequest.resource_id == resource_id)
    for row in db.execute(query.order_by(PendingRequest.decided_at.desc()).limit(limit)).scalars():
        if row.id in withdrawn:  # the withdrawal above says it (the request now reads as denied)
            continue
        out.append(
            {
                "at": row.decided_at,
                "kind": row.status,
                "resource_id": row.resource_id,
                "person": row.requesting_party,
                "client_id": row.client_id,
                "scopes": list(row.scopes_approved or row.scopes_requested),
            }
        )
    out.sort(key=lambda a: (a["at"], a.get("version") or 0), reverse=True)
    return out[:limit]


def version_diff(db: Session, owner: str, old: int, new: int) -> dict[str, Any]:
    """The line diff between two versions of the owner's text (any two, either order)."""
    a, b = find_version(db, owner, old), find_version(db, owner, new)
    return {"old": a, "new": b, "diff": sharing.text_diff(a.text, b.text)}


# -- try a request ----------------------------------------------------------------------------

#: What the owner's answer to an ``ask`` would be, in "try a request".
ANSWERS = ("none", "approved", "denied")


#: How many of the owner's latest decisions, requests and tokens "try a request" reads for its choices.
TRY_CHOICES_SCAN = 500


def try_choices(db: Session, owner: str) -> dict[str, Any]:
    """What "try a request" offers by name (issue 15 point 6): the clients and the requesting
    parties that have asked for the owner's resources (latest decisions, requests, tokens).
    ``clients``: ``(id, display name)`` sorted by name; ``parties``: ids; ``names``: the display
    names of the clients involved (a party known only by its application is ``client:<id>``).
    The form still sends the ids."""
    seen_clients: dict[str, None] = {}
    seen_parties: dict[str, None] = {}
    for model in (AuditRecord, PendingRequest, Rpt):
        rows = db.execute(
            select(model.client_id, model.requesting_party)
            .where(model.owner == owner)
            .order_by(model.id.desc())
            .limit(TRY_CHOICES_SCAN)
        )
        for client_id, requesting_party in rows:
            if client_id:
                seen_clients.setdefault(client_id)
            if requesting_party:
                seen_parties.setdefault(requesting_party)
    names = client_names(db, [*seen_clients, *(p.removeprefix("client:") for p in seen_parties)])
    clients = sorted(((c, names.get(c, c)) for c in seen_clients), key=lambda pair: (pair[1].lower(), pair[0]))
    return {"clients": clients, "parties": sorted(seen_parties, key=str.lower), "names": names}


def try_request(
    db: Session,
    owner: str,
    resource: Resource,
    scopes: list[str],
    claims: dict[str, Any],
    client_id: str,
    answer: str,
    party: str,
) -> Any:
    """Decide a request the owner makes up, with the engine's explanation, on the set in use:
    the same policy request the UMA grant builds; nothing is recorded and nobody is asked.
    Refusals of the input are :class:`InvalidRequest`."""
    unknown = [s for s in scopes if s not in resource.resource_scopes]
    if unknown:
        raise InvalidRequest(
            f"Scope {unknown[0][:64]} is not registered for this resource "
            f"(it has {', '.join(resource.resource_scopes) or 'none'})."
        )
    if not scopes:
        raise InvalidRequest("This resource has no scopes to try.")
    if answer not in ANSWERS:
        raise InvalidRequest("Pick what your answer to an ask would be.")
    if not storable(party):
        raise InvalidRequest("The requesting party contains a NUL character.")
    client_id = client_id.strip()[:255] or "any-client"
    client = get_client(db, client_id) or OAuthClient(client_id=client_id, client_name="")
    if answer == "none" and party.strip():
        known = load_approvals(db, owner, party.strip()[:255], [resource.id])
    elif answer == "none":
        known = {}
    else:
        known = {resource.id: [{"scope": s, "answer": answer} for s in scopes]}
    try:
        request = policy_request([(resource, scopes)], client, claims, {}, known, iso_now())
        return explain(get_store().current().policy_set, request)
    except RequestError as exc:
        raise InvalidRequest(str(exc)) from None
