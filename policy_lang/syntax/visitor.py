"""Walking the AST: every walk over expressions in the package goes through here.

:func:`children` says what is under a node, :func:`walk` visits every node of an
expression without recursion, and :class:`Visitor` is the base class of a walk
that does something different per kind of node (the checker's, the
formatter's): ``visit(node)`` calls the method named after the node's class
(``visit_Compare``, ``visit_And`` …), or ``generic_visit`` for a class it does
not name. A visitor may recurse: the reader refuses expressions nested deeper
than :data:`policy_lang.syntax.reader.MAX_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from . import ast as A

R = TypeVar("R")


def children(node: A.Expr) -> tuple[A.Expr, ...]:
    """The expressions directly under ``node``, in reading order (a list literal's items included)."""
    cls = node.__class__
    if cls is A.And or cls is A.Or:
        return node.items  # type: ignore[union-attr]
    if cls is A.Compare:
        return (node.left, node.right)  # type: ignore[union-attr]
    if cls is A.Not:
        return (node.item,)  # type: ignore[union-attr]
    if cls is A.Has:
        return (node.ref,)  # type: ignore[union-attr]
    if cls is A.Truthy:
        return (node.operand,)  # type: ignore[union-attr]
    if cls is A.Literal and node.kind == "list":  # type: ignore[union-attr]
        return tuple(node.value)  # type: ignore[union-attr]
    return ()


def parts(node: Any) -> tuple[Any, ...]:
    """The nodes directly under any node of a file, in reading order: a file's
    items, a rule's target, conditions and expiry, a group's list, an
    expression's :func:`children`."""
    cls = node.__class__
    if cls is A.PolicyFile:
        return tuple(node.items)
    if cls is A.Rule:
        return tuple(x for x in (node.target, node.when, node.unless, node.expiry) if x is not None)
    if cls is A.GroupDecl:
        return (node.members,)
    if cls in _LEAVES:
        return ()
    return children(node)


def descendants(node: Any) -> Iterator[Any]:
    """``node`` and every node under it (:func:`parts`), in reading order, without recursion."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(parts(n)))


def walk(node: A.Expr | None) -> Iterator[A.Expr]:
    """Every expression node below (and including) ``node``, in reading order
    (depth first, left to right), without recursion. The items of a list literal
    are not visited (a list is one value)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        yield n
        if n.__class__ is not A.Literal:
            stack.extend(reversed(children(n)))


class Visitor(Generic[R]):
    """Dispatch on the class of a node: ``visit(node)`` → ``visit_<Class>(node)``,
    or ``generic_visit(node)`` when the subclass defines no method for that class."""

    _methods: dict[type, Callable[[Any, Any], R]]  # node class → the subclass's visit_<Class>

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._methods = {}
        for node_cls in _NODE_CLASSES:
            method = getattr(cls, f"visit_{node_cls.__name__}", None)
            if callable(method):
                cls._methods[node_cls] = method

    def visit(self, node: Any) -> R:
        method = self._methods.get(node.__class__)
        if method is None:
            return self.generic_visit(node)
        return method(self, node)

    def generic_visit(self, node: Any) -> R:
        raise TypeError(f"{type(self).__name__} does not visit {type(node).__name__}")


_LEAVES = frozenset({A.ClaimsDecl, A.TypeDecl, A.Target, A.Expiry})

_NODE_CLASSES: tuple[type, ...] = (
    A.Literal,
    A.ClaimRef,
    A.AttrRef,
    A.NowRef,
    A.GroupRef,
    A.Compare,
    A.Has,
    A.Truthy,
    A.And,
    A.Or,
    A.Not,
    A.Target,
    A.Expiry,
    A.Rule,
    A.GroupDecl,
    A.ClaimsDecl,
    A.TypeDecl,
    A.PolicyFile,
)
