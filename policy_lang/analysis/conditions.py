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
    return _text(node, groups, 0)


# precedence: or 1, and 2, not 3, comparisons and operands 4
def _text(node: Any, groups: dict[str, Any] | None, outer: int) -> str:
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


def rule_groups(ps: PolicySet) -> dict[str, dict[str, tuple[Any, ...]]]:
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


def simplify(node: Any, resource: dict[str, Any], groups: dict[str, tuple[Any, ...]]) -> Any:
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
class Reads:
    claims: set[Any] = field(default_factory=set)
    client: set[Any] = field(default_factory=set)
    now: bool = False


def read_by(node: Any, out: Reads) -> Reads:
    """Add the claims, client attributes and ``now`` that ``node`` reads to ``out``."""
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
            read_by(x, out)
    elif isinstance(node, A.Not):
        read_by(node.item, out)
    elif isinstance(node, A.Compare):
        read_by(node.left, out)
        read_by(node.right, out)
    elif isinstance(node, A.Has):
        read_by(node.ref, out)
    elif isinstance(node, A.Truthy):
        read_by(node.operand, out)
    return out
