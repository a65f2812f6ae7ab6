"""Static validation: policy files → diagnostics (codes in diagnostics.CODES)."""
from __future__ import annotations

from typing import Iterable, Iterator

from . import ast as A
from .compile import RESOURCE_ATTRS
from .diagnostics import Diagnostic, make


def walk(node) -> Iterator:
    """Every expression node below (and including) ``node``."""
    if node is None:
        return
    yield node
    if isinstance(node, (A.And, A.Or)):
        for x in node.items:
            yield from walk(x)
    elif isinstance(node, A.Not):
        yield from walk(node.item)
    elif isinstance(node, A.Compare):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, A.Has):
        yield from walk(node.ref)
    elif isinstance(node, A.Truthy):
        yield from walk(node.operand)


def check_files(files: list[A.PolicyFile], texts: dict[str, str],
                uploads: dict[str, str] | None = None) -> list[Diagnostic]:
    uploads = uploads or {}
    out: list[Diagnostic] = []
    for pf in files:
        out.extend(check_file(pf, texts.get(pf.name), uploads.get(pf.name)))
    return out


def check_file(pf: A.PolicyFile, text: str | None, uploader: str | None) -> Iterable[Diagnostic]:
    def at(code: str, msg: str, pos: A.Pos | None, hint: str = "") -> Diagnostic:
        if pos is None:
            return make(code, msg, pf.name, text, 1, 1, hint)
        return make(code, msg, pf.name, text, pos.line, pos.column, hint,
                    pos.end_column if pos.end_line == pos.line else 0)

    out: list[Diagnostic] = []
    if uploader is not None:
        if pf.is_global:
            out.append(at("E212", "an owner's policy cannot hold global rules", pf.header_pos,
                          "global guardrails are the operator's; remove the 'global' line"))
        elif pf.owner != uploader:
            out.append(at("E202", f"this policy names owner {pf.owner!r}, but it was uploaded by {uploader!r}",
                          pf.header_pos, f"write owner \"{uploader}\" or leave the owner line out"))
    elif not pf.is_global and pf.owner is None and pf.rules:
        out.append(at("E203", "this file has rules but does not say whose resources they govern",
                      None, 'start the file with owner "<subject>" (or global, for operator guardrails)'))
    groups: dict[str, A.GroupDecl] = {}
    for g in pf.groups:
        if g.name in groups:
            out.append(at("E204", f"group {g.name!r} is declared twice", g.pos,
                          f"the first declaration is on line {groups[g.name].pos.line}"))
        else:
            groups[g.name] = g
    for rule in pf.rules:
        for cond in (rule.when, rule.unless):
            for node in walk(cond):
                if isinstance(node, A.GroupRef) and node.name not in groups:
                    known = ", ".join(sorted(groups)) or "none declared in this file"
                    out.append(at("E200", f"unknown group {node.name!r}", node.pos,
                                  f"declare it with: group {node.name} = [...] (known groups: {known})"))
                elif isinstance(node, A.AttrRef) and node.entity == "resource" \
                        and node.name not in RESOURCE_ATTRS:
                    out.append(at("E205", f"resources have no attribute {node.name!r}", node.pos,
                                  "a resource has " + ", ".join(RESOURCE_ATTRS)))
    return out
