"""Diagnostics: located errors and warnings with stable codes.

Every diagnostic names its file, line and column, quotes the offending line
with a caret under the spot, and says what is wrong in a policy author's
words. Codes are stable: tools and tests rely on them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# code -> (severity, short title). Codes never change meaning once released.
CODES: dict[str, tuple[str, str]] = {
    # syntax (parser)
    "E100": ("error", "syntax error"),
    "E101": ("error", "unterminated string"),
    "E102": ("error", "unknown rule effect"),
    "E103": ("error", "bad timestamp"),
    "E104": ("error", "bad duration"),
    "E105": ("error", "unexpected character"),
    "E106": ("error", "unexpected end of file"),
    "E107": ("error", "bad number"),
    "E108": ("error", "misplaced header"),
    "E109": ("error", "bad string escape"),
    "E110": ("error", "unclosed bracket"),
    "E111": ("error", "incomplete condition"),
    "E112": ("error", "rule without scopes"),
    "E113": ("error", "missing 'on'"),
    "E114": ("error", "'=' used to compare"),
    "E115": ("error", "reserved word used as a name"),
    "E116": ("error", "nested too deeply"),
    "E118": ("error", "condition without 'when'"),
    "E119": ("error", "missing 'and' or 'or'"),
    "E120": ("error", "keyword run together with a word"),
    "E121": ("error", "keyword written twice"),
    # meaning (checker)
    "E200": ("error", "unknown group"),
    "E201": ("error", "type mismatch"),
    "E202": ("error", "owner mismatch"),
    "E203": ("error", "missing owner"),
    "E204": ("error", "duplicate group"),
    "E205": ("error", "unknown attribute"),
    "E206": ("error", "bad claim token format"),
    "E207": ("error", "conflicting claims declaration"),
    "E208": ("error", "empty pattern"),
    "E209": ("error", "duration on a forbid"),
    "E210": ("error", "bad list"),
    "E211": ("error", "conflicting type declaration"),
    "E212": ("error", "global rules in an owner upload"),
    "E213": ("error", "unreadable file"),
    "E214": ("error", "zero duration"),
    "E217": ("error", "empty name"),
    # warnings
    "W300": ("warning", "rule shadowed by an unconditional forbid"),
    "W301": ("warning", "duplicate rule"),
    "W302": ("warning", "scope not offered by the resource type"),
    "W303": ("warning", "unused group"),
    "W304": ("warning", "rule already expired"),
    "W305": ("warning", "pattern without wildcard"),
    "W306": ("warning", "condition can never be true"),
    "W307": ("warning", "undeclared resource type"),
    "W308": ("warning", "claim declared but never read"),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    file: str
    line: int = 0
    column: int = 0
    source_line: str = ""
    hint: str = ""
    end_column: int = 0
    severity: str = field(default="")

    def __post_init__(self) -> None:
        if not self.severity:
            object.__setattr__(self, "severity", CODES.get(self.code, ("error", ""))[0])

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def render(self) -> str:
        """``file:line:col: error[E200]: message`` + the line + a caret + a hint.

        Tabs in the quoted line are shown as four spaces and wide characters
        count twice, so the caret sits under the right text in a terminal."""
        loc = self.file
        if self.line:
            loc += f":{self.line}:{self.column}"
        out = [f"{loc}: {self.severity}[{self.code}]: {self.message}"]
        if self.source_line and self.line:
            gutter = f"{self.line} | "
            line = self.source_line.rstrip("\r\n")
            shown = _display(line)
            out.append(f"{gutter}{shown}".rstrip())
            start = max(0, self.column - 1)
            end = self.end_column - 1 if self.end_column > self.column else start + 1
            before = _width(line[:start])
            width = max(1, _width(line[start:end])) if start < len(line) else 1
            out.append(" " * (len(gutter) + before) + "^" * width)
        if self.hint:
            out.append(f"  = help: {self.hint}")
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "hint": self.hint,
        }


def make(
    code: str, message: str, file: str, text: str | None, line: int, column: int, hint: str = "", end_column: int = 0
) -> Diagnostic:
    """Build a diagnostic, quoting line ``line`` of ``text``.

    Lines are counted at ``\\n`` only, as the parser counts them (``str.splitlines``
    would also split at form feeds and other separators and quote the wrong line)."""
    src = ""
    if text is not None and line > 0:
        lines = text.split("\n")
        if line <= len(lines):
            src = lines[line - 1].rstrip("\r")
    return Diagnostic(code, message, file, line, column, src, hint, end_column)


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.file, d.line, d.column, d.code)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """By file, line and column (then code): the order authors read them in."""
    return sorted(diags, key=sort_key)


def _char_width(c: str) -> int:
    if c == "\t":
        return 4
    if unicodedata.combining(c):
        return 0
    if not c.isprintable():
        return 1
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def _width(s: str) -> int:
    return sum(_char_width(c) for c in s)


def _display(s: str) -> str:
    """The line as shown: tabs as four spaces, other control characters as one space."""
    return "".join("    " if c == "\t" else (c if c.isprintable() else " ") for c in s)


class PolicyError(Exception):
    """Raised when policy text does not check. Carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0].render() if errors else "policy error"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]
