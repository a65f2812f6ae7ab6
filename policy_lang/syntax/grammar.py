"""The grammar (``grammar.lark``) and what is derived from it: the words of the
language. Every list of keywords in the package comes from here."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lark.lexer import TerminalDef
from lark.load_grammar import load_grammar

GRAMMAR = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")

EFFECTS = ("permit", "forbid", "ask")


@cache
def terminals() -> tuple[TerminalDef, ...]:
    """The grammar's terminals, as Lark compiles them (anonymous keywords named)."""
    grammar, _ = load_grammar(GRAMMAR, "grammar.lark", [], True)
    terms, _rules, _ignore = grammar.compile(["start"], set())
    return tuple(terms)


@cache
def keyword_of(terminal: str) -> str | None:
    """The text of a terminal that is a fixed string (``ON`` → ``on``), else None."""
    for t in terminals():
        if t.name == terminal and t.pattern.type == "str":
            return str(t.pattern.value)
    return None
