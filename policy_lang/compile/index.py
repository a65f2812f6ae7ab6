"""Compiled rules, indexed.

Rules are indexed by owner, then by target (resource id, type, name,
type+name, glob, any resource), then by scope, so the cost of a decision
depends on the rules that can apply to the requested resource, never on other
owners' or other resources' rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .. import values as V
from ..syntax import ast as A
from .conditions import Fn


@dataclass(slots=True)
class CRule:
    """A compiled rule."""

    effect: str
    scopes: frozenset[str] | None
    cond: Fn | None  # None: unconditional
    rule: A.Rule
    ref: str
    owner: str | None
    target: A.Target
    glob: V.Glob | None = None
    order: int = 0  # the rule's position in its unit
    until: datetime | None = None  # the rule stops applying after this instant
    timed: bool = False  # has a for/until bound (read on every decision)

    def __post_init__(self) -> None:
        if self.target.pattern is not None:
            self.glob = V.glob(self.target.pattern)
        e = self.rule.expiry
        if e is not None:
            self.timed = True
            if e.kind == "until":
                self.until = e.until


class TargetIndex:
    """One owner's (or the global) rules, by target. Rules are added in the
    canonical order; :meth:`candidates` returns them in that order."""

    __slots__ = ("by_id", "by_type", "by_name", "by_type_name", "globs", "any", "rank")

    def __init__(self) -> None:
        self.by_id: dict[str, list[CRule]] = {}
        self.by_type: dict[str, list[CRule]] = {}
        self.by_name: dict[str, list[CRule]] = {}
        self.by_type_name: dict[tuple[str, str], list[CRule]] = {}
        self.globs: list[CRule] = []
        self.any: list[CRule] = []
        self.rank: dict[int, int] = {}  # id(rule) → its position in this index

    def add(self, cr: CRule) -> None:
        self.rank[id(cr)] = len(self.rank)
        t = cr.target
        k = t.kind
        if k == "any":
            self.any.append(cr)
        elif k == "id":
            assert t.resource_id is not None
            self.by_id.setdefault(t.resource_id, []).append(cr)
        elif k == "type":
            assert t.type is not None
            self.by_type.setdefault(t.type, []).append(cr)
        elif k == "name":
            assert t.name is not None
            self.by_name.setdefault(t.name, []).append(cr)
        elif k == "type_name":
            assert t.type is not None and t.name is not None
            self.by_type_name.setdefault((t.type, t.name), []).append(cr)
        else:  # name_like, type_name_like
            self.globs.append(cr)

    def candidates(self, rid: str | None, rtype: str | None, rname: str | None) -> list[CRule]:
        out: list[CRule] = []
        if self.any:
            out.extend(self.any)
        if rid is not None:
            got = self.by_id.get(rid)
            if got:
                out.extend(got)
        if rtype is not None:
            got = self.by_type.get(rtype)
            if got:
                out.extend(got)
            if rname is not None and self.by_type_name:
                got = self.by_type_name.get((rtype, rname))
                if got:
                    out.extend(got)
        if rname is not None:
            got = self.by_name.get(rname)
            if got:
                out.extend(got)
            for cr in self.globs:
                if cr.target.kind == "type_name_like" and cr.target.type != rtype:
                    continue
                if cr.glob is not None and cr.glob.match(rname):
                    out.append(cr)
        if len(out) > 1:
            rank = self.rank
            out.sort(key=lambda cr: rank[id(cr)])
        return out


Weighed = tuple[tuple[CRule, ...], tuple[CRule, ...], tuple[CRule, ...]]  # forbids, permits, asks


class Plan:
    """For one resource (owner, id, type, name): per scope, the candidate
    forbids, permits and asks, in source order. Cached: a policy set never changes."""

    __slots__ = ("rules", "by_scope")

    def __init__(self, rules: list[CRule]):
        self.rules = rules
        self.by_scope: dict[str, Weighed] = {}

    def for_scope(self, scope: str) -> Weighed:
        got = self.by_scope.get(scope)
        if got is None:
            f: list[CRule] = []
            p: list[CRule] = []
            a: list[CRule] = []
            for cr in self.rules:
                if cr.scopes is None or scope in cr.scopes:
                    (f if cr.effect == "forbid" else p if cr.effect == "permit" else a).append(cr)
            got = (tuple(f), tuple(p), tuple(a))
            if len(self.by_scope) < 256:
                self.by_scope[scope] = got
        return got
