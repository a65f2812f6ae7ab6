"""Walking the AST."""

from __future__ import annotations

from collections.abc import Iterator

from . import ast as A


def walk(node) -> Iterator:
    """Every expression node below (and including) ``node``."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n is None:
            continue
        yield n
        if isinstance(n, (A.And, A.Or)):
            stack.extend(reversed(n.items))
        elif isinstance(n, A.Not):
            stack.append(n.item)
        elif isinstance(n, A.Compare):
            stack.extend((n.right, n.left))
        elif isinstance(n, A.Has):
            stack.append(n.ref)
        elif isinstance(n, A.Truthy):
            stack.append(n.operand)
