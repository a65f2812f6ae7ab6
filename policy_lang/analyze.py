"""Analysis of a policy set: ``uma policy who-can`` and ``uma policy diff``.

who-can
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
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import ast as A
from .compile import CRule, Ctx, compile_cond, format_uri, literal_value
from .decide import iso
from .policyset import PolicySet
from .values import Glob

__all__ = ["who_can", "who_can_data", "diff", "DiffReport", "generate_requests", "expr_text", "rule_groups"]

# ================================================================== rendering expressions

_MAX_GROUP_SHOWN = 6


def _literal_text(value: Any, kind: str | None = None, text: str = "") -> str:
    if kind in ("timestamp", "duration") and text:
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return iso(value) or ""
    if isinstance(value, timedelta):
        return _duration_text(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_literal_text(v) for v in value) + "]"
    return str(value)


def _duration_text(d: timedelta) -> str:
    secs = int(d.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _bare(value: Any) -> str:
    """A group member as the who-can text shows it: strings unquoted."""
    return value if isinstance(value, str) else _literal_text(value)


def expr_text(node: Any, groups: dict[str, tuple] | None = None) -> str:
    """A condition as policy text. With ``groups``, a group reference shows its
    members too: ``family [bob@example.com, carol@example.com]``."""
    return _text(node, groups, 0)


# precedence: or 1, and 2, not 3, comparisons and operands 4
def _text(node: Any, groups: dict | None, outer: int) -> str:
    if isinstance(node, A.Or):
        s = " or ".join(_text(x, groups, 1) for x in node.items)
        return f"({s})" if outer > 1 else s
    if isinstance(node, A.And):
        s = " and ".join(_text(x, groups, 2) for x in node.items)
        return f"({s})" if outer > 2 else s
    if isinstance(node, A.Not):
        inner = node.item
        if isinstance(inner, (A.Compare, A.Has, A.And, A.Or)):
            return f"not ({_text(inner, groups, 0)})"
        return "not " + _text(inner, groups, 3)
    if isinstance(node, A.Compare):
        s = f"{_text(node.left, groups, 5)} {node.op} {_text(node.right, groups, 5)}"
        return f"({s})" if outer > 4 else s
    if isinstance(node, A.Has):
        s = "has " + _text(node.ref, groups, 5)
        return f"({s})" if outer > 4 else s
    if isinstance(node, A.Truthy):
        return _text(node.operand, groups, outer)
    if isinstance(node, A.Literal):
        if node.kind == "list":
            return "[" + ", ".join(_text(x, groups, 0) for x in node.value) + "]"
        return _literal_text(node.value, node.kind, node.text)
    if isinstance(node, A.ClaimRef):
        if node.quoted:
            return f"claims[{json.dumps(node.name, ensure_ascii=False)}]"
        return "claims." + ".".join(node.path)
    if isinstance(node, A.AttrRef):
        return f"{node.entity}.{node.name}"
    if isinstance(node, A.NowRef):
        return "now"
    if isinstance(node, A.GroupRef):
        if groups is None or node.name not in groups:
            return node.name
        members = list(groups[node.name])
        shown = ", ".join(_bare(m) for m in members[:_MAX_GROUP_SHOWN])
        if len(members) > _MAX_GROUP_SHOWN:
            shown += f", … {len(members) - _MAX_GROUP_SHOWN} more"
        return f"{node.name} [{shown}]"
    return str(node)


def rule_groups(ps: PolicySet) -> dict[str, dict[str, tuple]]:
    """File name → that file's groups (name → members)."""
    return {pf.name: {g.name: literal_value(g.members) for g in pf.groups} for pf in ps.files}


# ================================================================== partial evaluation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _static(node: Any) -> bool:
    """Does this node read only literals, groups and the resource's attributes?"""
    if isinstance(node, (A.Literal, A.GroupRef)):
        return True
    if isinstance(node, A.AttrRef):
        return node.entity == "resource"
    if isinstance(node, A.Compare):
        return _static(node.left) and _static(node.right)
    if isinstance(node, A.Has):
        return _static(node.ref)
    if isinstance(node, A.Truthy):
        return _static(node.operand)
    if isinstance(node, (A.And, A.Or)):
        return all(_static(x) for x in node.items)
    if isinstance(node, A.Not):
        return _static(node.item)
    return False


def simplify(node: Any, resource: dict, groups: dict[str, tuple]) -> Any:
    """Fold what the resource alone decides: → True, False or a residual condition."""
    if node is None:
        return True
    if isinstance(node, A.And):
        items = []
        for x in node.items:
            s = simplify(x, resource, groups)
            if s is False:
                return False
            if s is not True:
                items.append(s)
        if not items:
            return True
        return items[0] if len(items) == 1 else A.And(tuple(items), node.pos)
    if isinstance(node, A.Or):
        items = []
        for x in node.items:
            s = simplify(x, resource, groups)
            if s is True:
                return True
            if s is not False:
                items.append(s)
        if not items:
            return False
        return items[0] if len(items) == 1 else A.Or(tuple(items), node.pos)
    if isinstance(node, A.Not):
        s = simplify(node.item, resource, groups)
        if s is True or s is False:
            return not s
        return A.Not(s, node.pos)
    if (
        _static(node)
        and not isinstance(node, (A.Literal, A.GroupRef))
        or (isinstance(node, A.Literal) and node.kind == "bool")
    ):
        r = compile_cond(node, groups)(Ctx({}, {}, resource, _EPOCH))
        if r is True or r is False:
            return r
    return node


# ================================================================== what a condition reads


@dataclass
class _Reads:
    claims: set = field(default_factory=set)
    client: set = field(default_factory=set)
    now: bool = False


def _reads(node: Any, out: _Reads) -> _Reads:
    if node is None or node is True or node is False:
        return out
    if isinstance(node, A.ClaimRef):
        out.claims.add(node.name if node.quoted else ".".join(node.path))
    elif isinstance(node, A.AttrRef):
        if node.entity == "client":
            out.client.add(node.name)
    elif isinstance(node, A.NowRef):
        out.now = True
    elif isinstance(node, (A.And, A.Or)):
        for x in node.items:
            _reads(x, out)
    elif isinstance(node, A.Not):
        _reads(node.item, out)
    elif isinstance(node, A.Compare):
        _reads(node.left, out)
        _reads(node.right, out)
    elif isinstance(node, A.Has):
        _reads(node.ref, out)
    elif isinstance(node, A.Truthy):
        _reads(node.operand, out)
    return out


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
    if e.kind == "for":
        secs = int(e.duration.total_seconds())
        for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if secs % size == 0:
                n = secs // size
                return f", for {n} {unit}{'s' if n != 1 else ''} after the grant"
    return f", until {iso(e.until)}"


def _resource_of(resource: dict) -> dict:
    if not isinstance(resource, dict) or not isinstance(resource.get("owner"), str):
        raise ValueError("who-can needs a resource with an 'owner' (and id, type, name, scopes)")
    r = dict(resource)
    r.setdefault("id", "")
    return r


def who_can_data(
    ps: PolicySet, resource: dict, scopes: list[str] | None = None, *, now: datetime | None = None
) -> list[dict]:
    """For each scope of the resource, the rules that can decide it:

    ``{"scope", "effect": "forbid"|"permit"|"ask"|"deny", "condition": text or None
    (None: always), "rule": "file:line" or None (default deny), "expiry": "for 30d" |
    "until …" | None, "expired": bool, "claims": [names read], "client": [attributes read]}``.

    Rules whose condition the resource alone makes false are left out; a scope
    no permit or ask can grant gets one ``deny`` entry. ``now`` (default: the
    current time) only decides which ``until`` rules are marked expired.
    """
    return [{k: v for k, v in e.items() if k != "_expiry"} for e in _entries(ps, _resource_of(resource), scopes, now)]


def _entries(ps: PolicySet, res: dict, scopes: list[str] | None, now: datetime | None) -> list[dict]:
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
    out: list[dict] = []
    for scope in scopes:
        forbids, permits, asks = plan.for_scope(scope)
        entries: list[dict] = []
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


def _entry(cr: CRule, scope: str, res: dict, groups: dict, now: datetime) -> dict | None:
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
    reads = _reads(unless if unless is not False else None, _reads(when if when is not True else None, _Reads()))
    e = rule.expiry
    return {
        "scope": scope,
        "effect": cr.effect,
        "condition": ", ".join(parts) if parts else None,
        "rule": cr.ref,
        "expiry": _expiry_text(e),
        "expired": bool(e is not None and e.kind == "until" and now > e.until),
        "claims": sorted(reads.claims),
        "client": sorted(reads.client),
        "_expiry": e,
    }


def who_can(ps: PolicySet, resource: dict, scopes: list[str] | None = None, *, now: datetime | None = None) -> str:
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
    by_scope: dict[str, list[dict]] = {}
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


def _entry_words(e: dict, always_forbidden: bool) -> str:
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


# ================================================================== diff


@dataclass
class DiffReport:
    """``changes``: one dict per request decided differently:
    ``{"request", "old", "new"}`` (old and new: the decisions' JSON)."""

    changes: list
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

    def to_json(self) -> dict:
        return {"checked": self.checked, "generated": self.generated, "changes": self.changes}


def _outcome_key(d: dict) -> tuple:
    """What a decision means, without where its rules sit in the files."""
    return (
        d.get("decision"),
        sorted((g["resource_id"], sorted(g["scopes"]), g.get("expires_at") or "") for g in d.get("granted", [])),
        sorted((g["resource_id"], sorted(g["scopes"])) for g in d.get("denied", [])),
        sorted((g["resource_id"], sorted(g["scopes"])) for g in d.get("submitted", [])),
        sorted(json.dumps(c, sort_keys=True) for c in d.get("required_claims", [])),
        sorted((e["resource_id"], e["scope"], e["message"]) for e in d.get("errors", [])),
    )


def _scope_outcomes(d: dict) -> dict[tuple[str, str], tuple[str, str]]:
    """(resource id, scope) → (outcome, the deciding rules) from a decision's JSON."""
    out: dict[tuple[str, str], str] = {}
    rules: dict[tuple[str, str], list[str]] = {}
    missing: dict[tuple[str, str], set] = {}
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


def _request_summary(req: dict) -> list[str]:
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


def _change_lines(i: int, ch: dict) -> list[str]:
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
        names = lambda d: ", ".join(c["name"] for c in d.get("required_claims", [])) or "none"  # noqa: E731
        lines.append(f"   required claims: {names(old)} → {names(new)}")
    return lines


def diff(old: PolicySet, new: PolicySet, requests: list[dict] | None = None, *, limit: int = 3000) -> DiffReport:
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


# ================================================================== request generation

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
UNMENTIONED_SCOPE = "unmentioned-scope"
OTHER = "zz-unlisted-value"
OTHER_ISSUER = "https://other-issuer.invalid"


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()  # a slot left out of the request


def _other(v: Any) -> Any:
    """A value of the same kind that the literal does not equal."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return v + 1
    if isinstance(v, datetime):
        return iso(v + timedelta(days=1))
    if isinstance(v, tuple):
        return [OTHER]
    return OTHER if v != OTHER else OTHER + "-2"


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, timedelta):
        return int(v.total_seconds())
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    return v


def _synth_name(pattern: str, star: str) -> str:
    """A name the glob matches: each * becomes ``star``, each ? becomes x."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        out.append(star if c == "*" else "x" if c == "?" else c)
        i += 1
    return "".join(out)


def _slot_of(node: Any) -> tuple | None:
    if isinstance(node, A.ClaimRef):
        return ("claims",) + ((node.name,) if node.quoted else tuple(node.path))
    if isinstance(node, A.AttrRef) and node.entity == "client":
        return ("client", node.name)
    if isinstance(node, A.AttrRef) and node.entity == "resource" and node.name == "description":
        return ("resource", node.name)  # the other attributes come from the targets
    if isinstance(node, A.NowRef):
        return ("now",)
    return None


def _const(node: Any, groups: dict) -> Any:
    if isinstance(node, A.Literal):
        return literal_value(node)
    if isinstance(node, A.GroupRef):
        return tuple(groups.get(node.name, ()))
    return ABSENT


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _values_for(op: str, v: Any, ref_on_left: bool) -> list:
    """Candidate values for a slot compared with constant ``v`` by ``op``."""
    if not ref_on_left:
        if op in ("in", "not in"):  # "x" in claims.list
            return [[v], [], v] if isinstance(v, str) else [[v], []]
        if op == "contains":  # "abc" contains claims.s, group contains claims.s
            return [v[:1], OTHER] if isinstance(v, str) else list(v[:4]) + [OTHER]
        if op in _FLIP:
            op = _FLIP[op]
        else:
            return [v, _other(v)]
    # the first value meets the comparison; the others do not, or meet it otherwise
    if op == "==":
        return [v, _other(v)]
    if op == "!=":
        return [_other(v), v]
    if op in ("in", "not in"):
        if isinstance(v, tuple):
            inside = list(v[:4])
            other = _other(v[0] if v else "")
            return inside + [other] if op == "in" else [other] + inside
        return [v, _other(v)]
    if op == "contains":
        return [[v], [], v] if isinstance(v, str) else [[v], []]
    if op == "starts with" and isinstance(v, str):
        return [v + "-x", "x-" + v]
    if op == "ends with" and isinstance(v, str):
        return ["x" + v, v + "-x"]
    if op == "like" and isinstance(v, str):
        m = _synth_name(v, "x")
        out = [m]
        for miss in (OTHER, "", "\x01"):
            if not Glob(v).match(miss):
                out.append(miss)
                break
        return out
    if op in ("<", "<=", ">", ">="):
        if isinstance(v, bool):
            return [v]
        if isinstance(v, (int, float)):
            return [v - 1, v, v + 1]
        if isinstance(v, datetime):
            return [v - timedelta(days=1), v, v + timedelta(days=1)]
        if isinstance(v, str):
            return [v, v + "a", ""]
    return [v, _other(v)]


def _collect(node: Any, groups: dict, slots: dict[tuple, list]) -> None:
    """Candidate values for every slot a condition reads."""
    if node is None:
        return
    if isinstance(node, (A.And, A.Or)):
        for x in node.items:
            _collect(x, groups, slots)
        return
    if isinstance(node, A.Not):
        _collect(node.item, groups, slots)
        return
    if isinstance(node, A.Has):
        s = _slot_of(node.ref)
        if s is not None:
            slots.setdefault(s, []).append("present")
        return
    if isinstance(node, A.Compare):
        ls, rs = _slot_of(node.left), _slot_of(node.right)
        lc, rc = _const(node.left, groups), _const(node.right, groups)
        claim_vs_now = ls is not None and rs is not None and ("now",) in (ls, rs) and "claims" in (ls[0], rs[0])
        if claim_vs_now:
            # a claim compared with now: timestamps either side of the base time
            claim = rs if ls == ("now",) else ls
            slots.setdefault(claim, []).extend([iso(BASE_TIME - timedelta(days=1)), iso(BASE_TIME + timedelta(days=1))])
        elif ls is not None and rc is not ABSENT:
            slots.setdefault(ls, []).extend(_values_for(node.op, rc, True))
        elif rs is not None and lc is not ABSENT:
            slots.setdefault(rs, []).extend(_values_for(node.op, lc, False))
        else:
            for side in (node.left, node.right):
                s = _slot_of(side)
                if s is not None:
                    slots.setdefault(s, []).append(OTHER)
                elif not isinstance(side, (A.Literal, A.GroupRef, A.AttrRef)):
                    _collect(side, groups, slots)
        return
    s = _slot_of(node.operand if isinstance(node, A.Truthy) else node)
    if s is not None:
        slots.setdefault(s, []).extend([True, False])


def _rule_slots(cr: CRule, groups: dict) -> dict[tuple, list]:
    slots: dict[tuple, list] = {}
    _collect(cr.rule.when, groups, slots)
    _collect(cr.rule.unless, groups, slots)
    e = cr.rule.expiry
    if e is not None and e.kind == "until":
        slots.setdefault(("now",), []).extend([e.until - timedelta(days=1), e.until + timedelta(days=1)])
    return slots


def _dedupe(values: Iterable) -> list:
    out, seen = [], set()
    for v in values:
        k = json.dumps(_json_value(v), sort_keys=True, default=str) if v is not ABSENT else "<absent>"
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def _slot_values(slot: tuple, values: list) -> list:
    """ABSENT first (withholding), then the literals' values, each once."""
    if slot == ("now",):
        return _dedupe([ABSENT] + [v if isinstance(v, datetime) else v for v in values if isinstance(v, datetime)])
    return _dedupe([ABSENT] + values)


def _owner_targets(ps: PolicySet, owner: str) -> list[CRule]:
    return [cr for cr in ps.rules if cr.owner == owner or cr.owner is None]


def _resources(owner: str, sets: tuple[PolicySet, ...]) -> list[dict]:
    ids, types, names = set(), set(), set()
    pairs: set[tuple[str, str]] = set()
    for ps in sets:
        for pf in ps.files:
            if pf.is_global or pf.owner == owner:
                types.update(t.type for t in pf.types)
        for cr in _owner_targets(ps, owner):
            t = cr.target
            if t.kind == "id":
                ids.add(t.resource_id)
            if t.type is not None:
                types.add(t.type)
            if t.name is not None:
                names.add(t.name)
            if t.pattern is not None:
                names.add(_synth_name(t.pattern, "x"))
                names.add(_synth_name(t.pattern, ""))
            if t.type is not None and (t.name or t.pattern):
                pairs.add((t.type, t.name if t.name is not None else _synth_name(t.pattern, "x")))
    types_l, names_l = sorted(types), sorted(names)
    out = [{"id": rid, "owner": owner} for rid in sorted(ids)]
    combos: list[tuple[str | None, str | None]]
    if (len(types_l) + 1) * (len(names_l) + 1) <= 120:
        combos = [(t, n) for t in [None, *types_l] for n in [None, *names_l] if t or n]
    else:
        combos = [(t, None) for t in types_l] + [(None, n) for n in names_l] + sorted(pairs)
    for t, n in combos:
        r = {"id": f"{owner}:{t or '-'}:{n or '-'}", "owner": owner}
        if t is not None:
            r["type"] = t
        if n is not None:
            r["name"] = n
        out.append(r)
    out.append({"id": f"{owner}:unmatched", "owner": owner, "type": "unmentioned-type", "name": "unmentioned-name"})
    return out


def _assign(target: dict, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value


def _request(resource: dict, scopes: list[str], assignment: dict[tuple, Any], approval: str | None) -> dict:
    claims: dict = {}
    client: dict = {}
    time = BASE_TIME
    for slot in sorted(assignment, key=len):  # a parent before its members
        v = assignment[slot]
        if v is ABSENT:
            continue
        if slot[0] == "claims":
            _assign(claims, slot[1:], _json_value(v))
        elif slot[0] == "client":
            client[slot[1]] = _json_value(v)
        elif slot[0] == "now":
            time = v
        elif slot[0] == "resource" and isinstance(v, str):
            resource = {**resource, slot[1]: v}
    req = {"resource": resource, "scopes": list(scopes), "claims": claims, "client": client, "time": iso(time)}
    if approval is not None:
        req["approvals"] = [{"scope": s, "answer": approval} for s in scopes]
    return req


def _product_at(dims: list[list], index: int) -> list:
    out = []
    for values in reversed(dims):
        index, k = divmod(index, len(values))
        out.append(values[k])
    return list(reversed(out))


def _size(dims: list[list]) -> int:
    n = 1
    for d in dims:
        n *= len(d)
    return n


def generate_requests(
    old: PolicySet, new: PolicySet | None = None, *, limit: int = 3000, seed: int = 20261127
) -> list[dict]:
    """A bounded, deterministic set of requests that exercises both policy sets.

    Per owner (a placeholder owner when there are only global rules), the
    resources the targets name — each id; each type and name (a name matching
    each glob, with ``*`` as ``x`` and as nothing) alone and combined; one
    resource no target names — and, per resource, every scope a candidate rule
    names plus ``unmentioned-scope``. The requesting party varies over the
    slots the candidate rules read (claims, nested claims, client attributes,
    ``now``): each slot absent, each literal it is compared with, a value
    that does not match. Each rule's own slots are combined exhaustively (up
    to a bound); further combinations of all slots are sampled with a fixed
    seed. Owner approvals vary (none, approved, denied) where an ask applies,
    and claim sources vary over the declared issuers and one other.
    """
    sets = tuple(s for s in (old, new) if s is not None)
    owners = sorted({o for s in sets for o in s.owners}) or ["some-owner"]
    groups = [rule_groups(s) for s in sets]
    resources = [r for o in owners for r in _resources(o, sets)]
    rng = random.Random(seed)
    tiers: list[list[tuple]] = [[], [], [], []]  # (request maker, row, claim_sources)

    classes: set = set()
    chosen = []
    for resource in resources:
        plans = [s.plan(resource["owner"], resource["id"], resource.get("type"), resource.get("name")) for s in sets]
        # resources that the same rules of both sets govern decide alike, unless a
        # rule reads the resource's own attributes: keep the first of each class
        key = (resource["owner"],) + tuple(tuple(cr.order for cr in p.rules) for p in plans)
        if any(_reads_resource(cr.rule) for p in plans for cr in p.rules):
            key += (resource["id"], resource.get("type"), resource.get("name"))
        if key not in classes:
            classes.add(key)
            chosen.append((resource, plans))
    per_resource = max(12, limit // max(1, len(chosen)))
    for resource, plans in chosen:
        rules: list[tuple[CRule, dict]] = []
        for s_i, plan in enumerate(plans):
            for cr in plan.rules:
                rules.append((cr, groups[s_i].get(cr.rule.pos.file, {})))
        scopes = sorted({sc for cr, _ in rules if cr.scopes for sc in cr.scopes}) + [UNMENTIONED_SCOPE]
        res = dict(resource, scopes=[s for s in scopes if s != UNMENTIONED_SCOPE])
        has_ask = any(cr.effect == "ask" for cr, _ in rules)
        approvals: list = [None, "approved", "denied"] if has_ask else [None]
        all_slots: dict[tuple, list] = {}
        per_rule: list[dict[tuple, list]] = []
        for cr, g in rules:
            rs = _rule_slots(cr, g)
            per_rule.append(rs)
            for k, v in rs.items():
                all_slots.setdefault(k, []).extend(v)
        names = sorted(all_slots)
        dims = [_slot_values(k, all_slots[k]) for k in names] + [approvals]
        total = _size(dims)

        def req_of(row: list, res=res, scopes=scopes, names=names) -> dict:
            return _request(res, scopes, dict(zip(names, row[:-1])), row[-1])

        # tier 0: nobody presenting anything, and per rule a base that meets its
        # literals (each of its slots at its first value for that rule); tier 1:
        # each slot varied alone around each base (every value any rule of this
        # resource compares it with, and absence), the approvals too
        anonymous = [ABSENT] * len(names) + [None]
        bases: list[tuple[dict, list]] = []
        varied: list[list] = []
        extra: list[list] = []
        for rs in per_rule:
            own = [i for i, k in enumerate(names) if k in rs]
            base = list(anonymous)
            for i in own:
                base[i] = next((v for v in _slot_values(names[i], rs[names[i]]) if v is not ABSENT), ABSENT)
            bases.append((rs, base))
            for i in own + [len(names)]:
                for v in dims[i]:
                    if repr(v) != repr(base[i]):
                        varied.append(base[:i] + [v] + base[i + 1 :])
            # filler: more combinations of the rule's own slots
            sub = [dims[i] for i in own] + [approvals]
            n = _size(sub)
            for j in range(n) if n <= 16 else sorted(rng.sample(range(n), 16)):
                vals = _product_at(sub, j)
                row = list(anonymous)
                for i, v in zip(own + [len(names)], vals):
                    row[i] = v
                extra.append(row)
        # filler: combinations of every slot the resource's rules read
        if total <= per_resource:
            extra.extend(_product_at(dims, i) for i in range(total))
        else:
            extra.extend(_product_at(dims, rng.randrange(total)) for _ in range(per_resource))
        seen: set = set()
        reprs: dict[int, str] = {}  # id → repr of the values alive in this resource's rows

        def fresh(row: list, tag: Any = None) -> bool:
            key = (_row_key(row, reprs), tag)
            if key in seen:
                return False
            seen.add(key)
            return True

        tiers[0].extend((req_of, row, None) for row in [anonymous] + [b for _, b in bases] if fresh(row))
        tiers[1].extend((req_of, row, None) for row in varied if fresh(row))
        # tier 2, claim sources: where a rule reads a declared claim, its base with
        # that claim from each declared issuer (of either set) and from one nobody declared
        declared = _declared(sets, resource["owner"])
        for rs, row in bases:
            for slot in rs:
                if slot[0] != "claims" or slot[1] not in declared or row[names.index(slot)] is ABSENT:
                    continue
                if fresh(row, slot[1]):
                    tiers[2].extend(
                        (req_of, row, {slot[1]: {"issuer": issuer, "format": fmt}}) for issuer, fmt in declared[slot[1]]
                    )
        n = 0
        for row in extra:
            if n < per_resource and fresh(row):
                tiers[3].append((req_of, row, None))
                n += 1
    chosen_rows: list = []
    for tier in tiers:
        room = limit - len(chosen_rows)
        if room <= 0:
            break
        chosen_rows.extend(_spread(tier, room))
    out = []
    for make, row, sources in chosen_rows:
        req = make(row)
        if sources is not None:
            req["claim_sources"] = sources
        out.append(req)
    return out


def _reads_resource(rule: A.Rule) -> bool:
    from .check import walk

    return any(
        isinstance(n, A.AttrRef) and n.entity == "resource" for cond in (rule.when, rule.unless) for n in walk(cond)
    )


def _row_key(row: list, reprs: dict[int, str]) -> tuple:
    out = []
    for v in row:
        r = reprs.get(id(v))
        if r is None:
            r = reprs[id(v)] = "<absent>" if v is ABSENT else repr(v)
        out.append(r)
    return tuple(out)


def _spread(items: list, n: int) -> list:
    """``n`` items evenly spread over the list (all when there are fewer)."""
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _declared(sets: tuple[PolicySet, ...], owner: str) -> dict[str, list[tuple[str, str]]]:
    """Claim name → the (issuer, format) pairs either set declares, plus an undeclared issuer."""
    declared: dict[str, set[tuple[str, str]]] = {}
    for s in sets:
        for name, (issuer, fmt) in s.declared_claims(owner).items():
            declared.setdefault(name, set()).add((issuer, fmt))
    return {name: sorted(pairs) + [(OTHER_ISSUER, "jwt")] for name, pairs in declared.items()}
