"""Conditions seen from outside the engine: rendered as text (group members
shown), folded where the resource is known, and what they read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..compile import Ctx, compile_cond
from ..eval import iso
from ..policyset import PolicySet
from ..syntax import ast as A
from ..syntax.visitor import Visitor
from ..values import literal_value

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


def expr_text(node: Any, groups: dict[str, tuple[Any, ...]] | None = None) -> str:
    """A condition as policy text. With ``groups``, a group reference shows its
    members too: ``family [bob@example.com, carol@example.com]``."""
    return _Text(groups).at(node, 0)


# precedence: or 1, and 2, not 3, comparisons and operands 4
class _Text(Visitor[str]):
    """:func:`expr_text`: each node spelt inside a parent of precedence ``outer``
    (:meth:`at`), parenthesised where it binds less tightly."""

    def __init__(self, groups: dict[str, Any] | None) -> None:
        self.groups = groups
        self.outer = 0

    def at(self, node: Any, outer: int) -> str:
        saved, self.outer = self.outer, outer
        try:
            return self.visit(node)
        finally:
            self.outer = saved

    def visit_Or(self, node: A.Or) -> str:
        s = " or ".join(self.at(x, 1) for x in node.items)
        return f"({s})" if self.outer > 1 else s

    def visit_And(self, node: A.And) -> str:
        s = " and ".join(self.at(x, 2) for x in node.items)
        return f"({s})" if self.outer > 2 else s

    def visit_Not(self, node: A.Not) -> str:
        inner = node.item
        if isinstance(inner, (A.Compare, A.Has, A.And, A.Or)):
            return f"not ({self.at(inner, 0)})"
        return "not " + self.at(inner, 3)

    def visit_Compare(self, node: A.Compare) -> str:
        s = f"{self.at(node.left, 5)} {node.op} {self.at(node.right, 5)}"
        return f"({s})" if self.outer > 4 else s

    def visit_Has(self, node: A.Has) -> str:
        s = "has " + self.at(node.ref, 5)
        return f"({s})" if self.outer > 4 else s

    def visit_Truthy(self, node: A.Truthy) -> str:
        return self.visit(node.operand)

    def visit_Literal(self, node: A.Literal) -> str:
        if node.kind == "list":
            return "[" + ", ".join(self.at(x, 0) for x in node.value) + "]"
        return _literal_text(node.value, node.kind, node.text)

    def visit_ClaimRef(self, node: A.ClaimRef) -> str:
        if node.quoted:
            return f"claims[{json.dumps(node.name, ensure_ascii=False)}]"
        return "claims." + ".".join(node.path)

    def visit_AttrRef(self, node: A.AttrRef) -> str:
        return f"{node.entity}.{node.name}"

    def visit_NowRef(self, node: A.NowRef) -> str:
        return "now"

    def visit_GroupRef(self, node: A.GroupRef) -> str:
        if self.groups is None or node.name not in self.groups:
            return node.name
        members = list(self.groups[node.name])
        shown = ", ".join(_bare(m) for m in members[:_MAX_GROUP_SHOWN])
        if len(members) > _MAX_GROUP_SHOWN:
            shown += f", … {len(members) - _MAX_GROUP_SHOWN} more"
        return f"{node.name} [{shown}]"

    def generic_visit(self, node: Any) -> str:
        return str(node)


def rule_groups(ps: PolicySet) -> dict[str, dict[str, tuple[Any, ...]]]:
    """File name → that file's groups (name → members)."""
    return {pf.name: {g.name: literal_value(g.members) for g in pf.groups} for pf in ps.files}


# ================================================================== partial evaluation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Static(Visitor[bool]):
    """Does this node read only literals, groups and the resource's attributes?"""

    def visit_Literal(self, node: A.Literal) -> bool:
        return True

    def visit_GroupRef(self, node: A.GroupRef) -> bool:
        return True

    def visit_AttrRef(self, node: A.AttrRef) -> bool:
        return node.entity == "resource"

    def visit_Compare(self, node: A.Compare) -> bool:
        return self.visit(node.left) and self.visit(node.right)

    def visit_Has(self, node: A.Has) -> bool:
        return self.visit(node.ref)

    def visit_Truthy(self, node: A.Truthy) -> bool:
        return self.visit(node.operand)

    def visit_And(self, node: A.And) -> bool:
        return all(self.visit(x) for x in node.items)

    def visit_Or(self, node: A.Or) -> bool:
        return all(self.visit(x) for x in node.items)

    def visit_Not(self, node: A.Not) -> bool:
        return self.visit(node.item)

    def generic_visit(self, node: Any) -> bool:
        return False  # claims, client attributes, now


_STATIC = _Static()


def simplify(node: Any, resource: dict[str, Any], groups: dict[str, tuple[Any, ...]]) -> Any:
    """Fold what the resource alone decides: → True, False or a residual condition."""
    if node is None:
        return True
    return _Simplify(resource, groups).visit(node)


class _Simplify(Visitor[Any]):
    """:func:`simplify` of one condition for one resource."""

    def __init__(self, resource: dict[str, Any], groups: dict[str, tuple[Any, ...]]) -> None:
        self.resource = resource
        self.groups = groups

    def visit_And(self, node: A.And) -> Any:
        items = []
        for x in node.items:
            s = self.visit(x)
            if s is False:
                return False
            if s is not True:
                items.append(s)
        if not items:
            return True
        return items[0] if len(items) == 1 else A.And(tuple(items), node.span)

    def visit_Or(self, node: A.Or) -> Any:
        items = []
        for x in node.items:
            s = self.visit(x)
            if s is True:
                return True
            if s is not False:
                items.append(s)
        if not items:
            return False
        return items[0] if len(items) == 1 else A.Or(tuple(items), node.span)

    def visit_Not(self, node: A.Not) -> Any:
        s = self.visit(node.item)
        if s is True or s is False:
            return not s
        return A.Not(s, node.span)

    def visit_Literal(self, node: A.Literal) -> Any:
        return self.fold(node) if node.kind == "bool" else node

    def visit_GroupRef(self, node: A.GroupRef) -> Any:
        return node

    def generic_visit(self, node: Any) -> Any:
        return self.fold(node) if _STATIC.visit(node) else node

    def fold(self, node: Any) -> Any:
        """The node's value for this resource, if that alone decides it."""
        r = compile_cond(node, self.groups)(Ctx({}, {}, self.resource, _EPOCH))
        if r is True or r is False:
            return r
        return node


# ================================================================== what a condition reads


@dataclass
class Reads:
    claims: set[Any] = field(default_factory=set)
    client: set[Any] = field(default_factory=set)
    now: bool = False


def read_by(node: Any, out: Reads) -> Reads:
    """Add the claims, client attributes and ``now`` that ``node`` reads to ``out``."""
    if node is None or node is True or node is False:
        return out
    _ReadBy(out).visit(node)
    return out


class _ReadBy(Visitor[None]):
    """:func:`read_by`: what one condition reads, added to ``out``."""

    def __init__(self, out: Reads) -> None:
        self.out = out

    def visit_ClaimRef(self, node: A.ClaimRef) -> None:
        self.out.claims.add(node.name if node.quoted else ".".join(node.path))

    def visit_AttrRef(self, node: A.AttrRef) -> None:
        if node.entity == "client":
            self.out.client.add(node.name)

    def visit_NowRef(self, node: A.NowRef) -> None:
        self.out.now = True

    def visit_And(self, node: A.And) -> None:
        for x in node.items:
            self.visit(x)

    def visit_Or(self, node: A.Or) -> None:
        for x in node.items:
            self.visit(x)

    def visit_Not(self, node: A.Not) -> None:
        self.visit(node.item)

    def visit_Compare(self, node: A.Compare) -> None:
        self.visit(node.left)
        self.visit(node.right)

    def visit_Has(self, node: A.Has) -> None:
        self.visit(node.ref)

    def visit_Truthy(self, node: A.Truthy) -> None:
        self.visit(node.operand)

    def generic_visit(self, node: Any) -> None:
        return None  # literals and groups read nothing
