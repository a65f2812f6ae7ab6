"""Static validation: parsed policy files → located diagnostics (errors and warnings).

Imports only the layers below it: :mod:`policy_lang.syntax`,
:mod:`policy_lang.values` and :mod:`policy_lang.diagnostics`."""

from __future__ import annotations

from collections.abc import Iterable

from ..diagnostics import Diagnostic, sort_diagnostics
from ..syntax import ParsedSource, Source, ast, parse_source
from .checker import RESERVED, check_file, check_files, owner_key

__all__ = ["RESERVED", "check_file", "check_files", "check_parsed", "check_sources", "owner_key"]


def check_parsed(parsed: Iterable[ParsedSource]) -> tuple[list[ast.PolicyFile], list[Diagnostic]]:
    """Parsed sources → the files that could be read, and every diagnostic of the
    set (syntax, then meaning across all files), sorted by file, line and column."""
    files: list[ast.PolicyFile] = []
    diags: list[Diagnostic] = []
    texts: dict[str, str] = {}
    uploads: dict[str, str] = {}
    for p in parsed:
        src = p.source
        texts[src.name] = src.text
        diags.extend(p.diagnostics)
        if p.file is not None:
            files.append(p.file)
            if src.owner is not None:
                uploads[src.name] = src.owner
    diags.extend(check_files(files, texts, uploads))
    return files, sort_diagnostics(diags)


def check_sources(sources: Iterable[Source]) -> list[Diagnostic]:
    """Every diagnostic of these sources; never raises for bad text."""
    return check_parsed(parse_source(s) for s in sources)[1]
