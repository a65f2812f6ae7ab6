"""Conditions → callables over a small :class:`Ctx`.

A compiled condition returns True, False, an :class:`~policy_lang.values.Unknown`
(the claims it lacks) or an :class:`~policy_lang.values.Err` (a run-time type
mismatch), as section 3 of the language page says; a compiled operand returns
a value, ABSENT or a :class:`~policy_lang.values.Missing`.

Two walks over the AST, both :class:`~policy_lang.syntax.visitor.Visitor`\\ s,
compile them: :class:`Conditions` (a condition → a truth value) and
:class:`Operands` (an operand → a value). Each compiled node is the bound
``test`` (or ``value``) method of a small object of one of the classes below,
which holds what the node reads: a callable of one argument, the context.

Why objects and not closures: a decision reads the compiled conditions of the
rules it weighs, and in a large policy set those are rarely in the CPU's caches.
A closure is a function object, a tuple of cells and a cell per constant; an
object here is its instance and the bound method. With closures, a decision at
10,000 rules over 1,000 owners took 7.3 % longer (7.47 against 6.96 µs mixed,
9.68 against 9.01 µs three-clause; the two engines in one process, their
decisions interleaved 50 at a time; alike at 1 and 100 rules).

The comparisons policies use most (a claim or an attribute against a constant)
each have a class of their own (:func:`simple_test`), and identical ones share
one object: a :data:`Tests` table, one per build of a policy set, holds each such
test once.
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
#: a simple test (:func:`simple_test`) → its compiled form. Shared by the compilers
#: of one build: at 10,000 rules of the benchmark's model, 20,425 comparisons are
#: 2,418 distinct tests, and the objects not made a second time are fewer for the
#: cyclic garbage collector to traverse while a large set loads (the set holds
#: 152,000 fewer objects of 479,000).
Tests = dict[tuple[Any, ...], Fn]


# ------------------------------------------------------------------ operands


class _Const:
    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def value(self, ctx: Ctx) -> Any:
        return self.v


class _Claim:
    """``claims.name`` or ``claims["name"]``."""

    __slots__ = ("name", "missing")

    def __init__(self, name: str) -> None:
        self.name = name
        self.missing = Missing(frozenset((name,)))

    def value(self, ctx: Ctx) -> Any:
        v = ctx.claims.get(self.name)
        return self.missing if v is None else v


class _NestedClaim:
    """``claims.a.b.c``: missing (as claim ``a``) unless every member is there."""

    __slots__ = ("head", "rest", "missing")

    def __init__(self, path: tuple[str, ...]) -> None:
        self.head, self.rest = path[0], path[1:]
        self.missing = Missing(frozenset((self.head,)))

    def value(self, ctx: Ctx) -> Any:
        v = ctx.claims.get(self.head)
        if v is None:
            return self.missing
        for part in self.rest:
            if not isinstance(v, dict) or part not in v:
                return self.missing
            v = v[part]
        return self.missing if v is None else v


class _ClientAttr:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def value(self, ctx: Ctx) -> Any:
        v = ctx.client.get(self.name)
        return ABSENT if v is None else v


class _ResourceAttr:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def value(self, ctx: Ctx) -> Any:
        v = ctx.resource.get(self.name)
        return ABSENT if v is None else v


def _now(ctx: Ctx) -> Any:
    return ctx.now


class _Sub:
    """A parenthesised condition used as an operand: its truth value."""

    __slots__ = ("cond",)

    def __init__(self, cond: Fn) -> None:
        self.cond = cond

    def value(self, ctx: Ctx) -> Any:
        r = self.cond(ctx)
        if r is True or r is False:
            return r
        if isinstance(r, Unknown):
            return Missing(frozenset(r))
        return r  # Err


class Operands(Visitor[Fn]):
    """An operand → fn(ctx) returning a value, ABSENT or Missing."""

    def __init__(self, conditions: Conditions) -> None:
        self.conditions = conditions

    def visit_Literal(self, node: A.Literal) -> Fn:
        return _Const(literal_value(node)).value

    def visit_GroupRef(self, node: A.GroupRef) -> Fn:
        return _Const(self.conditions.groups.get(node.name, ())).value

    def visit_ClaimRef(self, node: A.ClaimRef) -> Fn:
        if node.quoted or len(node.path) == 1:
            return _Claim(node.name).value
        return _NestedClaim(node.path).value

    def visit_AttrRef(self, node: A.AttrRef) -> Fn:
        if node.entity == "client":
            return _ClientAttr(node.name).value
        return _ResourceAttr(node.name).value

    def visit_NowRef(self, node: A.NowRef) -> Fn:
        return _now

    def generic_visit(self, node: Any) -> Fn:
        """A parenthesised condition used as an operand."""
        return _Sub(self.conditions.visit(node)).value


# ------------------------------------------------------------------ conditions


class _And2:
    __slots__ = ("f", "g")

    def __init__(self, f: Fn, g: Fn) -> None:
        self.f, self.g = f, g

    def test(self, ctx: Ctx) -> Any:
        a = self.f(ctx)
        if a is False:
            return False
        b = self.g(ctx)
        if a is True:
            return b
        if b is True:
            return a
        return V.k_and((a, b))


class _And3:
    __slots__ = ("f", "g", "h")

    def __init__(self, f: Fn, g: Fn, h: Fn) -> None:
        self.f, self.g, self.h = f, g, h

    def test(self, ctx: Ctx) -> Any:
        a = self.f(ctx)
        if a is False:
            return False
        b = self.g(ctx)
        if b is False:
            return False
        c = self.h(ctx)
        if a is True and b is True:
            return c
        return V.k_and((a, b, c))


class _AndN:
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Fn, ...]) -> None:
        self.parts = parts

    def test(self, ctx: Ctx) -> Any:
        results = []
        for p in self.parts:
            r = p(ctx)
            if r is False:
                return False
            results.append(r)
        return V.k_and(results)


class _Or:
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Fn, ...]) -> None:
        self.parts = parts

    def test(self, ctx: Ctx) -> Any:
        results = []
        for p in self.parts:
            r = p(ctx)
            if r is True:
                return True
            results.append(r)
        return V.k_or(results)


class _Not:
    __slots__ = ("inner",)

    def __init__(self, inner: Fn) -> None:
        self.inner = inner

    def test(self, ctx: Ctx) -> Any:
        return V.k_not(self.inner(ctx))


class _HasClaim:
    __slots__ = ("get",)

    def __init__(self, get: Fn) -> None:
        self.get = get

    def test(self, ctx: Ctx) -> Any:
        v = self.get(ctx)
        return Unknown(v.names) if isinstance(v, Missing) else True


class _HasAttr:
    __slots__ = ("get",)

    def __init__(self, get: Fn) -> None:
        self.get = get

    def test(self, ctx: Ctx) -> Any:
        return self.get(ctx) is not ABSENT


class _Truthy:
    """A bare operand used as a condition: it must be a boolean."""

    __slots__ = ("get",)

    def __init__(self, get: Fn) -> None:
        self.get = get

    def test(self, ctx: Ctx) -> Any:
        v = self.get(ctx)
        if v is True or v is False:
            return v
        if isinstance(v, Missing):
            return Unknown(v.names)
        if v is ABSENT:
            return False
        if isinstance(v, Err):
            return v
        return Err(f"a condition must be true or false, not a {V.kind_of(v)}")


class _Compare:
    """Any comparison: operands evaluated, missing claims and errors carried, then the operator."""

    __slots__ = ("op", "fn", "left", "right")

    def __init__(self, op: str, left: Fn, right: Fn) -> None:
        self.op, self.fn, self.left, self.right = op, OPS[op], left, right

    def test(self, ctx: Ctx) -> Any:
        a = self.left(ctx)
        b = self.right(ctx)
        if a.__class__ is Missing or b.__class__ is Missing or a.__class__ is Err or b.__class__ is Err:
            return apply_op(self.op, a, b)
        try:
            return self.fn(a, b)
        except RecursionError:  # two request values nested deeper than the stack: fail closed
            return Err("values nested too deeply to compare")


class Conditions(Visitor[Fn]):
    """A condition → fn(ctx) returning True, False, Unknown or Err, for the
    conditions of one file (``groups``: its groups' values). ``tests``: the
    table of simple tests shared by one build (a new one if not given)."""

    def __init__(self, groups: Groups, tests: Tests | None = None) -> None:
        self.groups = groups
        self.tests: Tests = {} if tests is None else tests
        self.operands = Operands(self)

    def visit_Compare(self, node: A.Compare) -> Fn:
        # the simple tests' own classes: with the general comparison for every test, the
        # three-clause rule executes 72 % more instructions per decision (38,656 → 66,409,
        # bench/policy_instructions.py, 3 December 2026)
        test = simple_test(node, self.groups)
        if test is None:
            return self.compare(node)
        fn = self.tests.get(test)
        if fn is None:
            fn = self.tests[test] = _simple(test, _LaterCompare(node, self.groups).test)
        return fn

    def compare(self, node: A.Compare) -> Fn:
        """The general comparison (any operator and operands)."""
        return _Compare(node.op, self.operands.visit(node.left), self.operands.visit(node.right)).test

    def visit_And(self, node: A.And) -> Fn:
        parts = tuple([self.visit(x) for x in node.items])
        if len(parts) == 2:
            return _And2(*parts).test
        if len(parts) == 3:
            return _And3(*parts).test
        return _AndN(parts).test

    def visit_Or(self, node: A.Or) -> Fn:
        return _Or(tuple([self.visit(x) for x in node.items])).test

    def visit_Not(self, node: A.Not) -> Fn:
        return _Not(self.visit(node.item)).test

    def visit_Has(self, node: A.Has) -> Fn:
        get = self.operands.visit(node.ref)
        if isinstance(node.ref, A.ClaimRef):
            return _HasClaim(get).test
        return _HasAttr(get).test

    def visit_Truthy(self, node: A.Truthy) -> Fn:
        return self.generic_visit(node.operand)

    def generic_visit(self, node: Any) -> Fn:
        """A bare operand used as a condition."""
        return _Truthy(self.operands.visit(node)).test


def compile_cond(node: Expr, groups: Groups) -> Fn:
    """A condition → fn(ctx) returning True, False, Unknown or Err."""
    return Conditions(groups).visit(node)


def compile_operand(node: Expr, groups: Groups) -> Fn:
    """An operand → fn(ctx) returning a value, ABSENT or Missing."""
    return Conditions(groups).operands.visit(node)


# ------------------------------------------------------------------ simple tests

# a claim (a string) tested against a string: the test on two strings (values.py)
_STRING_TESTS = {"starts with": str.startswith, "ends with": str.endswith, "contains": str.__contains__}


def simple_test(node: A.Compare, groups: Groups) -> tuple[Any, ...] | None:
    """The comparisons policies use most, each tested without operand callables,
    as what they test (equal tuples: the same test):

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


class _ClaimEq:
    __slots__ = ("name", "const", "cls", "missing")

    def __init__(self, name: str, const: Any) -> None:
        self.name, self.const, self.cls, self.missing = name, const, const.__class__, Unknown((name,))

    def test(self, ctx: Ctx) -> Any:
        v = ctx.claims.get(self.name)
        if v is None:
            return self.missing
        if v.__class__ is self.cls:
            return v == self.const
        return V.eq(v, self.const)


class _ClaimIn:
    __slots__ = ("name", "members", "values", "missing")

    def __init__(self, name: str, values: tuple[str, ...]) -> None:
        self.name, self.members, self.values, self.missing = name, frozenset(values), values, Unknown((name,))

    def test(self, ctx: Ctx) -> Any:
        v = ctx.claims.get(self.name)
        if v is None:
            return self.missing
        if v.__class__ is str:
            return v in self.members
        return V.member(v, self.values)


class _ClaimStr:
    """A claim starts with, ends with or contains a string (``general``: any other value)."""

    __slots__ = ("name", "string_test", "const", "missing", "general")

    def __init__(self, op: str, name: str, const: str, general: Fn) -> None:
        self.name, self.string_test, self.const = name, _STRING_TESTS[op], const
        self.missing, self.general = Unknown((name,)), general

    def test(self, ctx: Ctx) -> Any:
        v = ctx.claims.get(self.name)
        if v is None:
            return self.missing
        if v.__class__ is str:
            return self.string_test(v, self.const)
        return self.general(ctx)


class _ClientEq:
    __slots__ = ("attr", "const")

    def __init__(self, attr: str, const: str) -> None:
        self.attr, self.const = attr, const

    def test(self, ctx: Ctx) -> Any:
        return ctx.client.get(self.attr) == self.const


class _ResourceEq:
    __slots__ = ("attr", "const")

    def __init__(self, attr: str, const: str) -> None:
        self.attr, self.const = attr, const

    def test(self, ctx: Ctx) -> Any:
        return ctx.resource.get(self.attr) == self.const


class _ClientIn:
    """A client attribute in a list of strings (``general``: a value that is not a string)."""

    __slots__ = ("attr", "members", "general")

    def __init__(self, attr: str, values: tuple[str, ...], general: Fn) -> None:
        self.attr, self.members, self.general = attr, frozenset(values), general

    def test(self, ctx: Ctx) -> Any:
        v = ctx.client.get(self.attr)
        return v in self.members if v.__class__ is str else self.general(ctx)


class _ResourceIn:
    """A resource attribute in a list of strings (``general``: a value that is not a string)."""

    __slots__ = ("attr", "members", "general")

    def __init__(self, attr: str, values: tuple[str, ...], general: Fn) -> None:
        self.attr, self.members, self.general = attr, frozenset(values), general

    def test(self, ctx: Ctx) -> Any:
        v = ctx.resource.get(self.attr)
        return v in self.members if v.__class__ is str else self.general(ctx)


def _simple(test: tuple[Any, ...], general: Fn) -> Fn:
    """The compiled form of a simple test (:func:`simple_test`); ``general`` is the
    general comparison, for the values a test does not cover itself (a claim or an
    attribute that is not a string)."""
    kind = test[0]
    if kind == "claim_eq":
        return _ClaimEq(test[1], test[2]).test
    if kind == "claim_in":
        return _ClaimIn(test[1], test[2]).test
    if kind == "claim_str":
        return _ClaimStr(test[1], test[2], test[3], general).test
    _, entity, attr, const = test
    if kind == "attr_eq":
        return (_ClientEq if entity == "client" else _ResourceEq)(attr, const).test
    return (_ClientIn if entity == "client" else _ResourceIn)(attr, const, general).test


class _LaterCompare:
    """The general comparison of a node, compiled the first time a value needs it
    (a claim or attribute that is not a string): most rules never do, and making
    it for every rule was a twentieth of loading a large policy set."""

    __slots__ = ("node", "groups", "made")

    def __init__(self, node: A.Compare, groups: Groups) -> None:
        self.node, self.groups = node, groups
        self.made: Fn | None = None

    def test(self, ctx: Ctx) -> Any:
        if self.made is None:  # (two threads may both make it: alike)
            self.made = Conditions(self.groups).compare(self.node)
        return self.made(ctx)


# ------------------------------------------------------------------ rules


class _WhenUnless:
    """``when A unless B`` → ``A and not B`` (Kleene)."""

    __slots__ = ("when", "unless")

    def __init__(self, when: Fn, unless: Fn) -> None:
        self.when, self.unless = when, unless

    def test(self, ctx: Ctx) -> Any:
        a = self.when(ctx)
        if a is False:
            return False
        b = self.unless(ctx)
        # the two-valued outcomes of k_and((a, k_not(b))) without building the tuple
        if b is True:
            return False
        if b is False and a is True:
            return True
        return V.k_and((a, V.k_not(b)))


class _UnlessOnly:
    __slots__ = ("unless",)

    def __init__(self, unless: Fn) -> None:
        self.unless = unless

    def test(self, ctx: Ctx) -> Any:
        r = self.unless(ctx)
        if r is True or r is False:
            return not r
        return r  # Unknown and Err stay what they are (k_not)


def rule_condition(rule: A.Rule, groups: Groups, tests: Tests | None = None) -> Fn | None:
    """``when A unless B`` → ``A and not B`` (Kleene); None for a rule without
    conditions. ``tests``: the build's table of simple tests (:data:`Tests`)."""
    conditions = Conditions(groups, tests)
    when = conditions.visit(rule.when) if rule.when is not None else None
    unless = conditions.visit(rule.unless) if rule.unless is not None else None
    if unless is None:
        return when
    if when is None:
        return _UnlessOnly(unless).test
    return _WhenUnless(when, unless).test
