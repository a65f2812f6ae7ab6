"""The grammar (``grammar.lark``) and what is derived from it: the words of the
language. Every list of keywords in the package comes from here."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from lark.lexer import TerminalDef
from lark.load_grammar import load_grammar

GRAMMAR = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")


@cache
def terminals() -> tuple[TerminalDef, ...]:
    """The grammar's terminals, as Lark compiles them (anonymous keywords named)."""
    grammar, _ = load_grammar(GRAMMAR, "grammar.lark", [], True)  # type: ignore[no-untyped-call]  # Lark leaves it unannotated
    terms, _rules, _ignore = grammar.compile(["start"], set())
    return tuple(terms)


def _name_pattern() -> re.Pattern[str]:
    (name,) = (t for t in terminals() if t.name == "NAME")
    return re.compile(name.pattern.to_regexp())


NAME_RE = _name_pattern()
"""What the grammar reads as a name (``NAME``)."""

NAME_CHARS = re.compile(r"[A-Za-z0-9_\-]*")
"""The characters that may continue a name (``NAME``'s after its first): a
keyword followed by one of them is not a whole word (``permitview``)."""


def _words_of(t: TerminalDef) -> list[str]:
    """The words a terminal stands for: ``"on"`` → [on]; ``"permit" | "forbid" |
    "ask"`` → [permit, forbid, ask]; a terminal of anything else → []."""
    if t.name == "NAME":
        return []
    if t.pattern.type == "str":
        value = str(t.pattern.value)
        return [value] if NAME_RE.fullmatch(value) else []
    m = re.fullmatch(r"\(\?:([A-Za-z_|]+)\)", t.pattern.to_regexp())
    return [w for w in m.group(1).split("|") if NAME_RE.fullmatch(w)] if m else []


def _keywords() -> dict[str, str]:
    out: dict[str, str] = {}
    for t in terminals():
        for word in _words_of(t):
            if word in out:
                raise ValueError(f"two terminals for the word {word!r}: {out[word]} and {t.name}")
            out[word] = t.name
    return out


KEYWORDS: dict[str, str] = _keywords()
"""Every word of the language → the terminal that reads it (``on`` → ``ON``,
``permit`` → ``EFFECT``), in the grammar's order. A name spelt like one of them
must be quoted where a name may be quoted, and cannot name a group."""

EFFECTS: tuple[str, ...] = tuple(w for w, t in KEYWORDS.items() if t == "EFFECT")
"""The rule effects (``permit``, ``forbid``, ``ask``)."""


@cache
def keyword_of(terminal: str) -> str | None:
    """The text of a terminal that is a fixed string (``ON`` → ``on``), else None."""
    for t in terminals():
        if t.name == terminal and t.pattern.type == "str":
            return str(t.pattern.value)
    return None
