"""``uma policy diff``.

diff
    Which decisions change between two versions of a policy set. Each request
    is decided by both; two decisions differ when their outcome differs
    (decision, granted/denied/submitted scopes, expiry, required claims,
    run-time errors), never merely because the deciding rule moved to another
    line: a reformatted set has no changes. Without recorded requests,
    :func:`generate_requests` builds a bounded, deterministic set from both
    policy sets: every owner's resources as the targets name them (ids, types,
    names, a name matching each glob), every scope named (plus one named
    nowhere), and claim, client and time values drawn from the literals in the
    conditions (each literal, a value that does not match, and absence).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..eval import iso
from ..policyset import PolicySet
from .requests import generate_requests

# ================================================================== diff


@dataclass
class DiffReport:
    """``changes``: one dict per request decided differently:
    ``{"request", "old", "new"}`` (old and new: the decisions' JSON)."""

    changes: list[Any]
    checked: int
    generated: bool

    @property
    def ok(self) -> bool:
        """True when no decision changes."""
        return not self.changes

    def render(self, limit: int = 50) -> str:
        where = "generated" if self.generated else "given"
        if not self.changes:
            return f"No decision changes over {self.checked} {where} requests.\n"
        n = len(self.changes)
        lines = [f"{n} of {self.checked} {where} requests decide differently:"]
        for i, ch in enumerate(self.changes[:limit], 1):
            lines.append("")
            lines.extend(_change_lines(i, ch))
        if n > limit:
            lines.append("")
            lines.append(f"… and {n - limit} more (see the JSON output for all of them)")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "generated": self.generated, "changes": self.changes}


def _outcome_key(d: dict[str, Any]) -> tuple[Any, ...]:
    """What a decision means, without where its rules sit in the files."""
    return (
        d.get("decision"),
        sorted((g["resource_id"], sorted(g["scopes"]), g.get("expires_at") or "") for g in d.get("granted", [])),
        sorted((g["resource_id"], sorted(g["scopes"])) for g in d.get("denied", [])),
        sorted((g["resource_id"], sorted(g["scopes"])) for g in d.get("submitted", [])),
        sorted(json.dumps(c, sort_keys=True) for c in d.get("required_claims", [])),
        sorted((e["resource_id"], e["scope"], e["message"]) for e in d.get("errors", [])),
    )


def _scope_outcomes(d: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(resource id, scope) → (outcome, the deciding rules) from a decision's JSON."""
    out: dict[tuple[str, str], str] = {}
    rules: dict[tuple[str, str], list[str]] = {}
    missing: dict[tuple[str, str], set[Any]] = {}
    for r in d.get("reasons", []):
        key = (r["resource_id"], r["scope"])
        rules.setdefault(key, []).append(r["rule"] or "default deny")
        if "missing" in r:
            missing.setdefault(key, set()).update(r["missing"])
    for g in d.get("granted", []):
        for s in g["scopes"]:
            exp = f" until {g['expires_at']}" if g.get("expires_at") else ""
            out[(g["resource_id"], s)] = f"granted{exp}"
    for g in d.get("denied", []):
        for s in g["scopes"]:
            out[(g["resource_id"], s)] = "denied"
    for g in d.get("submitted", []):
        for s in g["scopes"]:
            out[(g["resource_id"], s)] = "submitted"
    for key in rules:
        if key not in out:
            out[key] = "needs " + ", ".join(sorted(missing.get(key, ()))) if missing.get(key) else "need_info"
    return {k: (v, ", ".join(dict.fromkeys(rules.get(k, [])))) for k, v in out.items()}


def _request_summary(req: dict[str, Any]) -> list[str]:
    perms = req.get("permissions") or [
        {"resource": req.get("resource"), "scopes": req.get("scopes"), "approvals": req.get("approvals")}
    ]
    lines = []
    for p in perms:
        r = p.get("resource") or {}
        bits = [f'{k} "{r[k]}"' for k in ("type", "name") if r.get(k)]
        lines.append(
            f'resource "{r.get("id")}" of {r.get("owner")}'
            + (f" ({', '.join(bits)})" if bits else "")
            + f"; scopes {', '.join(p.get('scopes') or [])}"
        )
        if p.get("approvals"):
            lines.append("approvals: " + json.dumps(p["approvals"], sort_keys=True))
    lines.append("claims: " + json.dumps(req.get("claims") or {}, sort_keys=True, ensure_ascii=False))
    if req.get("claim_sources"):
        lines.append("claim_sources: " + json.dumps(req["claim_sources"], sort_keys=True))
    lines.append("client: " + json.dumps(req.get("client") or {}, sort_keys=True, ensure_ascii=False))
    if req.get("time"):
        lines.append(f"time: {req['time']}")
    return lines


def _claim_names(d: dict[str, Any]) -> str:
    return ", ".join(c["name"] for c in d.get("required_claims", [])) or "none"


def _change_lines(i: int, ch: dict[str, Any]) -> list[str]:
    old, new = ch["old"], ch["new"]
    summary = _request_summary(ch["request"])
    lines = [f"{i}. {summary[0]}"] + [f"   {s}" for s in summary[1:]]
    lines.append(f"   decision: {old['decision']} → {new['decision']}")
    a, b = _scope_outcomes(old), _scope_outcomes(new)
    none = ("-", "")
    for key in sorted(set(a) | set(b)):
        (oa, ra), (ob, rb) = a.get(key, none), b.get(key, none)
        if oa != ob:
            lines.append(f"   {key[1]}: {oa} ({ra or '-'}) → {ob} ({rb or '-'})")
    if old.get("required_claims") != new.get("required_claims"):
        lines.append(f"   required claims: {_claim_names(old)} → {_claim_names(new)}")
    return lines


def diff(
    old: PolicySet, new: PolicySet, requests: list[dict[str, Any]] | None = None, *, limit: int = 3000
) -> DiffReport:
    """Decide each request (the given ones, else :func:`generate_requests`) with
    both sets; report those whose decisions differ."""
    generated = requests is None
    if requests is None:
        requests = generate_requests(old, new, limit=limit)
    changes = []
    now = iso(datetime.now(UTC))
    for req in requests:
        if isinstance(req, dict) and req.get("time") is None:
            req = {**req, "time": now}  # one instant for both decisions (and the report)
        a = old.decide(req).to_json()
        b = new.decide(req).to_json()
        if _outcome_key(a) != _outcome_key(b):
            changes.append({"request": req, "old": a, "new": b})
    return DiffReport(changes, len(requests), generated)
