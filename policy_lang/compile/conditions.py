"""Conditions → Python closures over a small :class:`Ctx`.

A compiled condition returns True, False, an :class:`~policy_lang.values.Unknown`
(the claims it lacks) or an :class:`~policy_lang.values.Err` (a run-time type
mismatch), as section 3 of the language page says.

Two walks over the AST, both :class:`~policy_lang.syntax.visitor.Visitor`\\ s:
:class:`Conditions` (a condition → a truth value) and :class:`Operands` (an
operand → a value). The comparisons policies use most (a claim or an attribute
against a constant) each get a closure of their own (:func:`simple_test`), and
identical ones share it: a :class:`Tests` table, one per build of a policy set,
holds each such test once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import values as V
from ..syntax import ast as A
from ..syntax.visitor import Visitor
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
#: a simple test (:func:`simple_test`) → its closure. Shared by the compilers of one
#: build: at 10,000 rules of the benchmark's model, 20,425 comparisons are 2,418
#: distinct tests, and the closures (with their cells) not made a second time are
#: 152,000 fewer objects (of 479,000) for the cyclic garbage collector to traverse
#: while a large set loads.
Tests = dict[tuple[Any, ...], Fn]


# ------------------------------------------------------------------ operands


class Operands(Visitor[Fn]):
    """An operand → fn(ctx) returning a value, ABSENT or Missing."""

    def __init__(self, conditions: Conditions) -> None:
        self.conditions = conditions

    def visit_Literal(self, node: A.Literal) -> Fn:
        value = literal_value(node)
        return lambda ctx: value

    def visit_GroupRef(self, node: A.GroupRef) -> Fn:
        value = self.conditions.groups.get(node.name, ())
        return lambda ctx: value

    def visit_ClaimRef(self, node: A.ClaimRef) -> Fn:
        name = node.name
        path = node.path
        if node.quoted or len(path) == 1:
            missing = Missing(frozenset((name,)))

            def claim(ctx: Ctx) -> Any:
                v = ctx.claims.get(name, missing)
                return missing if v is None else v

            return claim
        head, rest = path[0], path[1:]
        missing_head = Missing(frozenset((head,)))

        def nested(ctx: Ctx) -> Any:
            v = ctx.claims.get(head)
            if v is None:
                return missing_head
            for part in rest:
                if not isinstance(v, dict) or part not in v:
                    return missing_head
                v = v[part]
            return missing_head if v is None else v

        return nested

    def visit_AttrRef(self, node: A.AttrRef) -> Fn:
        name = node.name
        if node.entity == "client":
            return lambda ctx: _absent_if_none(ctx.client.get(name, ABSENT))
        return lambda ctx: _absent_if_none(ctx.resource.get(name, ABSENT))

    def visit_NowRef(self, node: A.NowRef) -> Fn:
        return lambda ctx: ctx.now

    def generic_visit(self, node: Any) -> Fn:
        """A parenthesised condition used as an operand: its truth value."""
        cond = self.conditions.visit(node)

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


class Conditions(Visitor[Fn]):
    """A condition → fn(ctx) returning True, False, Unknown or Err, for the
    conditions of one file (``groups``: its groups' values). ``tests``: the
    table of simple tests shared by one build (a new one if not given)."""

    def __init__(self, groups: Groups, tests: Tests | None = None) -> None:
        self.groups = groups
        self.tests: Tests = {} if tests is None else tests
        self.operands = Operands(self)

    def visit_Compare(self, node: A.Compare) -> Fn:
        # the simple tests' own closures: with the general comparison for every test, the
        # three-clause rule executes 72 % more instructions per decision (38,656 → 66,409,
        # bench/policy_instructions.py, 3 December 2026)
        test = simple_test(node, self.groups)
        if test is None:
            return _general_compare(node, self.operands)
        fn = self.tests.get(test)
        if fn is None:
            fn = self.tests[test] = _test_closure(test, node, self.operands)
        return fn

    def visit_And(self, node: A.And) -> Fn:
        return _and(tuple([self.visit(x) for x in node.items]))

    def visit_Or(self, node: A.Or) -> Fn:
        return _or(tuple([self.visit(x) for x in node.items]))

    def visit_Not(self, node: A.Not) -> Fn:
        inner = self.visit(node.item)
        return lambda ctx: V.k_not(inner(ctx))

    def visit_Has(self, node: A.Has) -> Fn:
        get = self.operands.visit(node.ref)
        if isinstance(node.ref, A.ClaimRef):

            def has_claim(ctx: Ctx) -> Any:
                v = get(ctx)
                return Unknown(v.names) if isinstance(v, Missing) else True

            return has_claim
        return lambda ctx: get(ctx) is not ABSENT

    def visit_Truthy(self, node: A.Truthy) -> Fn:
        return self.generic_visit(node.operand)

    def generic_visit(self, node: Any) -> Fn:
        """A bare operand used as a condition: it must be a boolean."""
        get = self.operands.visit(node)

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


def compile_cond(node: Expr, groups: Groups) -> Fn:
    """A condition → fn(ctx) returning True, False, Unknown or Err."""
    return Conditions(groups).visit(node)


def compile_operand(node: Expr, groups: Groups) -> Fn:
    """An operand → fn(ctx) returning a value, ABSENT or Missing."""
    return Conditions(groups).operands.visit(node)


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


# ------------------------------------------------------------------ simple tests

# a claim (a string) tested against a string: the test on two strings (values.py)
_STRING_TESTS = {"starts with": str.startswith, "ends with": str.endswith, "contains": str.__contains__}


def simple_test(node: A.Compare, groups: Groups) -> tuple[Any, ...] | None:
    """The comparisons policies use most, each tested by one closure without
    operand closures, as what they test (equal tuples: the same test):

    * ``("claim_eq", name, const)``: a claim == a string or bool
    * ``("claim_in", name, members)``: a claim in a list of strings (a tuple)
    * ``("claim_str", op, name, const)``: a claim starts with, ends with or
      contains a string
    * ``("attr_eq", "client" | "resource", attribute, const)``: an attribute == a string
    * ``("attr_in", "client" | "resource", attribute, members)``: an attribute in
      a list of strings

    None for any other comparison.
    """
    op, left, right = node.op, node.left, node.right
    if isinstance(left, A.ClaimRef) and (left.quoted or len(left.path) == 1):
        name = left.name
        if op == "==" and isinstance(right, A.Literal) and right.kind in ("string", "bool"):
            return ("claim_eq", name, right.value)
        if op == "in":
            members = _strings(right, groups)
            if members is not None:
                return ("claim_in", name, members)
        if op in _STRING_TESTS and isinstance(right, A.Literal) and right.kind == "string":
            return ("claim_str", op, name, right.value)
    if isinstance(left, A.AttrRef):
        entity = "client" if left.entity == "client" else "resource"
        if op == "==" and isinstance(right, A.Literal) and right.kind == "string":
            return ("attr_eq", entity, left.name, right.value)
        if op == "in":
            members = _strings(right, groups)
            if members is not None:
                return ("attr_in", entity, left.name, members)
    return None


def _strings(node: Expr, groups: Groups) -> tuple[str, ...] | None:
    """The values of a group or list literal, if it is a non-empty list of strings."""
    if isinstance(node, A.GroupRef):
        values = groups.get(node.name, ())
    elif isinstance(node, A.Literal):
        values = literal_value(node)
    else:
        return None
    if isinstance(values, tuple) and values and all(x.__class__ is str for x in values):
        return values
    return None


def _test_closure(test: tuple[Any, ...], node: A.Compare, operands: Operands) -> Fn:
    """The closure of a simple test (:func:`simple_test`). ``node`` is one comparison
    that makes this test; the general comparison, for values the closure does not
    cover (a claim or attribute that is not a string), is made from it."""
    kind = test[0]
    if kind == "claim_eq":
        _, name, const = test
        cls = const.__class__
        missing = Unknown((name,))

        def claim_eq(ctx: Ctx) -> Any:
            v = ctx.claims.get(name)
            if v is None:
                return missing
            if v.__class__ is cls:
                return v == const
            return V.eq(v, const)

        return claim_eq
    if kind == "claim_in":
        _, name, values = test
        members = frozenset(values)
        missing = Unknown((name,))

        def claim_in(ctx: Ctx) -> Any:
            v = ctx.claims.get(name)
            if v is None:
                return missing
            if v.__class__ is str:
                return v in members
            return V.member(v, values)

        return claim_in
    general = _general_later(node, operands)
    if kind == "claim_str":
        _, op, name, const = test
        string_test = _STRING_TESTS[op]
        missing = Unknown((name,))

        def claim_str(ctx: Ctx) -> Any:
            v = ctx.claims.get(name)
            if v is None:
                return missing
            if v.__class__ is str:
                return string_test(v, const)
            return general(ctx)

        return claim_str
    if kind == "attr_eq":
        _, entity, attr, const = test
        if entity == "client":
            return lambda ctx: ctx.client.get(attr) == const
        return lambda ctx: ctx.resource.get(attr) == const
    _, entity, attr, values = test
    members = frozenset(values)
    if entity == "client":

        def client_in(ctx: Ctx) -> Any:
            v = ctx.client.get(attr)
            return v in members if v.__class__ is str else general(ctx)

        return client_in

    def resource_in(ctx: Ctx) -> Any:
        v = ctx.resource.get(attr)
        return v in members if v.__class__ is str else general(ctx)

    return resource_in


def _general_later(node: A.Compare, operands: Operands) -> Fn:
    """``_general_compare(node, operands)``, made the first time a value needs it (a
    claim or attribute that is not a string): most rules never do, and making it
    for every rule was a twentieth of loading a large policy set."""
    made: list[Fn] = []

    def general(ctx: Ctx) -> Any:
        if not made:
            made.append(_general_compare(node, operands))  # (two threads may both make it: alike)
        return made[0](ctx)

    return general


def _general_compare(node: A.Compare, operands: Operands) -> Fn:
    """Any comparison: operands evaluated, missing claims and errors carried, then the operator."""
    op = node.op
    left = operands.visit(node.left)
    right = operands.visit(node.right)
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


def rule_condition(rule: A.Rule, groups: Groups, tests: Tests | None = None) -> Fn | None:
    """``when A unless B`` → ``A and not B`` (Kleene). ``tests``: the build's table
    of simple tests (:data:`Tests`)."""
    conditions = Conditions(groups, tests)
    when = conditions.visit(rule.when) if rule.when is not None else None
    unless = conditions.visit(rule.unless) if rule.unless is not None else None
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
