"""Sources → a checked, compiled PolicySet, and its decide()."""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Iterable
from typing import Any

from .check import check_parsed
from .compile import CRule, Ctx, Plan, TargetIndex, rule_condition
from .diagnostics import Diagnostic, PolicyError
from .eval import NEED, Decision, ScopeTrace, assemble, assemble_one, check_request, decide_scope, plain_request
from .syntax import ParsedSource, Source, parse_source, read_sources
from .syntax import ast as A
from .values import format_uri, literal_value

GLOBAL = ""  # the index key of the operator's global rules
_blank = object.__new__


def compile_sources(sources: Iterable[Source]) -> PolicySet:
    """Check and compile; raise :class:`PolicyError` if any source has an error."""
    return compile_parsed(parse_source(s) for s in sources)


def compile_parsed(parsed: Iterable[ParsedSource]) -> PolicySet:
    """Check and compile sources already parsed (:func:`policy_lang.parse_source`);
    raise :class:`PolicyError` if any has an error."""
    # building many small AST objects: the cyclic collector only slows that down
    enabled = gc.isenabled()
    gc.disable()
    try:
        parsed = list(parsed)
        files, diags = check_parsed(parsed)
        if any(d.is_error for d in diags):
            raise PolicyError(diags)
        return PolicySet(files, diags, [p.source for p in parsed])
    finally:
        if enabled:
            gc.enable()


def load(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> PolicySet:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    sources, diags = read_sources(paths)
    if diags:
        raise PolicyError(diags)
    return compile_sources(sources)


def loads(text: str, name: str = "<policy>", owner: str | None = None) -> PolicySet:
    return compile_sources([Source(name, text, owner)])


class PolicySet:
    """A checked, compiled, immutable set of policies. Thread-safe to share."""

    def __init__(
        self,
        files: list[A.PolicyFile],
        diagnostics: list[Diagnostic] | None = None,
        sources: list[Source] | None = None,
    ):
        self.files = files
        self.diagnostics = [d for d in (diagnostics or []) if not d.is_error]
        self.sources = sources or []
        self.rules: list[CRule] = []
        self._index: dict[str, TargetIndex] = {}
        self._global = TargetIndex()
        self._declared: dict[str, dict[str, tuple[str, str]]] = {GLOBAL: {}}
        self._plans: dict[tuple, Plan] = {}
        order = 0
        # global files first: their rules come first in every plan
        for pf in sorted(files, key=lambda f: (not f.is_global, f.name)):
            groups = {g.name: literal_value(g.members) for g in pf.groups}
            key = GLOBAL if pf.is_global else pf.owner
            decl = self._declared.setdefault(key, {})
            for c in pf.claims:
                for n in c.names:
                    decl[n] = (c.issuer, c.format)
            index = self._global if pf.is_global else self._index.setdefault(pf.owner, TargetIndex())
            for rule in pf.rules:
                cr = CRule(
                    rule.effect,
                    frozenset(rule.scopes) if rule.scopes is not None else None,
                    rule_condition(rule, groups),
                    rule,
                    rule.ref,
                    None if pf.is_global else pf.owner,
                    rule.target,
                    order=order,
                )
                order += 1
                index.add(cr)
                self.rules.append(cr)
        # an owner's view of claim declarations: the global ones, then the owner's own
        glob_decl = self._declared[GLOBAL]
        for key in list(self._declared):
            if key != GLOBAL:
                self._declared[key] = {**glob_decl, **self._declared[key]}
        self.version = hashlib.sha256(
            "\x00".join(f"{s.name}\x00{s.owner or ''}\x00{s.text}" for s in self.sources).encode()
        ).hexdigest()[:16]

    # -------------------------------------------------------------- queries
    @property
    def owners(self) -> list[str]:
        return sorted(self._index)

    def declared_claims(self, owner: str | None) -> dict[str, tuple[str, str]]:
        """claim name → (issuer, format) that apply to ``owner``'s resources."""
        return self._declared.get(owner or GLOBAL, self._declared[GLOBAL])

    def groups_by_file(self) -> dict[str, dict[str, Any]]:
        """file name → its groups' values (what its rules' conditions read)."""
        return {pf.name: {g.name: literal_value(g.members) for g in pf.groups} for pf in self.files}

    def plan(self, owner: str, rid: str | None, rtype: str | None, rname: str | None) -> Plan:
        key = (owner, rid, rtype, rname)
        plan = self._plans.get(key)
        if plan is None:
            rules = self._global.candidates(rid, rtype, rname)
            idx = self._index.get(owner)
            if idx is not None:
                rules = rules + idx.candidates(rid, rtype, rname)
            plan = Plan(rules)
            if len(self._plans) > 200_000:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def claims_view(self, owner: str, claims: dict, sources: dict) -> dict:
        """Drop claims whose issuer or format is not the one the owner's
        ``claims … from … as …`` declarations require."""
        if not sources:
            return claims
        decl = self._declared.get(owner) or self._declared[GLOBAL]
        if not decl:
            return claims
        view = claims
        for name, (issuer, fmt) in decl.items():
            src = sources.get(name)
            if name in claims and isinstance(src, dict):
                if src.get("issuer") != issuer or not _same_format(src.get("format"), fmt):
                    if view is claims:
                        view = dict(claims)
                    view.pop(name, None)
        return view

    # -------------------------------------------------------------- deciding
    def decide(self, request: dict[str, Any], *, trace: bool = False) -> Decision:
        """Section 3 of the language page over a section 4 request.

        With ``trace``, each :class:`ScopeResult` in ``Decision.results`` carries a
        :class:`ScopeTrace`: the candidate rules, the value of each rule weighed,
        the claims the conditions read. The decision itself is the same."""
        perms, claims, sources, client, now = plain_request(request) or check_request(request)  # normalise
        results = []
        plans = self._plans
        for resource, scopes, approvals in perms:
            owner = resource["owner"]
            rid = resource["id"]
            rtype = resource.get("type")
            rname = resource.get("name")
            plan = plans.get((owner, rid, rtype, rname)) or self.plan(owner, rid, rtype, rname)
            # Ctx(...) without its __init__ (a Python call made from C, a third of the cost)
            ctx = _blank(Ctx)
            ctx.claims = self.claims_view(owner, claims, sources) if sources else claims
            ctx.client = client
            ctx.resource = resource
            ctx.now = now
            if trace:
                ignored = sorted(set(claims) - set(ctx.claims))
                for scope in scopes:
                    seen: list[tuple[CRule, Any]] = []
                    res = decide_scope(plan, scope, ctx, approvals.get(scope) if approvals else None, rid, owner, seen)
                    res.trace = ScopeTrace(_weighed(plan, scope), seen, ctx, ignored)
                    results.append(res)
                continue
            if len(scopes) == 1 and len(perms) == 1:
                # the common case, one scope of one resource: assemble's own shortcut, without
                # the bookkeeping of several results
                scope = scopes[0]
                res = decide_scope(plan, scope, ctx, approvals.get(scope) if approvals else None, rid, owner)
                if res.outcome != NEED and not res.errors:
                    return assemble_one(res)
                return assemble([res], self._declared)
            for scope in scopes:
                results.append(decide_scope(plan, scope, ctx, approvals.get(scope) if approvals else None, rid, owner))
        return assemble(results, self._declared)


def _weighed(plan: Plan, scope: str) -> tuple[CRule, ...]:
    forbids, permits, asks = plan.for_scope(scope)
    return (*forbids, *permits, *asks)


def _same_format(given, declared: str) -> bool:
    if given is None:
        return True  # the source names no format: the issuer alone decides
    return format_uri(str(given)) == format_uri(declared)
