"""Text → AST: the grammar, the reader, syntax diagnostics, the AST and its walks.

The lowest layer of the language but one (it imports only
:mod:`policy_lang.diagnostics`)."""

from . import ast
from .grammar import EFFECTS
from .reader import MAX_DEPTH, parse, parse_or_raise
from .sources import ParsedSource, Source, parse_source, read_sources
from .visitor import walk

__all__ = [
    "EFFECTS",
    "MAX_DEPTH",
    "ParsedSource",
    "Source",
    "ast",
    "parse",
    "parse_or_raise",
    "parse_source",
    "read_sources",
    "walk",
]
