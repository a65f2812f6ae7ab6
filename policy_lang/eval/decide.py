"""Request → decision: section 3 of the language page, exactly.

Per requested scope of a requested resource, in this order:

1. a forbid whose condition is TRUE (or fails with a type error) → denied;
2. a forbid whose condition is UNKNOWN → needs those claims first;
3. a permit whose condition is TRUE → granted (expiry: the latest bound of
   the matching permits);
4. an ask whose condition is TRUE → granted if the owner approved, denied if
   the owner refused, else submitted;
5. a permit or ask whose condition is UNKNOWN → needs the claims of the
   alternative that lacks the fewest, plus those of step 2;
6. otherwise denied.

Then, over all scopes: all granted → ``permit``; some need claims →
``need_info``; some wait for the owner → ``request_submitted``; some granted
→ ``partial``; else ``deny``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..compile import CRule, Ctx
from ..compile.index import Weighed
from ..values import Err, Unknown, format_uri

GRANTED, DENIED, NEED, SUBMITTED = "granted", "denied", "need_info", "submitted"

#: The steps above, in a policy author's words (what ``explain`` shows).
STEPS = {
    1: "a forbid whose condition is true denies the scope",
    2: "a forbid whose condition is unknown needs its claims first",
    3: "a permit whose condition is true grants the scope",
    4: "an ask whose condition is true leaves it to the owner",
    5: "a permit or ask whose condition is unknown needs the claims of the cheapest alternative",
    6: "no rule applied: default deny",
}
# why a scope got its outcome, when the step alone does not say it all
_FORBID_ERROR = "a forbid whose condition fails with a type error denies the scope (fail closed)"
_FORBID_AND_CHEAPEST = (
    STEPS[2] + "; no permit or ask is true yet, so also the claims of the cheapest unknown alternative (step 5)"
)
_APPROVED = STEPS[4] + ": the owner approved"
_REFUSED = STEPS[4] + ": the owner refused"
_WAITING = STEPS[4] + ": waiting for the owner's answer"
_NO_CANDIDATES = "no rule names this resource and scope: default deny"

#: The value a trace records for a rule past its ``until``: not evaluated, it no longer applies.
EXPIRED = "expired"


@dataclass(slots=True)
class ScopeTrace:
    """What :func:`decide_scope` saw while deciding one scope (``PolicySet.decide(request,
    trace=True)``), for :mod:`policy_lang.analysis.explain` to render.

    ``values`` holds, in the order the rules were weighed, each rule the decision
    looked at and its condition's value: ``True``, ``False``, an :class:`Unknown`
    (the claims it lacks), an :class:`Err`, or :data:`EXPIRED`. A candidate not in
    ``values`` was not needed: the scope was decided before its turn."""

    candidates: tuple[CRule, ...]  # the plan's forbids, permits and asks, in the order weighed
    values: list[tuple[CRule, Any]]
    ctx: Ctx  # what the conditions read (the claims as the owner's declarations let through)
    ignored_claims: list[str]  # request claims dropped for their issuer or format


@dataclass(slots=True)
class ScopeResult:
    """How one scope of one resource was decided (also what explain shows)."""

    resource_id: str
    scope: str
    outcome: str  # granted | denied | need_info | submitted
    rule: CRule | None = None  # the rule that decided it
    rules: tuple[CRule, ...] = ()  # the rules whose claims are needed (need_info)
    missing: frozenset[str] = frozenset()
    expires_at: datetime | None = None
    errors: list[tuple[CRule, Err]] = field(default_factory=list)
    owner: str | None = None  # the resource's owner: whose claims declarations apply
    step: int = 6  # the step (1 to 6 above) that decided it
    because: str = STEPS[6]  # that step in words, with what decided within it
    trace: ScopeTrace | None = None  # only when asked for

    @property
    def deciding_rules(self) -> tuple[CRule, ...]:
        """The rule that decided the scope, or those whose claims are needed."""
        return (self.rule,) if self.rule is not None else self.rules


@dataclass(slots=True)
class Decision:
    decision: str
    granted: list[dict[str, Any]]
    denied: list[dict[str, Any]]
    submitted: list[dict[str, Any]]
    required_claims: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    results: list[ScopeResult]  # one per requested scope, in request order

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "granted": self.granted,
            "denied": self.denied,
            "submitted": self.submitted,
            "required_claims": self.required_claims,
            "reasons": self.reasons,
            "errors": self.errors,
        }


# ------------------------------------------------------------------ one scope

_NONE_MISSING: frozenset[str] = frozenset()


def decide_scope(
    weighed: Weighed,
    scope: str,
    ctx: Ctx,
    approval: str | None,
    rid: str,
    owner: str | None = None,
    seen: list[tuple[CRule, Any]] | None = None,
) -> ScopeResult:
    """One scope of one resource, steps 1 to 6, over the rules ``weighed`` for it
    (:meth:`policy_lang.PolicySet.weighed`). With ``seen`` (a list), every rule
    weighed is appended to it with its condition's value: the trace."""
    # (the lists and sets below are made only when a rule needs them: this runs once
    # per requested scope)
    forbids, permits, asks = weighed
    errors: list[tuple[CRule, Err]] = []
    forbid_missing: set[str] | None = None
    forbid_rules: list[CRule] | None = None
    now = ctx.now
    r: Any
    # (a rule past its ``until`` no longer applies: cr.until is checked inline, the hot path)
    # 1, 2: forbids
    for cr in forbids:
        if cr.until is not None and now > cr.until:
            if seen is not None:
                seen.append((cr, EXPIRED))
            continue
        r = True if cr.cond is None else cr.cond(ctx)
        if seen is not None:
            seen.append((cr, r))
        if r is True:
            return ScopeResult(rid, scope, DENIED, cr, (), _NONE_MISSING, None, errors, owner, 1, STEPS[1])
        if r is False:
            continue
        if isinstance(r, Unknown):
            if forbid_missing is None or forbid_rules is None:
                forbid_missing, forbid_rules = set(), []
            forbid_missing |= r
            forbid_rules.append(cr)
            continue
        errors.append((cr, r))  # a type error makes a forbid apply: fail closed
        return ScopeResult(rid, scope, DENIED, cr, (), _NONE_MISSING, None, errors, owner, 1, _FORBID_ERROR)
    # 3: permits
    granted_by: CRule | None = None
    expires: datetime | None = None
    unbounded = False
    alternatives: list[tuple[frozenset[str], CRule]] | None = None
    for cr in permits:
        if cr.until is not None and now > cr.until:
            if seen is not None:
                seen.append((cr, EXPIRED))
            continue
        r = True if cr.cond is None else cr.cond(ctx)
        if seen is not None:
            seen.append((cr, r))
        if r is True:
            if granted_by is None:
                granted_by = cr
            bound = _bound(cr, now) if cr.timed else None
            if bound is None:
                unbounded = True
            elif expires is None or bound > expires:
                expires = bound
            continue
        if isinstance(r, Unknown):
            if alternatives is None:
                alternatives = []
            alternatives.append((r, cr))
        elif r is not False:
            errors.append((cr, r))
    if granted_by is not None and not forbid_missing:
        return ScopeResult(
            rid,
            scope,
            GRANTED,
            granted_by,
            (),
            _NONE_MISSING,
            None if unbounded else expires,
            errors,
            owner,
            3,
            STEPS[3],
        )
    # 4: asks
    asked_by: CRule | None = None
    for cr in asks:
        if cr.until is not None and now > cr.until:
            if seen is not None:
                seen.append((cr, EXPIRED))
            continue
        r = True if cr.cond is None else cr.cond(ctx)
        if seen is not None:
            seen.append((cr, r))
        if r is True:
            if asked_by is None:
                asked_by = cr
        elif isinstance(r, Unknown):
            if alternatives is None:
                alternatives = []
            alternatives.append((r, cr))
        elif r is not False:
            errors.append((cr, r))
    if forbid_missing:
        # step 2: the forbid's claims first; with no permit or ask already true,
        # also those of the cheapest alternative (step 5)
        missing = set(forbid_missing)
        rules = list(forbid_rules or ())
        because = STEPS[2]
        if granted_by is None and asked_by is None and alternatives:
            names, cr = cheapest(alternatives)
            missing |= names
            rules.append(cr)
            because = _FORBID_AND_CHEAPEST
        return ScopeResult(rid, scope, NEED, None, tuple(rules), frozenset(missing), None, errors, owner, 2, because)
    if asked_by is not None:
        if approval == "approved":
            bound = _bound(asked_by, now)
            return ScopeResult(rid, scope, GRANTED, asked_by, (), _NONE_MISSING, bound, errors, owner, 4, _APPROVED)
        if approval == "denied":
            return ScopeResult(rid, scope, DENIED, asked_by, (), _NONE_MISSING, None, errors, owner, 4, _REFUSED)
        return ScopeResult(rid, scope, SUBMITTED, asked_by, (), _NONE_MISSING, None, errors, owner, 4, _WAITING)
    # 5: unknown permits and asks
    if alternatives:
        names, cr = cheapest(alternatives)
        return ScopeResult(rid, scope, NEED, None, (cr,), frozenset(names), None, errors, owner, 5, STEPS[5])
    # 6: default deny
    because = STEPS[6] if forbids or permits or asks else _NO_CANDIDATES
    return ScopeResult(rid, scope, DENIED, None, (), _NONE_MISSING, None, errors, owner, 6, because)


def cheapest(alternatives: list[tuple[frozenset[str], CRule]]) -> tuple[frozenset[str], CRule]:
    """Data minimisation: the alternative lacking the fewest claims (ties: the
    permit before the ask, then the order of the plan: see ``policy_lang/README.md``,
    "Which rule answers")."""
    return min(alternatives, key=lambda alt: len(alt[0]))


def expired(cr: CRule, now: datetime) -> bool:
    """An ``until`` rule stops applying after its timestamp (:func:`decide_scope`
    tests the same inline)."""
    return cr.until is not None and now > cr.until


def _bound(cr: CRule, now: datetime) -> datetime | None:
    e = cr.rule.expiry
    if e is None:
        return None
    if e.kind == "for" and e.duration is not None:
        try:
            return now + e.duration
        except OverflowError:  # past the last representable instant: bounded by that instant
            return _LAST_INSTANT
    return e.until


_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


# ------------------------------------------------------------------ the whole request


def iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def assemble(results: list[ScopeResult], declared_for: Callable[[str | None], dict[str, tuple[str, str]]]) -> Decision:
    """Scope results → the request-level decision (section 3, 'From scope results
    to the UMA answer') and its JSON members."""
    if len(results) == 1:
        res = results[0]
        if res.outcome != NEED and not res.errors:
            # one scope of one resource, the usual request: its answer without the
            # bookkeeping of several results (written out here, not a call to a helper of
            # its own: 2.5 % fewer instructions per decision, 39,009 → 38,020 mixed at 100
            # rules, bench/policy_instructions.py)
            rid, scope, rule = res.resource_id, res.scope, res.rule
            reasons = [
                {
                    "resource_id": rid,
                    "scope": scope,
                    "effect": rule.effect if rule is not None else "deny",
                    "rule": rule.ref if rule is not None else None,
                }
            ]
            if res.outcome == GRANTED:
                exp = res.expires_at
                grant = {"resource_id": rid, "scopes": [scope], "expires_at": iso(exp) if exp is not None else None}
                return Decision("permit", [grant], [], [], [], reasons, [], results)
            if res.outcome == SUBMITTED:
                return Decision(
                    "request_submitted", [], [], [{"resource_id": rid, "scopes": [scope]}], [], reasons, [], results
                )
            return Decision("deny", [], [{"resource_id": rid, "scopes": [scope]}], [], [], reasons, [], results)
    granted: dict[str, list[str]] = {}
    denied: dict[str, list[str]] = {}
    submitted: dict[str, list[str]] = {}
    expiry: dict[str, datetime | None] = {}
    missing_by_owner: dict[str, set[str]] = {}
    reasons = []
    errors = []
    n_granted = n_need = n_sub = 0
    for res in results:
        o = res.outcome
        if o == GRANTED:
            n_granted += 1
            granted.setdefault(res.resource_id, []).append(res.scope)
            # a resource's permission lasts as long as its shortest-lived granted scope
            if res.resource_id not in expiry:
                expiry[res.resource_id] = res.expires_at
            else:
                cur = expiry[res.resource_id]
                if res.expires_at is not None and (cur is None or res.expires_at < cur):
                    expiry[res.resource_id] = res.expires_at
        elif o == DENIED:
            denied.setdefault(res.resource_id, []).append(res.scope)
        elif o == SUBMITTED:
            n_sub += 1
            submitted.setdefault(res.resource_id, []).append(res.scope)
        else:
            n_need += 1
            # the resource owner's view of the claims declarations (global + own), even
            # when a global rule is the one that needs the claim
            owner_key = res.owner if res.owner is not None else (res.rules[0].owner if res.rules else None)
            missing_by_owner.setdefault(owner_key or "", set()).update(res.missing)
        reasons.extend(_reasons(res))
        for cr, err in res.errors:
            errors.append({"resource_id": res.resource_id, "scope": res.scope, "rule": cr.ref, "message": err.message})
    total = len(results)
    if total and n_granted == total:
        decision = "permit"
    elif n_need:
        decision = "need_info"
    elif n_sub:
        decision = "request_submitted"
    elif n_granted:
        decision = "partial"
    else:
        decision = "deny"
    required = []
    if n_need:
        seen = set()
        for owner_key, names in missing_by_owner.items():
            decl = declared_for(owner_key)
            for name in sorted(names):
                if name in seen:
                    continue
                seen.add(name)
                member: dict[str, Any] = {"name": name, "friendly_name": name}
                d = decl.get(name)
                if d is not None:
                    member["claim_token_format"] = [format_uri(d[1])]
                    member["issuer"] = [d[0]]
                required.append(member)
    return Decision(
        decision,
        [{"resource_id": rid, "scopes": scopes, "expires_at": iso(expiry.get(rid))} for rid, scopes in granted.items()],
        [{"resource_id": rid, "scopes": scopes} for rid, scopes in denied.items()],
        [{"resource_id": rid, "scopes": scopes} for rid, scopes in submitted.items()],
        required,
        reasons,
        errors,
        results,
    )


def _reasons(res: ScopeResult) -> list[dict[str, Any]]:
    """The rules that decided one scope (for need_info: those whose claims are asked for)."""
    if res.outcome == NEED:
        return [
            {
                "resource_id": res.resource_id,
                "scope": res.scope,
                "effect": cr.effect,
                "rule": cr.ref,
                "missing": sorted(res.missing),
            }
            for cr in res.rules
        ]
    return [
        {
            "resource_id": res.resource_id,
            "scope": res.scope,
            "effect": res.rule.effect if res.rule else "deny",
            "rule": res.rule.ref if res.rule else None,
        }
    ]
