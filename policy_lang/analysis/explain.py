"""Why a decision is what it is: ``uma policy eval --explain``.

For every requested scope of every requested resource, the explanation lists
the candidate rules in the order the engine weighs them (forbids, then
permits, then asks; each in source order), with each clause's text and truth
value, node by node, and the step (1 to 6 of section 3 of the language page)
that decided the scope.

Nothing here re-implements the language: every node's value comes from the
engine's own compiled closures (:func:`compile.compile_cond` /
:func:`compile.compile_operand` on that sub-node), a rule's value from the
very closure the engine ran (``CRule.cond``), and the step from the same
sequence :func:`decide.decide_scope` follows, so an explanation cannot
disagree with the decision it explains (tests check that it does not).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import fmt
from ..compile import CRule, Ctx, compile_cond, compile_operand
from ..eval import DENIED, GRANTED, NEED, SUBMITTED, iso, normalise
from ..eval.decide import cheapest, in_time
from ..policyset import PolicySet
from ..syntax import ast as A
from ..values import ABSENT, Err, Missing, Unknown, literal_value

STEPS = {
    1: "a forbid whose condition is true denies the scope",
    2: "a forbid whose condition is unknown needs its claims first",
    3: "a permit whose condition is true grants the scope",
    4: "an ask whose condition is true leaves it to the owner",
    5: "a permit or ask whose condition is unknown needs the claims of the cheapest alternative",
    6: "no rule applied: default deny",
}


# ------------------------------------------------------------------ values


def value_json(r: Any) -> dict:
    """A condition result as JSON: true / false / unknown (+ missing) / error (+ error)."""
    if r is True:
        return {"value": "true"}
    if r is False:
        return {"value": "false"}
    if isinstance(r, Unknown):
        return {"value": "unknown", "missing": sorted(r)}
    if isinstance(r, Err):
        return {"value": "error", "error": r.message}
    return {"value": "error", "error": f"not a truth value: {r!r}"}


def value_text(v: dict) -> str:
    """``true``, ``false``, ``unknown (missing: x, y)``, ``error: message``."""
    if v["value"] == "unknown":
        return f"unknown (missing: {', '.join(v['missing'])})"
    if v["value"] == "error":
        return f"error: {v['error']}"
    return v["value"]


def _show(v: Any) -> str:
    """A run-time operand value, shown briefly."""
    if isinstance(v, Missing):
        return "missing"
    if v is ABSENT:
        return "absent"
    if isinstance(v, Err):
        return f"error: {v.message}"
    text = json.dumps(_plain(v), ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, timedelta):
        return fmt.duration_text(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


_REFS = (A.ClaimRef, A.AttrRef, A.NowRef)


def _kind(node) -> str:
    if isinstance(node, A.And):
        return "and"
    if isinstance(node, A.Or):
        return "or"
    if isinstance(node, A.Not):
        return "not"
    if isinstance(node, A.Compare):
        return node.op
    if isinstance(node, A.Has):
        return "has"
    return "truth"  # a bare operand used as a condition


def node_json(node, groups: dict, ctx: Ctx) -> dict:
    """One condition node, its value (the engine's closure for this node) and its parts."""
    out: dict[str, Any] = {"text": fmt.expr(node), "kind": _kind(node), **value_json(compile_cond(node, groups)(ctx))}
    if isinstance(node, (A.And, A.Or)):
        out["parts"] = [node_json(x, groups, ctx) for x in node.items]
    elif isinstance(node, A.Not):
        out["parts"] = [node_json(node.item, groups, ctx)]
    else:
        refs = []
        if isinstance(node, A.Compare):
            operands = (node.left, node.right)
        elif isinstance(node, A.Has):
            operands = (node.ref,)
        else:
            operands = (node,)
        for x in operands:
            if isinstance(x, _REFS):
                refs.append({"text": fmt.expr(x), "is": _show(compile_operand(x, groups)(ctx))})
            elif not isinstance(x, (A.Literal, A.GroupRef)):  # a parenthesised condition
                out.setdefault("parts", []).append(node_json(x, groups, ctx))
        if refs:
            out["operands"] = refs
    return out


# ------------------------------------------------------------------ one scope


def _candidate(cr: CRule, groups: dict, ctx: Ctx) -> tuple[dict, Any]:
    rule = cr.rule
    entry: dict[str, Any] = {"effect": cr.effect, "rule": cr.ref, "text": fmt.rule_one_line(rule)}
    if not in_time(cr, ctx.now):
        entry["in_time"] = False
        entry["note"] = f"expired: applies only until {rule.expiry.text}"  # type: ignore[union-attr]
        entry["value"] = "expired"
        return entry, None
    clauses = []
    for word, cond in (("when", rule.when), ("unless", rule.unless)):
        if cond is not None:
            clauses.append({"clause": word, **node_json(cond, groups, ctx)})
    entry["clauses"] = clauses
    r = True if cr.cond is None else cr.cond(ctx)
    entry.update(value_json(r))
    if cr.cond is None:
        entry["note"] = "no condition: always applies"
    return entry, r


def explain_scope(plan, scope: str, ctx: Ctx, approval: str | None, rid: str, groups_of: dict[str, dict]) -> dict:
    """The candidates of one scope and the step that decided it, following
    :func:`decide.decide_scope` step by step."""
    forbids, permits, asks = plan.for_scope(scope)
    candidates: list[dict] = []
    values: dict[int, Any] = {}
    for cr in (*forbids, *permits, *asks):
        entry, r = _candidate(cr, groups_of.get(cr.rule.pos.file, {}), ctx)
        candidates.append(entry)
        values[id(cr)] = r
    out: dict[str, Any] = {"resource_id": rid, "scope": scope, "candidates": candidates}

    def done(outcome: str, step: int, rules: list[CRule], missing=frozenset(), why: str = "") -> dict:
        out.update(
            {
                "outcome": outcome,
                "step": step,
                "because": why or STEPS[step],
                "rules": [cr.ref for cr in rules],
                "missing": sorted(missing),
            }
        )
        chosen = {cr.ref for cr in rules}
        for c in candidates:
            if c["rule"] in chosen:
                c["decisive"] = True
        return out

    forbid_missing: set = set()
    forbid_rules: list[CRule] = []
    for cr in forbids:
        r = values[id(cr)]
        if r is None or r is False:
            continue
        if r is True:
            return done(DENIED, 1, [cr])
        if isinstance(r, Unknown):
            forbid_missing |= r
            forbid_rules.append(cr)
            continue
        return done(
            DENIED, 1, [cr], why="a forbid whose condition fails with a type error denies the scope (fail closed)"
        )
    granted_by = None
    alternatives: list[tuple[frozenset, CRule]] = []
    for cr in permits:
        r = values[id(cr)]
        if r is True:
            granted_by = granted_by or cr
        elif isinstance(r, Unknown):
            alternatives.append((r, cr))
    if granted_by is not None and not forbid_missing:
        return done(GRANTED, 3, [granted_by])
    asked_by = None
    for cr in asks:
        r = values[id(cr)]
        if r is True:
            asked_by = asked_by or cr
        elif isinstance(r, Unknown):
            alternatives.append((r, cr))
    if forbid_missing:
        missing = set(forbid_missing)
        rules = list(forbid_rules)
        if granted_by is None and asked_by is None and alternatives:
            names, cr = cheapest(alternatives)
            missing |= names
            rules.append(cr)
            why = (
                STEPS[2]
                + "; no permit or ask is true yet, so also "
                + "the claims of the cheapest unknown alternative (step 5)"
            )
            return done(NEED, 2, rules, missing, why)
        return done(NEED, 2, rules, missing)
    if asked_by is not None:
        if approval == "approved":
            return done(GRANTED, 4, [asked_by], why=STEPS[4] + ": the owner approved")
        if approval == "denied":
            return done(DENIED, 4, [asked_by], why=STEPS[4] + ": the owner refused")
        return done(SUBMITTED, 4, [asked_by], why=STEPS[4] + ": waiting for the owner's answer")
    if alternatives:
        names, cr = cheapest(alternatives)
        return done(NEED, 5, [cr], names)
    if not candidates:
        return done(DENIED, 6, [], why="no rule names this resource and scope: default deny")
    return done(DENIED, 6, [])


# ------------------------------------------------------------------ the request


def explain(ps: PolicySet, request: dict) -> dict:
    """The decision (``Decision.to_json()``) with an ``explanation`` member:
    one entry per requested resource and scope. Raises ``RequestError`` for a
    malformed request, like :meth:`PolicySet.decide`."""
    if isinstance(request, dict) and request.get("time") is None:
        # one instant for the decision and its explanation
        request = {**request, "time": datetime.now(UTC)}
    decision = ps.decide(request)
    perms, claims, sources, client, now = normalise(request)
    groups_of = {pf.name: {g.name: literal_value(g.members) for g in pf.groups} for pf in ps.files}
    entries = []
    for resource, scopes, approvals in perms:
        owner = resource["owner"]
        plan = ps.plan(owner, resource["id"], resource.get("type"), resource.get("name"))
        view = ps.claims_view(owner, claims, sources)
        ctx = Ctx(view, client, resource, now)
        ignored = sorted(set(claims) - set(view))
        for scope in scopes:
            entry = explain_scope(plan, scope, ctx, approvals.get(scope), resource["id"], groups_of)
            if ignored:
                entry["ignored_claims"] = ignored
            entries.append(entry)
    out = decision.to_json()
    out["time"] = iso(now)
    out["explanation"] = entries
    return out


# ------------------------------------------------------------------ for humans


def _tree(node: dict, depth: int, lines: list[str]) -> None:
    pad = "    " + "  " * depth
    label = f"{node['clause']} " if "clause" in node else ""
    lines.append(f"{pad}{label}{node['text']}  -> {value_text(node)}")
    for ref in node.get("operands", ()):
        lines.append(f"{pad}    ({ref['text']} is {ref['is']})")
    for part in node.get("parts", ()):
        _tree(part, depth + 1, lines)


def render_explanation(data: dict) -> str:
    """The output of :func:`explain` as text for a policy author."""
    lines = [f"decision: {data['decision']}"]
    for key in ("granted", "denied", "submitted"):
        for g in data.get(key, ()):
            extra = ""
            if key == "granted":
                extra = f" (expires {g['expires_at']})" if g.get("expires_at") else " (no expiry)"
            lines.append(f"  {key} {g['resource_id']}: {', '.join(g['scopes'])}{extra}")
    for c in data.get("required_claims", ()):
        src = ""
        if c.get("issuer"):
            src = f" from {c['issuer'][0]}"
        lines.append(f"  needs claim {c['name']}{src}")
    for e in data.get("errors", ()):
        lines.append(f"  run-time error in {e['rule']} ({e['resource_id']} {e['scope']}): {e['message']}")
    if data.get("time"):
        lines.append(f"  at {data['time']}")
    for entry in data.get("explanation", ()):
        lines.append("")
        head = f"{entry['resource_id']} {entry['scope']}: {entry['outcome']} (step {entry['step']}: {entry['because']}"
        if entry["rules"]:
            head += "; " + ", ".join(entry["rules"])
        head += ")"
        lines.append(head)
        if entry["missing"]:
            lines.append(f"  missing claims: {', '.join(entry['missing'])}")
        if entry.get("ignored_claims"):
            lines.append(
                "  claims ignored (not from the declared issuer or format): " + ", ".join(entry["ignored_claims"])
            )
        if not entry["candidates"]:
            lines.append("  no candidate rules")
        for c in entry["candidates"]:
            mark = "*" if c.get("decisive") else "-"
            value = "expired" if c.get("value") == "expired" else value_text(c)
            lines.append(f"  {mark} {c['rule']}: {c['effect']} -> {value}")
            lines.append(f"      {c['text']}")
            if c.get("note"):
                lines.append(f"      ({c['note']})")
            for clause in c.get("clauses", ()):
                _tree(clause, 1, lines)
    return "\n".join(lines) + "\n"
