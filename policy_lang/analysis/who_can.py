"""``uma policy who-can``.

For one resource (``id``, ``owner``, ``type``, ``name``, ``scopes``): which
scopes can be granted, and under which claim and client conditions. The
candidate rules are the ones the engine itself would consider (the same
target index, global guardrails included); conditions on the resource's
own attributes are folded, since the resource is known, so only what the
requesting party and its client must show is left::

    view:
      - granted when claims.email in family [bob@example.com, carol@example.com]
        and claims.email_verified == true (policies/alice.policy:9)
      - needs the owner's approval when claims.email ends with "@acme.example" (policies/alice.policy:19)
      - never when client.id in blocked-clients [evil-app] (policies/global.policy:7; forbid)

:func:`who_can_data` gives the same as a list of dicts for the server's
owner pages; :func:`who_can` renders it as text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..compile import CRule
from ..eval import iso
from ..policyset import PolicySet
from ..syntax import ast as A
from ..values import format_uri
from .conditions import Reads, expr_text, read_by, rule_groups, simplify

# ================================================================== who can

_EFFECT_ORDER = {"forbid": 0, "permit": 1, "ask": 2, "deny": 3}


def _expiry_text(e: A.Expiry | None) -> str | None:
    if e is None:
        return None
    if e.kind == "for":
        return f"for {e.text}"
    return f"until {iso(e.until)}"


def _expiry_words(e: A.Expiry | None) -> str:
    if e is None:
        return ""
    if e.kind == "for" and e.duration is not None:
        secs = int(e.duration.total_seconds())
        for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if secs % size == 0:
                n = secs // size
                return f", for {n} {unit}{'s' if n != 1 else ''} after the grant"
    return f", until {iso(e.until)}"


def _resource_of(resource: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(resource, dict) or not isinstance(resource.get("owner"), str):
        raise ValueError("who-can needs a resource with an 'owner' (and id, type, name, scopes)")
    r = dict(resource)
    r.setdefault("id", "")
    return r


def who_can_data(
    ps: PolicySet, resource: dict[str, Any], scopes: list[str] | None = None, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """For each scope of the resource, the rules that can decide it:

    ``{"scope", "effect": "forbid"|"permit"|"ask"|"deny", "condition": text or None
    (None: always), "rule": "file:line" or None (default deny), "expiry": "for 30d" |
    "until …" | None, "expired": bool, "claims": [names read], "client": [attributes read]}``.

    Rules whose condition the resource alone makes false are left out; a scope
    no permit or ask can grant gets one ``deny`` entry. ``now`` (default: the
    current time) only decides which ``until`` rules are marked expired.
    """
    return [{k: v for k, v in e.items() if k != "_expiry"} for e in _entries(ps, _resource_of(resource), scopes, now)]


def _entries(
    ps: PolicySet, res: dict[str, Any], scopes: list[str] | None, now: datetime | None
) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    plan = ps.plan(res["owner"], res.get("id"), res.get("type"), res.get("name"))
    groups_by_file = rule_groups(ps)
    if scopes is None:
        scopes = list(res.get("scopes") or [])
        if not scopes:
            # the scopes its type declares, then those the candidate rules name
            declared = [
                sc
                for pf in ps.files
                if pf.is_global or pf.owner == res["owner"]
                for t in pf.types
                if t.type == res.get("type")
                for sc in t.scopes
            ]
            named = sorted({s for cr in plan.rules if cr.scopes for s in cr.scopes})
            scopes = list(dict.fromkeys(declared + named))
    out: list[dict[str, Any]] = []
    for scope in scopes:
        forbids, permits, asks = plan.for_scope(scope)
        entries: list[dict[str, Any]] = []
        grants = 0
        blocked = False
        for cr in (*forbids, *permits, *asks):
            entry = _entry(cr, scope, res, groups_by_file.get(cr.rule.pos.file, {}), now)
            if entry is None:
                continue
            entries.append(entry)
            if entry["expired"]:
                continue
            if cr.effect != "forbid":
                grants += 1
            elif entry["condition"] is None:
                blocked = True
        entries.sort(key=lambda e: _EFFECT_ORDER[e["effect"]])
        if blocked or not grants:
            entries.append(
                {
                    "scope": scope,
                    "effect": "deny",
                    "condition": None,
                    "rule": None,
                    "expiry": None,
                    "expired": False,
                    "claims": [],
                    "client": [],
                }
            )
        out.extend(entries)
    return out


def _entry(cr: CRule, scope: str, res: dict[str, Any], groups: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    rule = cr.rule
    when = simplify(rule.when, res, groups)
    unless = simplify(rule.unless, res, groups) if rule.unless is not None else False
    if when is False or unless is True:
        return None  # the resource itself rules it out
    parts = []
    if when is not True:
        parts.append(expr_text(when, groups))
    if unless is not False:
        parts.append("unless " + expr_text(unless, groups))
    reads = read_by(unless if unless is not False else None, read_by(when if when is not True else None, Reads()))
    e = rule.expiry
    return {
        "scope": scope,
        "effect": cr.effect,
        "condition": ", ".join(parts) if parts else None,
        "rule": cr.ref,
        "expiry": _expiry_text(e),
        "expired": bool(e is not None and e.kind == "until" and e.until is not None and now > e.until),
        "claims": sorted(reads.claims),
        "client": sorted(reads.client),
        "_expiry": e,
    }


def who_can(
    ps: PolicySet, resource: dict[str, Any], scopes: list[str] | None = None, *, now: datetime | None = None
) -> str:
    """The who-can report for one resource, as readable text."""
    res = _resource_of(resource)
    data = _entries(ps, res, scopes, now)
    desc = [f"owner {res['owner']}"]
    if res.get("type"):
        desc.insert(0, f'type "{res["type"]}"')
    if res.get("name"):
        desc.insert(0, f'name "{res["name"]}"')
    lines = [f'Who can do what on resource "{res.get("id", "")}" ({", ".join(desc)}):']
    if not data:
        lines.append("  no scope to show: give the resource's scopes (no rule names any)")
    by_scope: dict[str, list[dict[str, Any]]] = {}
    for d in data:
        by_scope.setdefault(d["scope"], []).append(d)
    claims_read: set[str] = set()
    for scope, entries in by_scope.items():
        lines.append("")
        lines.append(f"{scope}:")
        always_forbidden = any(e["effect"] == "forbid" and e["condition"] is None and not e["expired"] for e in entries)
        for e in entries:
            claims_read.update(e["claims"])
            lines.append("  - " + _entry_words(e, always_forbidden))
    decl = ps.declared_claims(res["owner"])
    shown = sorted(n for n in claims_read if n in decl or n.split(".")[0] in decl)
    if shown:
        lines.append("")
        lines.append("Claims must come from:")
        for n in shown:
            issuer, fmt = decl.get(n) or decl[n.split(".")[0]]
            lines.append(f"  - {n}: issuer {issuer}, format {fmt} ({format_uri(fmt)})")
    return "\n".join(lines) + "\n"


def _entry_words(e: dict[str, Any], always_forbidden: bool) -> str:
    ref = e["rule"]
    cond = e["condition"]
    expiry = _expiry_words(e.pop("_expiry", None)) if "_expiry" in e else ""
    stale = f" — expired ({e['expiry']})" if e["expired"] else ""
    if e["effect"] == "deny":
        if always_forbidden:
            return "nobody: a forbid without conditions refuses it to everyone"
        return "nobody else: no permit or ask grants it (default deny)"
    when = "" if cond is None else f" {cond}" if cond.startswith("unless ") else f" when {cond}"
    if e["effect"] == "forbid":
        if cond is None:
            return f"never: forbidden to everyone ({ref}; a forbid beats every permit and ask){stale}"
        return f"never{when} ({ref}; forbid){stale}"
    note = " (but a forbid above always refuses it)" if always_forbidden else ""
    if cond is None:
        who = "granted to anyone" if e["effect"] == "permit" else "needs the owner's approval, for anyone"
        return f"{who}{expiry} ({ref}){stale}{note}"
    prefix = "granted" if e["effect"] == "permit" else "needs the owner's approval"
    return f"{prefix}{when}{expiry} ({ref}){stale}{note}"
