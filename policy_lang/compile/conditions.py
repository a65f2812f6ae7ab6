"""Conditions → Python closures over a small :class:`Ctx`.

A compiled condition returns True, False, an :class:`~policy_lang.values.Unknown`
(the claims it lacks) or an :class:`~policy_lang.values.Err` (a run-time type
mismatch), as section 3 of the language page says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import values as V
from ..syntax import ast as A
from ..values import ABSENT, OPS, Err, Missing, Unknown, apply_op, literal_value


class Ctx:
    """What a condition reads: verified claims, client, resource, now."""

    __slots__ = ("claims", "client", "resource", "now")

    def __init__(self, claims: dict[str, Any], client: dict[str, Any], resource: dict[str, Any], now: datetime):
        self.claims = claims
        self.client = client
        self.resource = resource
        self.now = now


Fn = Callable[[Ctx], Any]
Groups = dict[str, Any]  # a file's groups: name → members (a tuple of values)
Expr = Any  # an AST expression node (syntax.ast)


# ------------------------------------------------------------------ operands


def compile_operand(node: Expr, groups: Groups) -> Fn:
    """An operand → fn(ctx) returning a value, ABSENT or Missing."""
    if isinstance(node, A.Literal):
        value = literal_value(node)
        return lambda ctx: value
    if isinstance(node, A.GroupRef):
        value = groups.get(node.name, ())
        return lambda ctx: value
    if isinstance(node, A.ClaimRef):
        name = node.name
        missing = Missing(frozenset((name,)))
        path = node.path
        if node.quoted or len(path) == 1:

            def claim(ctx: Ctx, name: str = name, missing: Missing = missing) -> Any:
                v = ctx.claims.get(name, missing)
                return missing if v is None else v

            return claim
        head, rest = path[0], path[1:]

        def nested(
            ctx: Ctx, head: str = head, rest: tuple[str, ...] = rest, missing: Missing = Missing(frozenset((head,)))
        ) -> Any:
            v = ctx.claims.get(head)
            if v is None:
                return missing
            for part in rest:
                if not isinstance(v, dict) or part not in v:
                    return missing
                v = v[part]
            return missing if v is None else v

        return nested
    if isinstance(node, A.AttrRef):
        name = node.name
        if node.entity == "client":
            return lambda ctx: _absent_if_none(ctx.client.get(name, ABSENT))
        return lambda ctx: _absent_if_none(ctx.resource.get(name, ABSENT))
    if isinstance(node, A.NowRef):
        return lambda ctx: ctx.now
    # a parenthesised condition used as an operand: its truth value
    cond = compile_cond(node, groups)

    def sub(ctx: Ctx) -> Any:
        r = cond(ctx)
        if r is True or r is False:
            return r
        if isinstance(r, Unknown):
            return Missing(frozenset(r))
        return r  # Err

    return sub


def _absent_if_none(v: Any) -> Any:
    return ABSENT if v is None else v


# ------------------------------------------------------------------ conditions


def compile_cond(node: Expr, groups: Groups) -> Fn:
    """A condition → fn(ctx) returning True, False, Unknown or Err."""
    t = type(node)  # (the AST classes have no subclasses)
    if t is A.Compare:
        return _compile_compare(node, groups)
    if t is A.And:
        return _and(tuple([compile_cond(x, groups) for x in node.items]))
    if t is A.Or:
        return _or(tuple([compile_cond(x, groups) for x in node.items]))
    if t is A.Not:
        inner = compile_cond(node.item, groups)
        return lambda ctx: V.k_not(inner(ctx))
    if t is A.Has:
        ref = node.ref
        if isinstance(ref, A.ClaimRef):
            get = compile_operand(ref, groups)

            def has_claim(ctx: Ctx) -> Any:
                v = get(ctx)
                return Unknown(v.names) if isinstance(v, Missing) else True

            return has_claim
        get = compile_operand(ref, groups)
        return lambda ctx: get(ctx) is not ABSENT
    # a bare operand used as a condition: it must be a boolean
    get = compile_operand(node, groups)

    def truthy(ctx: Ctx) -> Any:
        v = get(ctx)
        if v is True or v is False:
            return v
        if isinstance(v, Missing):
            return Unknown(v.names)
        if v is ABSENT:
            return False
        if isinstance(v, Err):
            return v
        return Err(f"a condition must be true or false, not a {V.kind_of(v)}")

    return truthy


def _and(parts: tuple[Fn, ...]) -> Fn:
    if len(parts) == 2:
        f, g = parts

        def and2(ctx: Ctx) -> Any:
            a = f(ctx)
            if a is False:
                return False
            b = g(ctx)
            if a is True:
                return b
            if b is True:
                return a
            return V.k_and((a, b))

        return and2
    if len(parts) == 3:
        f, g, h = parts

        def and3(ctx: Ctx) -> Any:
            a = f(ctx)
            if a is False:
                return False
            b = g(ctx)
            if b is False:
                return False
            c = h(ctx)
            if a is True and b is True:
                return c
            return V.k_and((a, b, c))

        return and3

    def and_n(ctx: Ctx) -> Any:
        results = []
        for p in parts:
            r = p(ctx)
            if r is False:
                return False
            results.append(r)
        return V.k_and(results)

    return and_n


# a claim (a string) tested against a string: the test on two strings (values.py)
_STRING_TESTS = {"starts with": str.startswith, "ends with": str.endswith, "contains": str.__contains__}


def _or(parts: tuple[Fn, ...]) -> Fn:
    def or_n(ctx: Ctx) -> Any:
        results = []
        for p in parts:
            r = p(ctx)
            if r is True:
                return True
            results.append(r)
        return V.k_or(results)

    return or_n


def _simple_test(node: A.Compare, groups: Groups) -> tuple[Any, ...] | None:
    """The comparisons policies use most, tested by one closure without operand
    closures: (kind, variant, constants…)

    * ``("claim_eq", None, name, const, const's class, Unknown)``: a claim == a string or bool
    * ``("claim_in", None, name, frozenset, tuple, Unknown)``: a claim in a list of strings
    * ``("claim_str", op, name, const, Unknown, general)``: a claim starts with, ends
      with or contains a string
    * ``("attr_eq", "client" | "resource", attribute, const)``: an attribute == a string
    * ``("attr_in", "client" | "resource", attribute, frozenset, general)``: an
      attribute in a list of strings

    ``general``: the comparison's general closure, for values the shortcut does not
    cover (a claim or attribute that is not a string).
    """
    op = node.op
    if (
        isinstance(node.left, A.ClaimRef)
        and len(node.left.path) == 1
        or (isinstance(node.left, A.ClaimRef) and node.left.quoted)
    ):
        name = node.left.name
        missing = Unknown((name,))
        if op == "==" and isinstance(node.right, A.Literal) and node.right.kind in ("string", "bool"):
            const = literal_value(node.right)
            return ("claim_eq", None, name, const, const.__class__, missing)
        if op == "in" and isinstance(node.right, (A.GroupRef, A.Literal)):
            const = (
                groups.get(node.right.name, ()) if isinstance(node.right, A.GroupRef) else (literal_value(node.right))
            )
            if isinstance(const, tuple) and const and all(x.__class__ is str for x in const):
                return ("claim_in", None, name, frozenset(const), const, missing)
        if op in _STRING_TESTS and isinstance(node.right, A.Literal) and node.right.kind == "string":
            return ("claim_str", op, name, node.right.value, missing, _general_later(node, groups))
    if isinstance(node.left, A.AttrRef):
        entity = "client" if node.left.entity == "client" else "resource"
        if op == "==" and isinstance(node.right, A.Literal) and node.right.kind == "string":
            return ("attr_eq", entity, node.left.name, node.right.value)
        if op == "in" and isinstance(node.right, (A.GroupRef, A.Literal)):
            const = (
                groups.get(node.right.name, ()) if isinstance(node.right, A.GroupRef) else (literal_value(node.right))
            )
            if isinstance(const, tuple) and const and all(x.__class__ is str for x in const):
                return ("attr_in", entity, node.left.name, frozenset(const), _general_later(node, groups))
    return None


def _compile_compare(node: A.Compare, groups: Groups) -> Fn:
    # the simple tests' own closures: with the general comparison for every test, the
    # three-clause rule executes 72 % more instructions per decision (38,656 → 66,409,
    # bench/policy_instructions.py, 3 December 2026)
    simple = _simple_test(node, groups)
    if simple is None:
        return _general_compare(node, groups)
    return _test_closure(simple, node, groups)


def _test_closure(simple: tuple[Any, ...], node: A.Compare, groups: Groups) -> Fn:
    """The closure of a simple test (``_simple_test(node, groups)``)."""
    kind, variant = simple[0], simple[1]
    if kind == "claim_eq":
        _, _, name, const, cls, missing = simple

        def claim_eq(ctx: Ctx) -> Any:
            v = ctx.claims.get(name)
            if v is None:
                return missing
            if v.__class__ is cls:
                return v == const
            return V.eq(v, const)

        return claim_eq
    if kind == "claim_in":
        _, _, name, members, const, missing = simple

        def claim_in(ctx: Ctx) -> Any:
            v = ctx.claims.get(name)
            if v is None:
                return missing
            if v.__class__ is str:
                return v in members
            return V.member(v, const)

        return claim_in
    if kind == "claim_str":
        _, op, name, const, missing, general = simple
        test = _STRING_TESTS[op]

        def claim_str(ctx: Ctx) -> Any:
            v = ctx.claims.get(name)
            if v is None:
                return missing
            if v.__class__ is str:
                return test(v, const)
            return general(ctx)

        return claim_str
    if kind == "attr_eq":
        _, _, attr, const = simple
        if variant == "client":
            return lambda ctx: ctx.client.get(attr) == const
        return lambda ctx: ctx.resource.get(attr) == const
    _, _, attr, members, general = simple
    if variant == "client":

        def client_in(ctx: Ctx) -> Any:
            v = ctx.client.get(attr)
            return v in members if v.__class__ is str else general(ctx)

        return client_in

    def resource_in(ctx: Ctx) -> Any:
        v = ctx.resource.get(attr)
        return v in members if v.__class__ is str else general(ctx)

    return resource_in


def _general_later(node: A.Compare, groups: Groups) -> Fn:
    """``_general_compare(node, groups)``, made the first time a value needs it (a
    claim or attribute that is not a string): most rules never do, and making it
    for every rule was a twentieth of loading a large policy set."""
    made: list[Fn] = []

    def general(ctx: Ctx) -> Any:
        if not made:
            made.append(_general_compare(node, groups))  # (two threads may both make it: alike)
        return made[0](ctx)

    return general


def _general_compare(node: A.Compare, groups: Groups) -> Fn:
    """Any comparison: operands evaluated, missing claims and errors carried, then the operator."""
    op = node.op
    left = compile_operand(node.left, groups)
    right = compile_operand(node.right, groups)
    fn = OPS[op]

    def compare(ctx: Ctx) -> Any:
        a = left(ctx)
        b = right(ctx)
        if a.__class__ is Missing or b.__class__ is Missing or a.__class__ is Err or b.__class__ is Err:
            return apply_op(op, a, b)
        try:
            return fn(a, b)
        except RecursionError:  # two request values nested deeper than the stack: fail closed
            return Err("values nested too deeply to compare")

    return compare


# ------------------------------------------------------------------ rules


def rule_condition(rule: A.Rule, groups: Groups) -> Fn | None:
    """``when A unless B`` → ``A and not B`` (Kleene)."""
    when = compile_cond(rule.when, groups) if rule.when is not None else None
    unless = compile_cond(rule.unless, groups) if rule.unless is not None else None
    if when is None and unless is None:
        return None
    if unless is None:
        return when
    if when is None:

        def unless_only(ctx: Ctx) -> Any:
            r = unless(ctx)
            if r is True or r is False:
                return not r
            return r  # Unknown and Err stay what they are (k_not)

        return unless_only

    def both(ctx: Ctx) -> Any:
        a = when(ctx)
        if a is False:
            return False
        b = unless(ctx)
        # the two-valued outcomes of k_and((a, k_not(b))) without building the tuple
        if b is True:
            return False
        if b is False and a is True:
            return True
        return V.k_and((a, V.k_not(b)))

    return both
