"""Diagnostics: located errors and warnings with stable codes.

Every diagnostic names its file, line and column, quotes the offending line
with a caret under the spot, and says what is wrong in a policy author's
words. Codes are stable: tools and tests rely on them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
        """``file:line:col: error[E200]: message`` + the line + a caret + a hint."""
        loc = self.file
        if self.line:
            loc += f":{self.line}:{self.column}"
        out = [f"{loc}: {self.severity}[{self.code}]: {self.message}"]
        if self.source_line:
            gutter = f"{self.line} | "
            out.append(f"{gutter}{self.source_line.rstrip()}")
            width = max(1, (self.end_column - self.column) if self.end_column > self.column else 1)
            out.append(" " * (len(gutter) + max(0, self.column - 1)) + "^" * width)
        if self.hint:
            out.append(f"  = help: {self.hint}")
        return "\n".join(out)

    def to_json(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "file": self.file, "line": self.line, "column": self.column,
                "hint": self.hint}


def make(code: str, message: str, file: str, text: str | None, line: int, column: int,
         hint: str = "", end_column: int = 0) -> Diagnostic:
    """Build a diagnostic, quoting line ``line`` of ``text``."""
    src = ""
    if text is not None and line > 0:
        lines = text.splitlines()
        if line <= len(lines):
            src = lines[line - 1]
    return Diagnostic(code, message, file, line, column, src, hint, end_column)


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
