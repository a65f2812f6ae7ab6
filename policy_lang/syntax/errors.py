"""Syntax errors in a policy author's words.

When the reader stops at text it cannot read, Lark says where and which
terminals it expected there; :func:`syntax_diagnostic` looks around that spot
(an unclosed bracket, a condition ending in ``and``, ``=`` for ``==``, a
misspelt keyword, …) and turns it into one located diagnostic with a hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..diagnostics import Diagnostic, make
from .grammar import EFFECTS, KEYWORDS, keyword_of

# What each terminal is, in words.
_WORDS = {
    "EFFECT": "a rule (permit, forbid or ask)",
    "NAME": "a name",
    "STRING": "a quoted string",
    "NUMBER": "a number",
    "TIMESTAMP": "a timestamp such as 2027-01-01T09:00:00Z",
    "DURATION": "a duration such as 30d, 12h or 15m",
    "COMPARATOR": "a comparison (==, !=, <, <=, >, >=)",
    "COMMA": "','",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "EQUAL": "'='",
    "DOT": "'.'",
    "$END": "the end of the file",
}


# the terminals that read a whole reference as one token, and the keyword each starts with
_ONE_TOKEN_REFS = {"CLAIM_PATH": "CLAIMS", "CLIENT_ATTR": "CLIENT", "RESOURCE_ATTR": "RESOURCE"}

# ------------------------------------------------------------------ errors

_EFFECT_LIKE = {
    "allow",
    "deny",
    "grant",
    "permits",
    "accept",
    "reject",
    "refuse",
    "block",
    "require",
    "request",
    "approve",
}

# Words after which a condition cannot stop.
_DANGLING = {
    "and",
    "or",
    "not",
    "when",
    "unless",
    "in",
    "contains",
    "like",
    "with",
    "has",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
}
_CLOSERS = {"(": ")", "[": "]"}
_BAD_CHARS = {
    "&": "to join conditions write 'and' (not '&' or '&&')",
    "|": "to join alternatives write 'or' (not '|' or '||')",
    "!": "to negate write 'not'; to compare write '!='",
    ";": "rules need no separator: start the next rule on a new line",
    "{": 'lists are written with square brackets: ["a", "b"]',
    "}": 'lists are written with square brackets: ["a", "b"]',
    "\u201c": 'use straight double quotes: "text"',
    "\u201d": 'use straight double quotes: "text"',
    "\u2018": 'strings are written with straight double quotes: "text"',
    "\u2019": 'strings are written with straight double quotes: "text"',
}
_TOKEN_RE = re.compile(
    r"""
    (?P<comment>\#[^\n]*)
  | (?P<ws>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*"?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*|-?\d[\w.:+\-]*)
  | (?P<op>==|!=|<=|>=|[<>=()\[\],.])
  | (?P<other>.)
""",
    re.VERBOSE | re.DOTALL,
)


class _Tok:
    """A token of the light scan the error reporter uses to look around an error."""

    __slots__ = ("kind", "value", "line", "column")

    def __init__(self, kind: str, value: str, line: int, column: int):
        self.kind, self.value, self.line, self.column = kind, value, line, column

    @property
    def end_column(self) -> int:
        return self.column + len(self.value)


def _scan(text: str, end: int) -> list[_Tok]:
    """The tokens of ``text[:end]`` (comments and blanks skipped), with positions."""
    out: list[_Tok] = []
    line, line_start_at = 1, 0
    for m in _TOKEN_RE.finditer(text, 0, end):
        kind = m.lastgroup or "other"
        value = m.group(0)
        if kind not in ("ws", "comment"):
            out.append(_Tok(kind, value, line, m.start() - line_start_at + 1))
        nl = value.count("\n")
        if nl:
            line += nl
            line_start_at = m.start() + value.rindex("\n") + 1
    return out


def _unclosed(toks: list[_Tok]) -> _Tok | None:
    """The innermost bracket opened and never closed."""
    stack: list[_Tok] = []
    for t in toks:
        if t.value in _CLOSERS:
            stack.append(t)
        elif t.value in (")", "]") and stack and _CLOSERS[stack[-1].value] == t.value:
            stack.pop()
    return stack[-1] if stack else None


def _dangling_before(toks: list[_Tok], line: int) -> _Tok | None:
    """A word that needs something after it, ending an earlier line than ``line``
    (``and`` at the end of a line, then a new rule)."""
    for i in range(len(toks) - 1, -1, -1):
        t = toks[i]
        if t.line < line:
            return t if t.value in _DANGLING else None
    return None


def _dangling_diag(file: str, text: str, t: _Tok) -> Diagnostic:
    if t.value in ("when", "unless"):
        msg, hint = (
            f"'{t.value}' needs a condition after it",
            f"write the condition after '{t.value}', or remove '{t.value}'",
        )
    elif t.value in ("and", "or"):
        msg = f"the condition ends with '{t.value}', but nothing follows it"
        hint = f"write the rest of the condition after '{t.value}', or remove '{t.value}'"
    elif t.value == "not":
        msg, hint = "'not' needs a condition after it", "write what must not hold: not claims.x == 1"
    elif t.value == "has":
        msg, hint = "'has' needs what to look for", "write has claims.email or has client.id"
    else:
        op = "starts with / ends with" if t.value == "with" else t.value
        msg, hint = (
            f"'{op}' needs a value on its right",
            "write the value to compare with, such as a quoted string or a number",
        )
    return make("E111", msg, file, text, t.line, t.column, hint, t.end_column)


# Keywords that may stand twice in a row: ``not not x`` is a double negation.
_MAY_REPEAT = {"not"}


def _is_doubled(first: _Tok | None, second: _Tok | None) -> bool:
    """The same keyword twice in a row (``and and``, ``when when``, ``permit permit``)."""
    return (
        first is not None
        and second is not None
        and (first.line, first.column) < (second.line, second.column)
        and first.kind == second.kind == "word"
        and first.value == second.value
        and first.value in KEYWORDS
        and first.value not in _MAY_REPEAT
    )


def _doubled_diag(file: str, text: str, second: _Tok) -> Diagnostic:
    """E121: a keyword written twice in a row, at the second one. The reader would otherwise
    take the second for a name (``when when`` → a group called ``when``) and report
    something else ("unknown group 'and'"): issue 15 point 6."""
    word = second.value
    if word in ("and", "or"):
        msg = f"'{word}' twice in a row: a condition is missing between them"
        hint = f"remove one '{word}', or write the condition that goes between them"
    elif word in ("when", "unless"):
        msg = f"'{word}' twice in a row"
        hint = f"remove one '{word}': write it once, then the condition (join more conditions with 'and' or 'or')"
    else:
        msg = f"'{word}' twice in a row"
        hint = f"remove one '{word}'"
    return make("E121", msg, file, text, second.line, second.column, hint, second.end_column)


def keyword_as_group_diagnostic(file: str, text: str, word: str, line: int, column: int, start: int) -> Diagnostic:
    """A keyword where the reader took it for a group's name (``claims.a == 1 and and``, ``when
    when``: it parses, the second word read as a name): the real problem, in words. A doubled
    keyword is E121; ``and or`` E111; anything else E115 (a keyword cannot name a group)."""
    toks = _scan(text, start)
    prev = toks[-1] if toks else None
    here = _Tok("word", word, line, column)
    if _is_doubled(prev, here):
        return _doubled_diag(file, text, here)
    if prev is not None and prev.value in ("and", "or") and word in ("and", "or"):
        return make(
            "E111",
            f"'{word}' right after '{prev.value}': a condition is missing between them",
            file,
            text,
            line,
            column,
            f"write a condition between '{prev.value}' and '{word}', or remove one",
            here.end_column,
        )
    return make(
        "E115",
        f"'{word}' is a word of the policy language, not a group name",
        file,
        text,
        line,
        column,
        f"a group cannot be called '{word}'; to compare with the text itself, quote it: \"{word}\"",
        here.end_column,
    )


def _unclosed_diag(file: str, text: str, opener: _Tok) -> Diagnostic:
    closer = _CLOSERS[opener.value]
    what = "list" if opener.value == "[" else "parenthesis"
    return make(
        "E110",
        f"this '{opener.value}' is never closed",
        file,
        text,
        opener.line,
        opener.column,
        f"close the {what} with '{closer}'" + (" after its last item" if what == "list" else " after the condition"),
        opener.end_column,
    )


def _show_char(ch: str) -> str:
    if ch and ch.isprintable() and not ch.isspace():
        return f"'{ch}'"
    return f"U+{ord(ch):04X}" if ch else "end of text"


def syntax_diagnostic(file: str, text: str, err: UnexpectedInput) -> Diagnostic:
    """One syntax error → one diagnostic in a policy author's words. Never raises."""
    try:
        return _explain_syntax(file, text, err)
    except Exception:
        line = getattr(err, "line", 0) or 1
        col = getattr(err, "column", 0) or 1
        return make(
            "E100", "this text cannot be read as a policy", file, text, line, col, "check the line for a typing mistake"
        )


def run_together_diagnostic(file: str, text: str, line: int, column: int, keyword: str, word: str) -> Diagnostic:
    """A keyword run together with the letters after it (``permitview``): E120,
    naming the whole word and the words it was probably meant to be."""
    rest = word[len(keyword) :]
    meant = f"{keyword} {rest}" if len(rest) > 1 and rest[0].isalpha() else keyword
    return make(
        "E120",
        f"'{word}' is not a word of the language: did you mean '{meant}'?",
        file,
        text,
        line,
        column,
        f"keywords are whole words: put a space after '{keyword}'" if meant != keyword else f"write '{keyword}'",
        column + len(word),
    )


def _end_of_text(text: str) -> tuple[int, int]:
    """Just after the last token (trailing blanks and comments ignored)."""
    toks = _scan(text, len(text))
    if not toks:
        return 1, 1
    t = toks[-1]
    return t.line, t.end_column


def _explain_syntax(file: str, text: str, err: UnexpectedInput) -> Diagnostic:
    line = getattr(err, "line", 0) or 0
    col = getattr(err, "column", 0) or 0
    if isinstance(err, UnexpectedCharacters):
        at = err.pos_in_stream or 0
        ch = text[at] if at < len(text) else ""
        rest = text[at:]
        if ch == '"':
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            return make(
                "E101",
                "this string is never closed",
                file,
                text,
                line,
                col,
                'close it with " on the same line',
                col + max(1, end - at),
            )
        m = re.match(r"\d+[A-Za-z]+\b", rest)
        if m:
            return make(
                "E104",
                f"'{m.group(0)}' is not a duration",
                file,
                text,
                line,
                col,
                "a duration is a whole number followed by s, m, h, d or w (30d, 12h, 15m)",
                col + len(m.group(0)),
            )
        m = re.match(r"\d{4}-[\d\-T:.Z+]*", rest)
        if m:
            return make(
                "E103",
                f"'{m.group(0)}' is not a valid timestamp",
                file,
                text,
                line,
                col,
                "write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
                col + len(m.group(0)),
            )
        if re.match(r"-?\d", rest):
            m = re.match(r"-?[\w.]+", rest)
            return make(
                "E107",
                f"'{m.group(0) if m else ch}' is not a number",
                file,
                text,
                line,
                col,
                "numbers are written like 18, -3 or 2.5",
                col + len(m.group(0)) if m else 0,
            )
        if ch == "'":
            return make(
                "E105",
                "strings are written with double quotes",
                file,
                text,
                line,
                col,
                "write \"text\", not 'text'",
                col + 1,
            )
        if ch in _BAD_CHARS:
            return make(
                "E105", f"unexpected character {_show_char(ch)}", file, text, line, col, _BAD_CHARS[ch], col + 1
            )
        if ch.isalpha():
            return make(
                "E105",
                f"unexpected character {_show_char(ch)}",
                file,
                text,
                line,
                col,
                'names are written with the letters a-z and A-Z, digits, _ and -; quote other claim names: claims["…"]',
                col + 1,
            )
        expected = _expected_words(err.allowed or set())
        return make(
            "E105",
            f"unexpected character {_show_char(ch)}",
            file,
            text,
            line,
            col,
            f"expected {expected}" if expected else "remove it",
            col + 1,
        )
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        toks = _scan(text, len(text))
        if toks and toks[-1].value in _DANGLING:
            return _dangling_diag(file, text, toks[-1])
        opener = _unclosed(toks)
        if opener is not None:
            return _unclosed_diag(file, text, opener)
        if (
            len(toks) >= 2
            and toks[-1].value in ("claims", "client", "resource")
            and toks[-2].value in ("in", "contains", "==", "!=")
        ):
            return _reserved_diag(file, text, toks[-1])
        line, col = _end_of_text(text)
        return make(
            "E106",
            "the file ends in the middle of a rule or declaration",
            file,
            text,
            line,
            col,
            f"expected {_expected_words(_accepts(err))}",
        )
    if isinstance(err, UnexpectedToken):
        return _unexpected_token(file, text, err, line, col)
    return make("E100", "this text cannot be read as a policy", file, text, line or 1, col or 1)


def _accepts(err: UnexpectedInput) -> set[str]:
    expected = set(getattr(err, "expected", None) or ())
    try:  # LALR merges lookaheads; ask the parser what it really accepts here
        expected = set(err.interactive_parser.accepts()) or expected  # type: ignore[no-untyped-call]
    except Exception:
        pass
    if expected - {"$END"}:
        expected.discard("$END")
    return expected


def _missing_when_or_and(file: str, text: str, toks: list[_Tok], start: _Tok) -> Diagnostic:
    """A condition where the rule has ended: 'when' is missing, or 'and'/'or' between two
    conditions."""
    has_condition = False
    for t in reversed(toks):
        if t.value in ("when", "unless"):
            has_condition = True
            break
        if t.value in EFFECTS:
            break
    rest = text.split("\n")[start.line - 1][start.column - 1 :].split("#")[0].strip()
    if len(rest) > 40:
        rest = rest[:39] + "…"
    if has_condition:
        return make(
            "E119",
            "two conditions need 'and' or 'or' between them",
            file,
            text,
            start.line,
            start.column,
            f"write 'and {rest}' if both must hold, 'or {rest}' if either may",
            start.end_column,
        )
    return make(
        "E118",
        "this condition needs 'when' (or 'unless') before it",
        file,
        text,
        start.line,
        start.column,
        f"write 'when {rest}'",
        start.end_column,
    )


def _reserved_diag(file: str, text: str, t: _Tok) -> Diagnostic:
    example = {"claims": "claims.email", "client": "client.id", "resource": "resource.name"}
    return make(
        "E115",
        f"'{t.value}' is a word of the policy language, not a group name",
        file,
        text,
        t.line,
        t.column,
        f"'{t.value}' starts a value such as {example[t.value]}; if a group is called "
        f"'{t.value}', give it another name",
        t.end_column,
    )


def _unexpected_token(file: str, text: str, err: UnexpectedToken, line: int, col: int) -> Diagnostic:
    tok = err.token
    if tok.type in _ONE_TOKEN_REFS:  # 'client.id' where no value may stand: report its first word
        word = str(tok).split(".", 1)[0]
        tok = Token(
            _ONE_TOKEN_REFS[tok.type],
            word,
            tok.start_pos,
            tok.line,
            tok.column,
            tok.line,
            tok.column + len(word),
            tok.start_pos + len(word),
        )
    value = str(tok)
    expected = _accepts(err)
    start = getattr(tok, "start_pos", None)
    toks = _scan(text, start if isinstance(start, int) else 0)
    span = col + max(1, len(value))
    prev = toks[-1] if toks else None
    # 'and' / 'when' / '==' at the end of a line, then the next rule
    dangling = _dangling_before(toks, line)
    if dangling is not None and (
        line_start(text, tok) or (prev is not None and prev.line > dangling.line and prev.value in EFFECTS)
    ):
        return _dangling_diag(file, text, dangling)
    here = _Tok("word", value, line, col) if tok.type != "STRING" else None
    if _is_doubled(prev, here):  # 'on on', 'permit permit' where the second cannot stand
        return _doubled_diag(file, text, here)  # type: ignore[arg-type]
    for a, b in zip(toks[-3:], toks[-2:]):
        if _is_doubled(a, b):  # 'when when claims.x', 'x and and y': the second read as a name
            return _doubled_diag(file, text, b)
        if a.value in ("and", "or") and b.value in ("and", "or", "not") and b.value != "not":
            return make(
                "E111",
                f"'{b.value}' right after '{a.value}': a condition is missing between them",
                file,
                text,
                b.line,
                b.column,
                f"write a condition between '{a.value}' and '{b.value}', or remove one",
                b.end_column,
            )
    if (
        value == "."
        and prev is not None
        and re.fullmatch(r"-?\d+(\.\d+)?", prev.value)
        and prev.line == line
        and prev.end_column == col
    ):
        m = re.match(r"-?[\w.]+", text.split("\n")[prev.line - 1][prev.column - 1 :])
        word = m.group(0) if m else prev.value + value
        return make(
            "E107",
            f"'{word}' is not a number",
            file,
            text,
            prev.line,
            prev.column,
            "numbers are written like 18, -3 or 2.5",
            prev.column + len(word),
        )
    if value in (")", "]") and _unclosed(toks) is None:
        matching = "(" if value == ")" else "["
        return make(
            "E100",
            f"this '{value}' closes nothing",
            file,
            text,
            line,
            col,
            f"remove it, or add the matching '{matching}' before it",
            col + 1,
        )
    starts_value = None
    if prev is not None and prev.value == "claims" and value in (".", "[") and "COMPARATOR" not in expected:
        starts_value = prev  # 'claims.x' read as the start of a claims declaration
    elif value in ("client", "resource", "now", "not", "has", "(") and ({"WHEN", "UNLESS", "AND", "OR"} & expected):
        starts_value = _Tok("word", value, line, col)
    if starts_value is not None:
        return _missing_when_or_and(file, text, toks, starts_value)
    if (
        "COMPARATOR" in expected
        and tok.type in ("STRING", "NUMBER", "TIMESTAMP", "DURATION")
        and prev is not None
        and prev.line == line
    ):
        j = len(toks) - 1
        while j > 0 and (toks[j].value in (".", "[", "]") or toks[j - 1].value in (".", "[")):
            j -= 1
        left = "".join(t.value for t in toks[j:])
        return make(
            "E100",
            f"an operator is missing before {value}",
            file,
            text,
            line,
            col,
            f"compare with ==, !=, <, <=, >, >=, in, contains, starts with, ends with or like: {left} == {value}",
            span,
        )
    if value == "=" and "COMPARATOR" in expected:
        return make(
            "E114",
            "'=' does not compare; write '==' to test equality",
            file,
            text,
            line,
            col,
            'for example: claims.role == "physician"',
            col + 1,
        )
    opener = _unclosed(toks)
    if (
        opener is not None
        and ({"RSQB", "RPAR"} & expected)
        and (tok.type not in ("STRING", "NUMBER", "TIMESTAMP", "DURATION", "COMMA") or tok.line > opener.line)
    ):
        if not (tok.type in ("STRING", "NUMBER") and "COMMA" in expected and tok.line == opener.line):
            return _unclosed_diag(file, text, opener)
    if (
        "COMMA" in expected
        and "RSQB" in expected
        and tok.type in ("STRING", "NUMBER", "TIMESTAMP", "DURATION", "TRUE", "FALSE")
    ):
        return make(
            "E100", "list items are separated by commas", file, text, line, col, f"add ',' before {value}", span
        )
    if prev is not None and prev.value in ("claims", "client", "resource") and expected and expected <= {"DOT", "LSQB"}:
        return _reserved_diag(file, text, prev)
    if "ON" in expected:
        before = toks[-2] if len(toks) >= 2 else None
        if prev is not None and prev.value == "on" and before is not None and before.value in EFFECTS:
            return make(
                "E112",
                f"this {before.value} names no scopes",
                file,
                text,
                before.line,
                before.column,
                f"say which scopes it covers: {before.value} view, download on …, or {before.value} any scope on …",
                before.end_column,
            )
        if (
            value in ("any", "type", "name", "resource")
            or tok.type == "STRING"
            and prev is not None
            and prev.value not in EFFECTS
        ):
            return make(
                "E113",
                "this rule needs 'on' before what it applies to",
                file,
                text,
                line,
                col,
                f"write 'on {value} …', e.g. permit view on type \"photo-album\"",
                span,
            )
        if tok.type == "NAME" and value not in ("when", "unless", "for", "until"):
            return make(
                "E100",
                "scopes are separated by commas",
                file,
                text,
                line,
                col,
                f"add ',' before {value}: permit view, {value} on …",
                span,
            )
        if value in ("when", "unless", "for", "until"):
            return make(
                "E113",
                f"this rule says '{value}' before saying what it applies to",
                file,
                text,
                line,
                col,
                "write the target first: permit view on any resource when …",
                span,
            )
    near = _near_keyword(value, expected) if tok.type == "NAME" else None
    if tok.type == "NAME" and "EFFECT" in expected and near and near not in EFFECTS and line_start(text, tok):
        return make(
            "E100", f"unknown word '{value}'", file, text, line, col, f"did you mean '{near}'?", col + len(value)
        )
    if (
        tok.type == "NAME"
        and "EFFECT" in expected
        and (value.lower() in _EFFECT_LIKE or value.lower() in EFFECTS or line_start(text, tok))
    ):
        hint = "a rule starts with permit, forbid or ask"
        if near in EFFECTS:
            hint = f"did you mean '{near}'? ({hint})"
        if value.lower() in ("allow", "grant", "accept"):
            hint = f"did you mean 'permit'? ({hint})"
        elif value.lower() in ("deny", "reject", "refuse", "block"):
            hint = f"did you mean 'forbid'? ({hint})"
        elif value.lower() in ("request", "require", "approve"):
            hint = f"did you mean 'ask'? ({hint})"
        return make("E102", f"'{value}' is not a rule effect", file, text, line, col, hint, col + len(value))
    if value in ("owner", "global"):
        return make(
            "E108",
            f"'{value}' can only be the first line of a file",
            file,
            text,
            line,
            col,
            "a file has at most one header, before everything else",
            col + len(value),
        )
    hint = f"expected {_expected_words(expected)}"
    if near:
        hint = f"did you mean '{near}'? ({hint})"
    if expected == {"STRING"} and tok.type == "NAME":
        hint = f'expected a quoted string: write "{value}"'
    return make("E100", f"unexpected {_describe_token(tok)}", file, text, line, col, hint, span)


def _near_keyword(word: str, expected: set[str]) -> str | None:
    """A keyword the position accepts that ``word`` looks like a misspelling of."""
    import difflib

    words = {w for w in map(keyword_of, expected) if w is not None}
    if "EFFECT" in expected:
        words |= set(EFFECTS)
    if "STARTS" in expected:
        words |= {"starts with", "ends with"}
    words = {w for w in words if w[0].isalpha()}
    got = difflib.get_close_matches(word.lower(), sorted(words), n=1, cutoff=0.65)
    return got[0] if got and got[0] != word else None


def _describe_token(tok: Token) -> str:
    value = str(tok)
    if tok.type == "STRING":
        return f"string {value}" if len(value) <= 40 else "string"
    if tok.type in ("NUMBER", "DURATION", "TIMESTAMP"):
        return f"{tok.type.lower()} {value}"
    if value[:1].isalpha():
        return f"word '{value}'"
    return f"'{value}'"


def line_start(text: str, tok: Token) -> bool:
    """Is ``tok`` the first thing on its line (where a rule would start)?"""
    lines = text.split("\n")
    line, column = tok.line or 0, tok.column or 1
    if not (0 < line <= len(lines)):
        return False
    return lines[line - 1][: column - 1].strip() == ""


# Terminals that start a value, and the operators, named once instead of token by token.
_IN_VALUE = {
    "CLAIMS",
    "CLIENT",
    "RESOURCE",
    "NOW",
    "TRUE",
    "FALSE",
    "STRING",
    "NUMBER",
    "TIMESTAMP",
    "DURATION",
    "LSQB",
    "LPAR",
    "NAME",
    "HAS",
    "NOT",
}
_IN_OPERATOR = {"COMPARATOR", "IN", "NOT", "CONTAINS", "STARTS", "ENDS", "LIKE"}


def _expected_words(expected: Iterable[str] | None) -> str:
    """What a position accepts, in words (never token names)."""
    rest = set(expected or ()) - {"$END"}
    items: list[str] = []
    if "EFFECT" in rest:
        items.append("a rule (permit, forbid or ask)")
        rest.discard("EFFECT")
        if "GROUP" in rest:
            items.append("a declaration (group, claims or type)")
            rest -= {"GROUP", "TYPE", "CLAIMS"}
    if rest & {"CONTAINS", "STARTS", "ENDS"}:
        items.append("an operator (==, !=, <, in, not in, contains, starts with, ends with, like)")
        rest -= _IN_OPERATOR
    if rest & {"CLIENT", "NOW"}:
        items.insert(
            0, "a value (claims.email, client.id, resource.name, now, a string, a number, a list or a group name)"
        )
        rest -= _IN_VALUE
    keywords = []
    words = []
    for name in sorted(rest):
        if name in _WORDS:
            words.append(_WORDS[name])
            continue
        pattern = keyword_of(name)
        if pattern:
            keywords.append(f"'{pattern}'")
        elif not name.startswith("__"):
            words.append(name.lower())
    order = ["'and'", "'or'", "'when'", "'unless'", "'for'", "'until'"]
    keywords.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    items += keywords + sorted(set(words))
    if not items:
        return "something else"
    if len(items) > 8:
        items = items[:8] + ["…"]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
