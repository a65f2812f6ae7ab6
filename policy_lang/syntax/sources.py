"""Where policy text comes from: sources (a name, a text, an uploader), read
from files and directories, and each read into its AST."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic, make
from . import ast as A
from .reader import parse


@dataclass(frozen=True, slots=True)
class Source:
    """One policy text. ``owner`` is set for an owner upload (the uploader)."""

    name: str
    text: str
    owner: str | None = None


def read_sources(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Source], list[Diagnostic]]:
    """Files and directories (``*.policy``, recursively, in name order) → sources.
    Unreadable paths become E213 diagnostics."""
    sources: list[Source] = []
    diags: list[Diagnostic] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*.policy") if f.is_file())
        elif p.exists():
            files = [p]
        else:
            diags.append(make("E213", f"no such file or directory: {raw}", str(raw), None, 0, 0))
            continue
        for f in files:
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                reason = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else (e.strerror or str(e))
                diags.append(make("E213", f"cannot read {f}: {reason}", str(f), None, 0, 0))
                continue
            sources.append(Source(str(f), text))
    return sources, diags


@dataclass(frozen=True, slots=True)
class ParsedSource:
    """A source read into its AST (``file`` is None when it could not be read),
    with the syntax diagnostics. Immutable: a caller may keep it and hand it to
    :func:`policy_lang.check_parsed` again while the text is unchanged."""

    source: Source
    file: A.PolicyFile | None
    diagnostics: tuple[Diagnostic, ...]


def parse_source(source: Source) -> ParsedSource:
    pf, diags = parse(source.text, source.name, source.owner)
    return ParsedSource(source, pf, tuple(diags))
