"""Why a decision is what it is: ``uma policy eval --explain``.

For every requested scope of every requested resource, the explanation lists
the candidate rules in the order the engine weighs them (forbids, then
permits, then asks; each in the order of the plan), with each clause's text and
truth value, node by node, and the step (1 to 6 of section 3 of the language
page) that decided the scope.

This module decides nothing: it renders the trace of the decision itself
(:meth:`PolicySet.decide` with ``trace=True``: the step, the deciding rules,
the missing claims, and each weighed rule's value as the engine computed it).
Only what the decision did not need is computed here, for the reader: the
value of each node below a rule (the engine's own compiled closures,
:func:`compile.compile_cond` / :func:`compile.compile_operand`, on that
sub-node), and the value of a candidate the decision never reached.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import fmt
from ..compile import CRule, Ctx, compile_cond, compile_operand
from ..eval import EXPIRED, STEPS, ScopeResult, expired, iso
from ..policyset import PolicySet
from ..syntax import ast as A
from ..syntax.visitor import Visitor
from ..values import ABSENT, Err, Missing, Unknown

__all__ = ["STEPS", "explain", "render_explanation", "value_json", "value_text"]


# ------------------------------------------------------------------ values


def value_json(r: Any) -> dict[str, Any]:
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


def value_text(v: dict[str, Any]) -> str:
    """``true``, ``false``, ``unknown (missing: x, y)``, ``error: message``."""
    if v["value"] == "unknown":
        return f"unknown (missing: {', '.join(v['missing'])})"
    if v["value"] == "error":
        return f"error: {v['error']}"
    return str(v["value"])


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


class _Kind(Visitor[str]):
    """What kind of condition node: ``and``, ``or``, ``not``, the operator of a
    comparison, ``has``, or ``truth`` for a bare operand used as a condition."""

    def visit_And(self, node: A.And) -> str:
        return "and"

    def visit_Or(self, node: A.Or) -> str:
        return "or"

    def visit_Not(self, node: A.Not) -> str:
        return "not"

    def visit_Compare(self, node: A.Compare) -> str:
        return node.op

    def visit_Has(self, node: A.Has) -> str:
        return "has"

    def generic_visit(self, node: Any) -> str:
        return "truth"


_KIND = _Kind()


def node_json(node: Any, groups: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """One condition node, its value (the engine's closure for this node) and its parts."""
    return _NodeJson(groups, ctx).visit(node)


class _NodeJson(Visitor[dict[str, Any]]):
    """:func:`node_json`: a condition node with its value, its operands' values
    (claims, attributes, ``now``) and its parts (sub-conditions), in one context."""

    def __init__(self, groups: dict[str, Any], ctx: Ctx) -> None:
        self.groups = groups
        self.ctx = ctx

    def node(self, node: Any) -> dict[str, Any]:
        return {
            "text": fmt.expr(node),
            "kind": _KIND.visit(node),
            **value_json(compile_cond(node, self.groups)(self.ctx)),
        }

    def visit_And(self, node: A.And) -> dict[str, Any]:
        return {**self.node(node), "parts": [self.visit(x) for x in node.items]}

    def visit_Or(self, node: A.Or) -> dict[str, Any]:
        return {**self.node(node), "parts": [self.visit(x) for x in node.items]}

    def visit_Not(self, node: A.Not) -> dict[str, Any]:
        return {**self.node(node), "parts": [self.visit(node.item)]}

    def visit_Compare(self, node: A.Compare) -> dict[str, Any]:
        return self.leaf(node, (node.left, node.right))

    def visit_Has(self, node: A.Has) -> dict[str, Any]:
        return self.leaf(node, (node.ref,))

    def visit_Truthy(self, node: A.Truthy) -> dict[str, Any]:
        return self.leaf(node, (node.operand,))

    def generic_visit(self, node: Any) -> dict[str, Any]:
        return self.leaf(node, (node,))  # a bare operand used as a condition

    def leaf(self, node: Any, operands: tuple[Any, ...]) -> dict[str, Any]:
        """A comparison, ``has`` or bare operand: the values its references read."""
        out = self.node(node)
        refs = []
        for x in operands:
            if isinstance(x, (A.ClaimRef, A.AttrRef, A.NowRef)):
                refs.append({"text": fmt.expr(x), "is": _show(compile_operand(x, self.groups)(self.ctx))})
            elif not isinstance(x, (A.Literal, A.GroupRef)):  # a parenthesised condition
                out.setdefault("parts", []).append(self.visit(x))
        if refs:
            out["operands"] = refs
        return out


# ------------------------------------------------------------------ one scope


def _candidate(cr: CRule, value: Any, groups: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """One candidate rule, its value and its clauses node by node."""
    rule = cr.rule
    entry: dict[str, Any] = {"effect": cr.effect, "rule": cr.ref, "text": fmt.rule_one_line(rule)}
    if value is EXPIRED:
        assert rule.expiry is not None
        entry["in_time"] = False
        entry["note"] = f"expired: applies only until {rule.expiry.text}"
        entry["value"] = "expired"
        return entry
    clauses = []
    for word, cond in (("when", rule.when), ("unless", rule.unless)):
        if cond is not None:
            clauses.append({"clause": word, **node_json(cond, groups, ctx)})
    entry["clauses"] = clauses
    entry.update(value_json(value))
    if cr.cond is None:
        entry["note"] = "no condition: always applies"
    return entry


def explain_scope(res: ScopeResult, groups_of: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One scope's trace: its candidates and the step that decided it."""
    trace = res.trace
    assert trace is not None, "explain needs a decision made with trace=True"
    ctx = trace.ctx
    weighed = {id(cr): value for cr, value in trace.values}
    candidates = []
    for cr in trace.candidates:
        value = weighed.get(id(cr), _NOT_REACHED)
        if value is _NOT_REACHED:  # decided before this rule's turn: its value, for the reader
            value = EXPIRED if expired(cr, ctx.now) else True if cr.cond is None else cr.cond(ctx)
        candidates.append(_candidate(cr, value, groups_of.get(cr.rule.pos.file, {}), ctx))
    rules = res.deciding_rules
    chosen = {cr.ref for cr in rules}
    for c in candidates:
        if c["rule"] in chosen:
            c["decisive"] = True
    out: dict[str, Any] = {
        "resource_id": res.resource_id,
        "scope": res.scope,
        "candidates": candidates,
        "outcome": res.outcome,
        "step": res.step,
        "because": res.because,
        "rules": [cr.ref for cr in rules],
        "missing": sorted(res.missing),
    }
    if trace.ignored_claims:
        out["ignored_claims"] = trace.ignored_claims
    return out


_NOT_REACHED = object()


# ------------------------------------------------------------------ the request


def explain(ps: PolicySet, request: dict[str, Any]) -> dict[str, Any]:
    """The decision (``Decision.to_json()``) with an ``explanation`` member:
    one entry per requested resource and scope. Raises ``RequestError`` for a
    malformed request, like :meth:`PolicySet.decide`."""
    if isinstance(request, dict) and request.get("time") is None:
        # one instant for the decision and its explanation
        request = {**request, "time": datetime.now(UTC)}
    decision = ps.decide(request, trace=True)
    groups_of = ps.groups_by_file()
    out = decision.to_json()
    first = decision.results[0].trace
    assert first is not None
    out["time"] = iso(first.ctx.now)
    out["explanation"] = [explain_scope(res, groups_of) for res in decision.results]
    return out


# ------------------------------------------------------------------ for humans


def _tree(node: dict[str, Any], depth: int, lines: list[str]) -> None:
    pad = "    " + "  " * depth
    label = f"{node['clause']} " if "clause" in node else ""
    lines.append(f"{pad}{label}{node['text']}  -> {value_text(node)}")
    for ref in node.get("operands", ()):
        lines.append(f"{pad}    ({ref['text']} is {ref['is']})")
    for part in node.get("parts", ()):
        _tree(part, depth + 1, lines)


def render_explanation(data: dict[str, Any]) -> str:
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
