"""Requests generated from two policy sets, for ``uma policy diff``: every
owner's resources as the targets name them, every scope named (plus one named
nowhere), claim, client and time values drawn from the literals in the conditions."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..compile import CRule
from ..eval import iso
from ..policyset import PolicySet
from ..syntax import ast as A
from ..syntax import walk
from ..syntax.visitor import Visitor
from ..values import Glob, literal_value
from .conditions import rule_groups

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


class _Slot(Visitor["tuple[Any, ...] | None"]):
    """The slot of a request an operand reads (``("claims", name, …)``,
    ``("client", name)``, ``("resource", "description")``, ``("now",)``), or None."""

    def visit_ClaimRef(self, node: A.ClaimRef) -> tuple[Any, ...] | None:
        return ("claims",) + ((node.name,) if node.quoted else tuple(node.path))

    def visit_AttrRef(self, node: A.AttrRef) -> tuple[Any, ...] | None:
        if node.entity == "client":
            return ("client", node.name)
        if node.name == "description":
            return ("resource", node.name)  # the other attributes come from the targets
        return None

    def visit_NowRef(self, node: A.NowRef) -> tuple[Any, ...] | None:
        return ("now",)

    def generic_visit(self, node: Any) -> tuple[Any, ...] | None:
        return None


_slot_of = _Slot().visit


class _Const(Visitor[Any]):
    """The value of a constant operand (a literal, a group's members), or ABSENT."""

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups

    def visit_Literal(self, node: A.Literal) -> Any:
        return literal_value(node)

    def visit_GroupRef(self, node: A.GroupRef) -> Any:
        return tuple(self.groups.get(node.name, ()))

    def generic_visit(self, node: Any) -> Any:
        return ABSENT


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _values_for(op: str, v: Any, ref_on_left: bool) -> list[Any]:
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


class _Collect(Visitor[None]):
    """Candidate values for every slot a condition reads, added to ``slots``."""

    def __init__(self, groups: dict[str, Any], slots: dict[tuple[Any, ...], list[Any]]) -> None:
        self.const = _Const(groups)
        self.slots = slots

    def visit_And(self, node: A.And) -> None:
        for x in node.items:
            self.visit(x)

    def visit_Or(self, node: A.Or) -> None:
        for x in node.items:
            self.visit(x)

    def visit_Not(self, node: A.Not) -> None:
        self.visit(node.item)

    def visit_Has(self, node: A.Has) -> None:
        s = _slot_of(node.ref)
        if s is not None:
            self.slots.setdefault(s, []).append("present")

    def visit_Compare(self, node: A.Compare) -> None:
        slots = self.slots
        ls, rs = _slot_of(node.left), _slot_of(node.right)
        lc, rc = self.const.visit(node.left), self.const.visit(node.right)
        claim_vs_now = ls is not None and rs is not None and ("now",) in (ls, rs) and "claims" in (ls[0], rs[0])
        if claim_vs_now:
            # a claim compared with now: timestamps either side of the base time
            claim = rs if ls == ("now",) else ls
            assert claim is not None
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
                    self.visit(side)

    def visit_Truthy(self, node: A.Truthy) -> None:
        self.generic_visit(node.operand)

    def generic_visit(self, node: Any) -> None:
        """A bare operand used as a condition: true and false."""
        s = _slot_of(node)
        if s is not None:
            self.slots.setdefault(s, []).extend([True, False])


def _rule_slots(cr: CRule, groups: dict[str, Any]) -> dict[tuple[Any, ...], list[Any]]:
    slots: dict[tuple[Any, ...], list[Any]] = {}
    collect = _Collect(groups, slots)
    for cond in (cr.rule.when, cr.rule.unless):
        if cond is not None:
            collect.visit(cond)
    e = cr.rule.expiry
    if e is not None and e.kind == "until" and e.until is not None:
        slots.setdefault(("now",), []).extend([e.until - timedelta(days=1), e.until + timedelta(days=1)])
    return slots


def _dedupe(values: Iterable[Any]) -> list[Any]:
    out, seen = [], set()
    for v in values:
        k = json.dumps(_json_value(v), sort_keys=True, default=str) if v is not ABSENT else "<absent>"
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def _slot_values(slot: tuple[Any, ...], values: list[Any]) -> list[Any]:
    """ABSENT first (withholding), then the literals' values, each once."""
    if slot == ("now",):
        return _dedupe([ABSENT] + [v if isinstance(v, datetime) else v for v in values if isinstance(v, datetime)])
    return _dedupe([ABSENT] + values)


def _owner_targets(ps: PolicySet, owner: str) -> list[CRule]:
    return [cr for cr in ps.rules if cr.owner == owner or cr.owner is None]


def _resources(owner: str, sets: tuple[PolicySet, ...]) -> list[dict[str, Any]]:
    ids: set[str] = set()
    types: set[str] = set()
    names: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for ps in sets:
        for pf in ps.files:
            if pf.is_global or pf.owner == owner:
                types.update(t.type for t in pf.types)
        for cr in _owner_targets(ps, owner):
            t = cr.target
            if t.kind == "id" and t.resource_id is not None:
                ids.add(t.resource_id)
            if t.type is not None:
                types.add(t.type)
            if t.name is not None:
                names.add(t.name)
            if t.pattern is not None:
                names.add(_synth_name(t.pattern, "x"))
                names.add(_synth_name(t.pattern, ""))
            if t.type is not None and t.name:
                pairs.add((t.type, t.name))
            elif t.type is not None and t.name is None and t.pattern:
                pairs.add((t.type, _synth_name(t.pattern, "x")))
    types_l, names_l = sorted(types), sorted(names)
    out: list[dict[str, Any]] = [{"id": rid, "owner": owner} for rid in sorted(ids)]
    combos: list[tuple[str | None, str | None]]
    if (len(types_l) + 1) * (len(names_l) + 1) <= 120:
        combos = [(t, n) for t in [None, *types_l] for n in [None, *names_l] if t or n]
    else:
        combos = [(t, None) for t in types_l] + [(None, n) for n in names_l] + sorted(pairs)
    for rtype, n in combos:
        r: dict[str, Any] = {"id": f"{owner}:{rtype or '-'}:{n or '-'}", "owner": owner}
        if rtype is not None:
            r["type"] = rtype
        if n is not None:
            r["name"] = n
        out.append(r)
    out.append({"id": f"{owner}:unmatched", "owner": owner, "type": "unmentioned-type", "name": "unmentioned-name"})
    return out


def _assign(target: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = value


def _request(
    resource: dict[str, Any], scopes: list[str], assignment: dict[tuple[Any, ...], Any], approval: str | None
) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    client: dict[str, Any] = {}
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
    req: dict[str, Any] = {
        "resource": resource,
        "scopes": list(scopes),
        "claims": claims,
        "client": client,
        "time": iso(time),
    }
    if approval is not None:
        req["approvals"] = [{"scope": s, "answer": approval} for s in scopes]
    return req


def _product_at(dims: list[list[Any]], index: int) -> list[Any]:
    out = []
    for values in reversed(dims):
        index, k = divmod(index, len(values))
        out.append(values[k])
    return list(reversed(out))


def _size(dims: list[list[Any]]) -> int:
    n = 1
    for d in dims:
        n *= len(d)
    return n


def generate_requests(
    old: PolicySet, new: PolicySet | None = None, *, limit: int = 3000, seed: int = 20261127
) -> list[dict[str, Any]]:
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
    tiers: list[list[tuple[Any, ...]]] = [[], [], [], []]  # (request maker, row, claim_sources)

    classes: set[Any] = set()
    chosen = []
    for resource in resources:
        plans = [s.plan(resource["owner"], resource["id"], resource.get("type"), resource.get("name")) for s in sets]
        # resources that the same rules of both sets govern decide alike, unless a
        # rule reads the resource's own attributes: keep the first of each class
        key = (resource["owner"],) + tuple(tuple(id(cr) for cr in p.rules) for p in plans)
        if any(_reads_resource(cr.rule) for p in plans for cr in p.rules):
            key += (resource["id"], resource.get("type"), resource.get("name"))
        if key not in classes:
            classes.add(key)
            chosen.append((resource, plans))
    per_resource = max(12, limit // max(1, len(chosen)))
    for resource, plans in chosen:
        rules: list[tuple[CRule, dict[str, Any]]] = []
        for s_i, plan in enumerate(plans):
            for cr in plan.rules:
                rules.append((cr, groups[s_i].get(cr.rule.pos.file, {})))
        scopes = sorted({sc for cr, _ in rules if cr.scopes for sc in cr.scopes}) + [UNMENTIONED_SCOPE]
        res = dict(resource, scopes=[s for s in scopes if s != UNMENTIONED_SCOPE])
        has_ask = any(cr.effect == "ask" for cr, _ in rules)
        approvals: list[Any] = [None, "approved", "denied"] if has_ask else [None]
        all_slots: dict[tuple[Any, ...], list[Any]] = {}
        per_rule: list[dict[tuple[Any, ...], list[Any]]] = []
        for cr, g in rules:
            rs = _rule_slots(cr, g)
            per_rule.append(rs)
            for k, v in rs.items():
                all_slots.setdefault(k, []).extend(v)
        names = sorted(all_slots)
        dims = [_slot_values(k, all_slots[k]) for k in names] + [approvals]
        total = _size(dims)

        def req_of(
            row: list[Any],
            res: dict[str, Any] = res,
            scopes: list[str] = scopes,
            names: list[tuple[Any, ...]] = names,
        ) -> dict[str, Any]:
            return _request(res, scopes, dict(zip(names, row[:-1])), row[-1])

        # tier 0: nobody presenting anything, and per rule a base that meets its
        # literals (each of its slots at its first value for that rule); tier 1:
        # each slot varied alone around each base (every value any rule of this
        # resource compares it with, and absence), the approvals too
        anonymous = [ABSENT] * len(names) + [None]
        bases: list[tuple[dict[tuple[Any, ...], list[Any]], list[Any]]] = []
        varied: list[list[Any]] = []
        extra: list[list[Any]] = []
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
        seen: set[Any] = set()
        reprs: dict[int, str] = {}  # id → repr of the values alive in this resource's rows

        def fresh(row: list[Any], tag: Any = None) -> bool:
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
    chosen_rows: list[Any] = []
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
    return any(
        isinstance(n, A.AttrRef) and n.entity == "resource" for cond in (rule.when, rule.unless) for n in walk(cond)
    )


def _row_key(row: list[Any], reprs: dict[int, str]) -> tuple[Any, ...]:
    out = []
    for v in row:
        r = reprs.get(id(v))
        if r is None:
            r = reprs[id(v)] = "<absent>" if v is ABSENT else repr(v)
        out.append(r)
    return tuple(out)


def _spread(items: list[Any], n: int) -> list[Any]:
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
