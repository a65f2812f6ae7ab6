"""One visitor base class serves every walk over the AST (issue 9, point 3).

``policy_lang/syntax/visitor.py`` holds what is under each node (``children``,
``parts``), the walks without recursion (``walk``, ``descendants``) and the
``Visitor`` base class. These tests hold the three promises the package makes
about them:

* every node class of ``syntax/ast.py`` is known to the base: ``Visitor``
  dispatches to ``visit_<Class>`` for each of them, and ``parts`` gives what is
  under each of them, checked against the dataclass fields of the node itself, so
  a field added to a node without teaching the walks fails here;
* a walk visits every node of a parsed file, once each, in reading order;
* no module of the package walks the AST by its own recursion: a function that
  calls itself is either a ``Visitor`` method or on the short list below, each
  entry with the reason it is not a walk over expressions.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest

import policy_lang
from policy_lang.syntax import ast as A
from policy_lang.syntax.reader import parse_or_raise
from policy_lang.syntax.visitor import _NODE_CLASSES, Visitor, children, descendants, parts, walk

PACKAGE = Path(policy_lang.__file__).parent
POLICIES = PACKAGE.parent / "policies"

# Every kind of node at least once: each declaration, each target kind, every
# expression node, nesting in both and/or orders, a list literal, an expiry.
EXAMPLE = """owner "alice"
group family = ["bob@example.com", "carol@example.com"]
claims email, email_verified from "https://idp.example.com" as id_token
type "photo-album" has scopes view, download
permit view, download on type "photo-album"
  when claims.email in family and claims.email_verified == true and client.id == "photo-app"
forbid any scope on name like "private/*" unless client.id in ["alice-phone", "alice-laptop"]
ask print on resource "r-1" when has claims.email or not (claims.role == "guest" and now < 2030-01-01)
permit view on type "document" name "cv" when claims["https://example.org/claims/role"] == "hr" for 30d
permit download on any resource when resource.name starts with "shared/" until 2031-06-01
permit view on type "photo-album" name like "trip-*" when claims.email_verified
"""


def _ast_node_classes() -> set[type]:
    """Every node class that ``syntax/ast.py`` defines: its dataclasses."""
    return {
        obj
        for obj in vars(A).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == A.__name__
    }


def _is_node(value: Any) -> bool:
    return type(value) in _ast_node_classes()


def _fields_below(node: Any) -> list[Any]:
    """The nodes held by ``node``'s dataclass fields, in field order (tuples and lists
    of nodes flattened): an independent statement of what is under a node. A file's
    ``groups``, ``claims``, ``rules`` and ``types`` are its ``items`` sorted by kind,
    so only ``items`` counts (the test below checks that they are)."""
    out: list[Any] = []
    for f in dataclasses.fields(node):
        if isinstance(node, A.PolicyFile) and f.name != "items":
            continue
        value = getattr(node, f.name)
        if _is_node(value):
            out.append(value)
        elif isinstance(value, (tuple, list)):
            out.extend(v for v in value if _is_node(v))
    return out


def _recursive_descendants(node: Any) -> list[Any]:
    """A reference walk, by recursion over dataclass fields (pre-order)."""
    out = [node]
    for below in _fields_below(node):
        out.extend(_recursive_descendants(below))
    return out


@pytest.fixture(scope="module")
def example() -> A.PolicyFile:
    return parse_or_raise(EXAMPLE, "alice.policy")


def _files(example: A.PolicyFile) -> list[A.PolicyFile]:
    shipped = [parse_or_raise(p.read_text(), p.name) for p in sorted(POLICIES.glob("*.policy"))]
    assert shipped, f"no shipped policies under {POLICIES}"
    return [example, *shipped]


# ------------------------------------------------------------------ the base knows every node


def test_the_visitor_base_dispatches_on_every_node_class_of_the_ast():
    """Visitor's dispatch table is built from ``_NODE_CLASSES``: it must name every
    node class of ``syntax/ast.py`` (a class left out would silently fall to
    ``generic_visit`` in every walk)."""
    assert set(_NODE_CLASSES) == _ast_node_classes()
    assert len(_NODE_CLASSES) == len(set(_NODE_CLASSES))

    class Names(Visitor[str]):
        pass

    for cls in _NODE_CLASSES:
        setattr(Names, f"visit_{cls.__name__}", lambda self, node, _n=cls.__name__: _n)

    class EveryName(Names):  # __init_subclass__ reads the methods when the class is made
        pass

    assert set(EveryName._methods) == set(_NODE_CLASSES)
    for cls in _NODE_CLASSES:
        assert EveryName._methods[cls](EveryName(), None) == cls.__name__


def test_a_node_class_without_a_method_goes_to_generic_visit_which_refuses_by_default():
    class OnlyCompare(Visitor[str]):
        def visit_Compare(self, node: A.Compare) -> str:
            return node.op

    class Counting(Visitor[str]):
        def generic_visit(self, node: Any) -> str:
            return "generic " + type(node).__name__

    span = ("f", 1, 1, 1, 2)
    cmp = A.Compare("==", A.NowRef(span), A.NowRef(span), span)
    assert OnlyCompare().visit(cmp) == "=="
    with pytest.raises(TypeError, match="OnlyCompare does not visit NowRef"):
        OnlyCompare().visit(cmp.left)
    assert Counting().visit(cmp) == "generic Compare"
    # a subclass's table is its own: the parent's methods are inherited, not shared mutably
    assert A.Compare not in Counting._methods
    assert OnlyCompare._methods[A.Compare] is OnlyCompare.visit_Compare


def _package_visitors() -> list[type]:
    """Every Visitor subclass defined in the package (its modules imported first)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("policy_lang", *path.relative_to(PACKAGE).with_suffix("").parts))
        if not module.endswith("__main__"):
            importlib.import_module(module.removesuffix(".__init__"))
    found, todo = [], list(Visitor.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("policy_lang."):
            found.append(cls)
    return found


def test_every_visit_method_of_the_package_names_a_node_class():
    """A ``visit_<Name>`` whose name is no node class would never be called (a typo, or
    a node renamed): every walk of the package, checker, formatter, compiler and
    analyses, names only node classes, and its methods are in its dispatch table."""
    visitors = _package_visitors()
    names = {c.__name__ for c in _NODE_CLASSES}
    modules = {v.__module__ for v in visitors}
    for expected in ("policy_lang.check.checker", "policy_lang.fmt", "policy_lang.compile.conditions"):
        assert expected in modules
    for v in visitors:
        methods = {m for m in dir(v) if m.startswith("visit_")}
        assert {m.removeprefix("visit_") for m in methods} <= names, v
        assert {c.__name__ for c in v._methods} == {m.removeprefix("visit_") for m in methods}, v


def test_parts_gives_what_every_node_holds(example):
    """``parts`` against each node's own dataclass fields, over every node of the
    example and the shipped policies: the generic traversal misses no field."""
    kinds: set[type] = set()
    for pf in _files(example):
        by_kind = [*pf.groups, *pf.claims, *pf.rules, *pf.types]
        assert sorted(map(id, by_kind)) == sorted(map(id, pf.items))
        for node in _recursive_descendants(pf):
            kinds.add(type(node))
            assert list(parts(node)) == _fields_below(node), f"{type(node).__name__} at {getattr(node, 'span', '')}"
    # the reader keeps a bare operand used as a condition as the operand itself: a
    # Truthy is only ever made by hand (the analyses accept one), so it is made here
    assert kinds == _ast_node_classes() - {A.Truthy}, f"not in the example: {_ast_node_classes() - kinds}"
    span = ("f", 1, 1, 1, 2)
    ref = A.ClaimRef("email_verified", ("email_verified",), False, span)
    truthy = A.Truthy(ref, span)
    assert parts(truthy) == (ref,) == tuple(_fields_below(truthy))
    assert list(walk(A.Not(truthy, span)))[1:] == [truthy, ref]


# ------------------------------------------------------------------ walks visit every node in order


def test_descendants_visits_every_node_once_in_reading_order(example):
    for pf in _files(example):
        seen = list(descendants(pf))
        assert seen == _recursive_descendants(pf)
        assert len({id(n) for n in seen}) == len(seen), "a node visited twice"
        starts = [n.span[1:3] for n in seen if not isinstance(n, A.PolicyFile)]
        assert starts == sorted(starts), "not in reading order"


def test_walk_visits_every_expression_of_each_condition_in_reading_order(example):
    """``walk`` over a condition: every expression node once, depth first and left to
    right, the items of a list literal not entered (a list is one value)."""
    conditions = [c for rule in example.rules for c in (rule.when, rule.unless) if c is not None]
    assert len(conditions) == 6
    for cond in conditions:
        expected = []
        stack = [cond]
        while stack:  # the reference: the dataclass fields, list literals not entered
            n = stack.pop()
            expected.append(n)
            if not isinstance(n, A.Literal):
                stack.extend(reversed(_fields_below(n)))
        got = list(walk(cond))
        assert got == expected
        starts = [n.span[1:3] for n in got]
        assert starts == sorted(starts)
    assert list(walk(None)) == []
    listed = next(n for n in walk(example.rules[1].unless) if isinstance(n, A.Literal))
    assert listed.kind == "list" and [x.value for x in children(listed)] == ["alice-phone", "alice-laptop"]


def test_a_visitor_visits_every_node_of_a_parsed_file_in_order(example):
    """A Visitor that names no class and recurses through ``parts`` in its
    ``generic_visit`` reaches every node, in the order of ``descendants``; one that
    names some classes reaches exactly those, in the same order."""

    class Everything(Visitor[None]):
        def __init__(self) -> None:
            self.seen: list[Any] = []

        def generic_visit(self, node: Any) -> None:
            self.seen.append(node)
            for below in parts(node):
                self.visit(below)

    class Conditions(Everything):
        def __init__(self) -> None:
            super().__init__()
            self.compares: list[A.Compare] = []

        def visit_Compare(self, node: A.Compare) -> None:
            self.compares.append(node)
            self.generic_visit(node)

    for pf in _files(example):
        v = Everything()
        v.visit(pf)
        assert v.seen == list(descendants(pf))
        c = Conditions()
        c.visit(pf)
        assert c.seen == v.seen
        assert c.compares == [n for n in v.seen if isinstance(n, A.Compare)]
    assert len(Conditions._methods) == 1


# ------------------------------------------------------------------ no walk of its own

#: Functions of the package that call themselves and are not walks over the AST's
#: expressions, each with why (module path, function name).
NOT_WALKS = {
    ("analysis/conditions.py", "_literal_text"): "renders a run-time value (a tuple of values), not nodes",
    ("analysis/explain.py", "_plain"): "turns a run-time value into JSON, not nodes",
    ("analysis/explain.py", "_tree"): "renders explain's JSON output, not nodes",
    ("analysis/requests.py", "_json_value"): "turns a run-time value into JSON, not nodes",
    ("fmt.py", "literal"): "a list literal's items are literals: a value, which walk() does not enter either",
    ("values.py", "eq"): "compares run-time values",
    ("values.py", "literal_value"): "a list literal's items are literals: a value, which walk() does not enter either",
}


def _self_calls(root: Path = PACKAGE) -> set[tuple[str, str]]:
    """(module, function) for every function of the package that calls itself by
    name, or a method that calls itself through ``self``/``cls`` in a class that
    is not a Visitor."""
    found: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        module = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(), str(path))
        scopes: list[tuple[ast.AST, ast.ClassDef | None]] = [(tree, None)]
        scopes += [(c, c) for c in ast.walk(tree) if isinstance(c, ast.ClassDef)]
        for scope, cls in scopes:
            if cls is not None and any("Visitor" in ast.unparse(b) for b in cls.bases):
                continue  # recursion through visit() is what a Visitor is for
            for fn in getattr(scope, "body", []):
                if not isinstance(fn, ast.FunctionDef):
                    continue
                for call in ast.walk(fn):
                    if not isinstance(call, ast.Call):
                        continue
                    f = call.func
                    if cls is None and isinstance(f, ast.Name) and f.id == fn.name:
                        found.add((module, fn.name))
                    elif (
                        cls is not None
                        and isinstance(f, ast.Attribute)
                        and f.attr == fn.name
                        and isinstance(f.value, ast.Name)
                        and f.value.id in ("self", "cls")
                    ):
                        found.add((module, f"{cls.name}.{fn.name}"))
    return found


def test_no_module_walks_the_ast_by_its_own_recursion():
    """Every recursive function of the package is a Visitor's or a known non-walk;
    an entry of the list that no longer recurses must leave the list."""
    found = _self_calls()
    assert found - set(NOT_WALKS) == set(), "walk the AST with a syntax.visitor.Visitor or walk()/descendants()"
    assert set(NOT_WALKS) - found == set(), "this function no longer calls itself: drop it from NOT_WALKS"


def test_the_scan_finds_an_ad_hoc_walk(tmp_path):
    """The scan itself can fail: recursive walks written as a function or as a method
    of a class that is not a Visitor are found; a Visitor's recursion is not."""
    (tmp_path / "walks.py").write_text(
        "def depth(node):\n"
        "    return 1 + max((depth(c) for c in node.items), default=0)\n"
        "class Count:\n"
        "    def count(self, node):\n"
        "        return 1 + sum(self.count(c) for c in node.items)\n"
        "class Fine(Visitor):\n"
        "    def visit_And(self, node):\n"
        "        return [self.visit_And(c) for c in node.items]\n"
    )
    assert _self_calls(tmp_path) == {("walks.py", "depth"), ("walks.py", "Count.count")}
