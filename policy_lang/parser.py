"""Text → AST, with located syntax errors in a policy author's words.

The grammar lives in ``grammar.lark`` (LALR, contextual lexer). A Lark
``Transformer`` builds the typed nodes of :mod:`policy_lang.ast`; literal
problems (a timestamp that is no date, a bad escape) become diagnostics
instead of exceptions, so one pass reports them all.
"""
from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, Tree, v_args

try:  # an optional accelerator of the same parser (a dependency; absent on some platforms)
    import lark_cython
except ImportError:  # pragma: no cover - the wheel exists for the platforms we run on
    lark_cython = None
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast as A
from .diagnostics import Diagnostic, PolicyError, make

EFFECTS = ("permit", "forbid", "ask")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

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


def _parser() -> Lark:
    return _comment_parser()


def _unquote(tok: str) -> str:
    """A STRING token's value (JSON escapes)."""
    return json.loads(str(tok))


_TS_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_timestamp(text: str) -> datetime:
    """``2027-01-01`` (midnight UTC) or ``2027-01-01T09:00:00Z`` / with an offset.
    Raises ValueError with a reason in words."""
    if _TS_DATE.match(text):
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    if "T" in text and not (text.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", text)):
        raise ValueError("a timestamp with a time needs a zone: end it with Z (UTC) or an offset like +02:00")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("this timestamp is outside the years 0001 to 9999 in UTC") from None


def parse_duration(text: str) -> timedelta:
    m = re.fullmatch(r"(\d+)([smhdw])", text)
    if not m:
        raise ValueError("a duration is a whole number followed by s, m, h, d or w (30d, 12h, 15m)")
    try:
        return timedelta(seconds=int(m.group(1)) * DURATION_UNITS[m.group(2)])
    except OverflowError:
        raise ValueError("this duration is too long; write at most 999999 days") from None


def _pos(file: str, meta_or_tok) -> A.Pos:
    line = getattr(meta_or_tok, "line", 0) or 0
    col = getattr(meta_or_tok, "column", 0) or 0
    end_line = getattr(meta_or_tok, "end_line", line) or line
    end_col = getattr(meta_or_tok, "end_column", col) or col
    return A.Pos(file, line, col, end_line, end_col)


class _Build(Transformer):
    """Parse tree → AST nodes; collects literal diagnostics."""

    def __init__(self, file: str, text: str):
        super().__init__(visit_tokens=False)
        self.file = file
        self.text = text
        self.diags: list[Diagnostic] = []

    def _p(self, x) -> A.Pos:
        return x if x.__class__ is A.Pos else _pos(self.file, x)

    def run(self, tree: Tree):
        """Transform bottom-up like ``Transformer.transform``, with a dispatch
        table built once per class instead of Lark's per-node lookups.

        The parser keeps every token and does not propagate positions (that
        halves Lark's work on large policy sets); each node's span is taken
        here from its first and last token, keywords included — what Lark's
        ``propagate_positions`` would give — and keyword tokens are dropped
        before the node's method sees its children."""
        table = _dispatch(type(self))
        named = _NAMED_TERMINALS
        file = self.file
        Pos = A.Pos
        nowhere = Pos(file, 0, 0, 0, 0)
        flat = _NOT_NESTING

        def conv(t, depth):
            children = []
            first = last = None
            for c in t.children:
                if c.__class__ is Tree:
                    if c.data == "operand":  # ( expr ): unwrap nested parentheses without recursing
                        inner = c.children[1]
                        while inner.__class__ is Tree and inner.data == "operand":
                            inner = inner.children[1]
                        d = depth + (inner.data not in flat)
                        if d > MAX_DEPTH:
                            raise _TooDeep(inner)
                        value = conv(inner, d)[0]
                        opening, closing = c.children[0], c.children[-1]
                        span = Pos(file, opening.line, opening.column, closing.end_line,
                                   closing.end_column)
                    else:
                        d = depth + (c.data not in flat)
                        if d > MAX_DEPTH:  # checked on the way down: no deep recursion
                            raise _TooDeep(c)
                        value, span = conv(c, d)
                    if span is None:
                        continue
                    if value is not _SKIP:
                        children.append(value)
                else:
                    span = c
                    if c.type in named:
                        children.append(c)
                if first is None:
                    first = span
                last = span
            meta = Pos(file, first.line, first.column, last.end_line, last.end_column) \
                if first is not None else nowhere
            entry = table.get(t.data)
            if entry is None:  # a parenthesised operand: the expression inside
                return (children[0] if len(children) == 1 else _SKIP), meta
            func, with_meta = entry
            try:
                return (func(self, meta, children) if with_meta else func(self, children)), meta
            except Exception as e:  # noqa: BLE001 - reported like Lark's VisitError
                raise VisitError(t.data, t, e) from e
        return conv(tree, 0)[0]

    def _diag(self, code: str, msg: str, tok, hint: str = "") -> None:
        self.diags.append(make(code, msg, self.file, self.text, tok.line, tok.column, hint,
                               getattr(tok, "end_column", 0) or 0))

    def _string(self, tok: Token) -> str:
        try:
            return _unquote(tok)
        except ValueError:
            self._diag("E109", "this string has an escape sequence that is not allowed", tok,
                       r'use \" for a quote, \\ for a backslash, \n for a new line, \uXXXX for others')
            return str(tok)[1:-1]

    # ------------------------------------------------------------ file level
    @v_args(meta=True)
    def start(self, meta, items):
        return list(items)

    @v_args(meta=True)
    def owner_header(self, meta, ch):
        return ("owner", self._string(ch[0]), self._p(meta))

    @v_args(meta=True)
    def global_header(self, meta, ch):
        return ("global", None, self._p(meta))

    @v_args(meta=True)
    def group_decl(self, meta, ch):
        name, lst = ch
        return A.GroupDecl(str(name), lst, self._p(meta))

    def claim_name(self, ch):
        tok = ch[0]
        if tok.type == "STRING":
            return (self._string(tok), True)
        return (str(tok), False)

    def token_format(self, ch):
        tok = ch[0]
        if tok.type == "STRING":
            return (self._string(tok), True, tok)
        return (str(tok), False, tok)

    @v_args(meta=True)
    def claims_decl(self, meta, ch):
        *names, issuer, fmt = ch
        return A.ClaimsDecl(tuple(n for n, _ in names), self._string(issuer), fmt[0], self._p(meta),
                            tuple(q for _, q in names), fmt[1])

    def scope_name(self, ch):
        tok = ch[0]
        value = self._string(tok) if tok.type == "STRING" else str(tok)
        return (value, self._p(tok))

    @v_args(meta=True)
    def type_decl(self, meta, ch):
        type_tok, *scopes = ch
        return A.TypeDecl(self._string(type_tok), tuple(s for s, _ in scopes), self._p(meta))

    # ------------------------------------------------------------ rules
    @v_args(meta=True)
    def rule(self, meta, ch):
        effect_tok, scopes, target, *rest = ch
        when = unless = expiry = None
        for part in rest:
            if isinstance(part, tuple) and part[0] == "when":
                when = part[1]
            elif isinstance(part, tuple) and part[0] == "unless":
                unless = part[1]
            elif isinstance(part, A.Expiry):
                expiry = part
        scope_names, scope_pos = scopes
        return A.Rule(str(effect_tok), scope_names, target, when, unless, expiry, self._p(meta),
                      scope_pos)

    def any_scope(self, ch):
        return (None, ())

    def scope_list(self, ch):
        return (tuple(s for s, _ in ch), tuple(p for _, p in ch))

    @v_args(meta=True)
    def target_any(self, meta, ch):
        return A.Target("any", pos=self._p(meta))

    @v_args(meta=True)
    def target_id(self, meta, ch):
        return A.Target("id", resource_id=self._string(ch[0]), pos=self._p(meta))

    @v_args(meta=True)
    def target_type(self, meta, ch):
        type_ = self._string(ch[0])
        if len(ch) == 1:
            return A.Target("type", type=type_, pos=self._p(meta))
        kind, value = ch[1]
        if kind == "name":
            return A.Target("type_name", type=type_, name=value, pos=self._p(meta))
        return A.Target("type_name_like", type=type_, pattern=value, pos=self._p(meta))

    @v_args(meta=True)
    def target_name(self, meta, ch):
        kind, value = ch[0]
        if kind == "name":
            return A.Target("name", name=value, pos=self._p(meta))
        return A.Target("name_like", pattern=value, pos=self._p(meta))

    def name_exact(self, ch):
        return ("name", self._string(ch[0]))

    def name_like(self, ch):
        return ("like", self._string(ch[0]))

    def when_clause(self, ch):
        return ("when", ch[0])

    def unless_clause(self, ch):
        return ("unless", ch[0])

    @v_args(meta=True)
    def expiry_for(self, meta, ch):
        tok = ch[0]
        try:
            d = parse_duration(str(tok))
        except ValueError as e:
            self._diag("E104", f"'{tok}' is not a duration", tok, str(e))
            d = None  # not a zero duration: no second error (E214) for the same mistake
        return A.Expiry("for", d, None, str(tok), self._p(meta))

    @v_args(meta=True)
    def expiry_until(self, meta, ch):
        tok = ch[0]
        try:
            t = parse_timestamp(str(tok))
        except ValueError as e:
            self._diag("E103", f"'{tok}' is not a valid timestamp", tok, _ts_hint(e))
            t = datetime(1970, 1, 1, tzinfo=timezone.utc)
        return A.Expiry("until", None, t, str(tok), self._p(meta))

    # ------------------------------------------------------------ expressions
    @v_args(meta=True)
    def or_(self, meta, ch):
        return A.Or(tuple(ch), self._p(meta))

    @v_args(meta=True)
    def and_(self, meta, ch):
        return A.And(tuple(ch), self._p(meta))

    @v_args(meta=True)
    def not_(self, meta, ch):
        return A.Not(ch[0], self._p(meta))

    @v_args(meta=True)
    def compare(self, meta, ch):
        left, op, right = ch
        return A.Compare(str(op), left, right, self._p(meta))

    def _binop(op):  # noqa: N805 - a small factory for the word operators
        @v_args(meta=True)
        def build(self, meta, ch):
            return A.Compare(op, ch[0], ch[1], self._p(meta))
        return build

    in_ = _binop("in")
    not_in = _binop("not in")
    contains = _binop("contains")
    starts_with = _binop("starts with")
    ends_with = _binop("ends with")
    like = _binop("like")
    del _binop

    @v_args(meta=True)
    def has(self, meta, ch):
        return A.Has(ch[0], self._p(meta))

    @v_args(meta=True)
    def claim_ref(self, meta, ch):
        names = tuple(str(t) for t in ch)
        return A.ClaimRef(".".join(names) if len(names) == 1 else names[0], names, False, self._p(meta))

    @v_args(meta=True)
    def claim_path(self, meta, ch):  # one token: claims.a.b
        names = tuple(str(ch[0]).split(".")[1:])
        return A.ClaimRef(names[0], names, False, self._p(meta))

    @v_args(meta=True)
    def client_attr(self, meta, ch):  # one token: client.id
        return A.AttrRef("client", str(ch[0])[7:], self._p(meta))

    @v_args(meta=True)
    def resource_attr(self, meta, ch):  # one token: resource.type
        return A.AttrRef("resource", str(ch[0])[9:], self._p(meta))

    @v_args(meta=True)
    def claim_ref_quoted(self, meta, ch):
        name = self._string(ch[0])
        return A.ClaimRef(name, (name,), True, self._p(meta))

    @v_args(meta=True)
    def client_ref(self, meta, ch):
        return A.AttrRef("client", str(ch[0]), self._p(meta))

    @v_args(meta=True)
    def resource_ref(self, meta, ch):
        return A.AttrRef("resource", str(ch[0]), self._p(meta))

    @v_args(meta=True)
    def now_ref(self, meta, ch):
        return A.NowRef(self._p(meta))

    @v_args(meta=True)
    def group_ref(self, meta, ch):
        return A.GroupRef(str(ch[0]), self._p(meta))

    @v_args(meta=True)
    def string(self, meta, ch):
        return A.Literal(self._string(ch[0]), "string", self._p(meta), str(ch[0]))

    @v_args(meta=True)
    def number(self, meta, ch):
        text = str(ch[0])
        value = float(text) if "." in text else int(text)
        return A.Literal(value, "number", self._p(meta), text)

    @v_args(meta=True)
    def true(self, meta, ch):
        return A.Literal(True, "bool", self._p(meta), "true")

    @v_args(meta=True)
    def false(self, meta, ch):
        return A.Literal(False, "bool", self._p(meta), "false")

    @v_args(meta=True)
    def timestamp(self, meta, ch):
        tok = ch[0]
        try:
            value = parse_timestamp(str(tok))
        except ValueError as e:
            self._diag("E103", f"'{tok}' is not a valid timestamp", tok, _ts_hint(e))
            value = datetime(1970, 1, 1, tzinfo=timezone.utc)
        return A.Literal(value, "timestamp", self._p(meta), str(tok))

    @v_args(meta=True)
    def duration(self, meta, ch):
        tok = ch[0]
        try:
            value = parse_duration(str(tok))
        except ValueError as e:
            self._diag("E104", f"'{tok}' is not a duration", tok, str(e))
            value = timedelta(0)
        return A.Literal(value, "duration", self._p(meta), str(tok))

    @v_args(meta=True)
    def list_lit(self, meta, ch):
        items = tuple(c for c in ch if isinstance(c, A.Literal))
        return A.Literal(items, "list", self._p(meta))


# Terminals that carry a value; every other token is a keyword or punctuation.
_NAMED_TERMINALS = frozenset({"EFFECT", "NAME", "STRING", "NUMBER", "TIMESTAMP", "DURATION",
                              "COMPARATOR", "CLAIM_PATH", "CLIENT_ATTR", "RESOURCE_ATTR"})
_SKIP = object()
# the terminals that read a whole reference as one token, and the keyword each starts with
_ONE_TOKEN_REFS = {"CLAIM_PATH": "CLAIMS", "CLIENT_ATTR": "CLIENT", "RESOURCE_ATTR": "RESOURCE"}


@lru_cache(maxsize=None)
def _dispatch(cls) -> dict[str, tuple]:
    """rule name → (plain function, takes meta?) for a Transformer class."""
    table = {}
    for name in dir(cls):
        if name.startswith("__"):
            continue
        attr = getattr(cls, name, None)
        wrapper = getattr(attr, "visit_wrapper", None)
        if wrapper is not None:
            table[name] = (attr.base_func, True)
        elif callable(attr) and not isinstance(attr, type):
            table[name] = (attr, False)
    return table


def _ts_hint(e: Exception) -> str:
    msg = str(e)
    if "zone" in msg or "outside the years" in msg:
        return msg
    return "there is no such date or time; write YYYY-MM-DD, optionally with a time: 2027-01-01T09:00:00Z"


# ------------------------------------------------------------------ errors

_EFFECT_LIKE = {"allow", "deny", "grant", "permits", "accept", "reject", "refuse", "block",
                "require", "request", "approve"}

# Words after which a condition cannot stop.
_DANGLING = {"and", "or", "not", "when", "unless", "in", "contains", "like", "with", "has",
             "==", "!=", "<", "<=", ">", ">="}
_CLOSERS = {"(": ")", "[": "]"}
_BAD_CHARS = {
    "&": "to join conditions write 'and' (not '&' or '&&')",
    "|": "to join alternatives write 'or' (not '|' or '||')",
    "!": "to negate write 'not'; to compare write '!='",
    ";": "rules need no separator: start the next rule on a new line",
    "{": "lists are written with square brackets: [\"a\", \"b\"]",
    "}": "lists are written with square brackets: [\"a\", \"b\"]",
    "\u201c": 'use straight double quotes: "text"',
    "\u201d": 'use straight double quotes: "text"',
    "\u2018": 'strings are written with straight double quotes: "text"',
    "\u2019": 'strings are written with straight double quotes: "text"',
}
_TOKEN_RE = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<ws>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*"?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*|-?\d[\w.:+\-]*)
  | (?P<op>==|!=|<=|>=|[<>=()\[\],.])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


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
        msg, hint = f"'{t.value}' needs a condition after it", \
            f"write the condition after '{t.value}', or remove '{t.value}'"
    elif t.value in ("and", "or"):
        msg = f"the condition ends with '{t.value}', but nothing follows it"
        hint = f"write the rest of the condition after '{t.value}', or remove '{t.value}'"
    elif t.value == "not":
        msg, hint = "'not' needs a condition after it", "write what must not hold: not claims.x == 1"
    elif t.value == "has":
        msg, hint = "'has' needs what to look for", "write has claims.email or has client.id"
    else:
        op = "starts with / ends with" if t.value == "with" else t.value
        msg, hint = f"'{op}' needs a value on its right", \
            "write the value to compare with, such as a quoted string or a number"
    return make("E111", msg, file, text, t.line, t.column, hint, t.end_column)


def _unclosed_diag(file: str, text: str, opener: _Tok) -> Diagnostic:
    closer = _CLOSERS[opener.value]
    what = "list" if opener.value == "[" else "parenthesis"
    return make("E110", f"this '{opener.value}' is never closed", file, text,
                opener.line, opener.column,
                f"close the {what} with '{closer}'" + (
                    " after its last item" if what == "list" else " after the condition"),
                opener.end_column)


def _show_char(ch: str) -> str:
    if ch and ch.isprintable() and not ch.isspace():
        return f"'{ch}'"
    return f"U+{ord(ch):04X}" if ch else "end of text"


def _syntax_diag(file: str, text: str, err: UnexpectedInput) -> Diagnostic:
    """One syntax error → one diagnostic in a policy author's words. Never raises."""
    try:
        return _explain_syntax(file, text, err)
    except Exception:  # noqa: BLE001 - the reporter must not turn a bad text into a crash
        line = getattr(err, "line", 0) or 1
        col = getattr(err, "column", 0) or 1
        return make("E100", "this text cannot be read as a policy", file, text, line, col,
                    "check the line for a typing mistake")


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
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        rest = text[err.pos_in_stream:]
        if ch == '"':
            end = text.find("\n", err.pos_in_stream)
            end = len(text) if end < 0 else end
            return make("E101", "this string is never closed", file, text, line, col,
                        'close it with " on the same line', col + max(1, end - err.pos_in_stream))
        m = re.match(r"\d+[A-Za-z]+\b", rest)
        if m:
            return make("E104", f"'{m.group(0)}' is not a duration", file, text, line, col,
                        "a duration is a whole number followed by s, m, h, d or w (30d, 12h, 15m)",
                        col + len(m.group(0)))
        m = re.match(r"\d{4}-[\d\-T:.Z+]*", rest)
        if m:
            return make("E103", f"'{m.group(0)}' is not a valid timestamp", file, text, line, col,
                        "write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", col + len(m.group(0)))
        if re.match(r"-?\d", rest):
            m = re.match(r"-?[\w.]+", rest)
            return make("E107", f"'{m.group(0) if m else ch}' is not a number", file, text, line,
                        col, "numbers are written like 18, -3 or 2.5",
                        col + len(m.group(0)) if m else 0)
        if ch == "'":
            return make("E105", "strings are written with double quotes", file, text, line, col,
                        'write "text", not \'text\'', col + 1)
        if ch in _BAD_CHARS:
            return make("E105", f"unexpected character {_show_char(ch)}", file, text, line, col,
                        _BAD_CHARS[ch], col + 1)
        if ch.isalpha():
            return make("E105", f"unexpected character {_show_char(ch)}", file, text, line, col,
                        "names are written with the letters a-z and A-Z, digits, _ and -; "
                        "quote other claim names: claims[\"…\"]", col + 1)
        expected = _expected_words(err.allowed or set())
        return make("E105", f"unexpected character {_show_char(ch)}", file, text, line, col,
                    f"expected {expected}" if expected else "remove it", col + 1)
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken)
                                          and err.token.type == "$END"):
        toks = _scan(text, len(text))
        if toks and toks[-1].value in _DANGLING:
            return _dangling_diag(file, text, toks[-1])
        opener = _unclosed(toks)
        if opener is not None:
            return _unclosed_diag(file, text, opener)
        if len(toks) >= 2 and toks[-1].value in ("claims", "client", "resource") \
                and toks[-2].value in ("in", "contains", "==", "!="):
            return _reserved_diag(file, text, toks[-1])
        line, col = _end_of_text(text)
        return make("E106", "the file ends in the middle of a rule or declaration", file, text,
                    line, col, f"expected {_expected_words(_accepts(err))}")
    if isinstance(err, UnexpectedToken):
        return _unexpected_token(file, text, err, line, col)
    return make("E100", "this text cannot be read as a policy", file, text, line or 1, col or 1)


def _accepts(err: UnexpectedInput) -> set[str]:
    expected = set(getattr(err, "expected", None) or ())
    try:  # LALR merges lookaheads; ask the parser what it really accepts here
        expected = set(err.interactive_parser.accepts()) or expected  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - fall back to Lark's own set
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
    rest = text.split("\n")[start.line - 1][start.column - 1:].split("#")[0].strip()
    if len(rest) > 40:
        rest = rest[:39] + "…"
    if has_condition:
        return make("E119", "two conditions need 'and' or 'or' between them", file, text,
                    start.line, start.column,
                    f"write 'and {rest}' if both must hold, 'or {rest}' if either may",
                    start.end_column)
    return make("E118", "this condition needs 'when' (or 'unless') before it", file, text,
                start.line, start.column, f"write 'when {rest}'", start.end_column)


def _reserved_diag(file: str, text: str, t: _Tok) -> Diagnostic:
    example = {"claims": "claims.email", "client": "client.id", "resource": "resource.name"}
    return make("E115", f"'{t.value}' is a word of the policy language, not a group name", file,
                text, t.line, t.column,
                f"'{t.value}' starts a value such as {example[t.value]}; if a group is called "
                f"'{t.value}', give it another name", t.end_column)


def _unexpected_token(file: str, text: str, err: UnexpectedToken, line: int, col: int
                      ) -> Diagnostic:
    tok = err.token
    if tok.type in _ONE_TOKEN_REFS:  # 'client.id' where no value may stand: report its first word
        word = str(tok).split(".", 1)[0]
        tok = Token(_ONE_TOKEN_REFS[tok.type], word, tok.start_pos, tok.line, tok.column,
                    tok.line, tok.column + len(word), tok.start_pos + len(word))
    value = str(tok)
    expected = _accepts(err)
    start = getattr(tok, "start_pos", None)
    toks = _scan(text, start if isinstance(start, int) else 0)
    span = col + max(1, len(value))
    prev = toks[-1] if toks else None
    # 'and' / 'when' / '==' at the end of a line, then the next rule
    dangling = _dangling_before(toks, line)
    if dangling is not None and (line_start(text, tok) or (
            prev is not None and prev.line > dangling.line and prev.value in EFFECTS)):
        return _dangling_diag(file, text, dangling)
    for a, b in zip(toks[-3:], toks[-2:]):
        if a.value in ("and", "or") and b.value in ("and", "or", "not") and b.value != "not":
            return make("E111", f"'{b.value}' right after '{a.value}': a condition is missing "
                                "between them", file, text, b.line, b.column,
                        f"write a condition between '{a.value}' and '{b.value}', or remove one",
                        b.end_column)
    if value == "." and prev is not None and re.fullmatch(r"-?\d+(\.\d+)?", prev.value) \
            and prev.line == line and prev.end_column == col:
        m = re.match(r"-?[\w.]+", text.split("\n")[prev.line - 1][prev.column - 1:])
        word = m.group(0) if m else prev.value + value
        return make("E107", f"'{word}' is not a number", file, text, prev.line, prev.column,
                    "numbers are written like 18, -3 or 2.5", prev.column + len(word))
    if value in (")", "]") and _unclosed(toks) is None:
        opener = "(" if value == ")" else "["
        return make("E100", f"this '{value}' closes nothing", file, text, line, col,
                    f"remove it, or add the matching '{opener}' before it", col + 1)
    starts_value = None
    if prev is not None and prev.value == "claims" and value in (".", "[") \
            and "COMPARATOR" not in expected:
        starts_value = prev  # 'claims.x' read as the start of a claims declaration
    elif value in ("client", "resource", "now", "not", "has", "(") and (
            {"WHEN", "UNLESS", "AND", "OR"} & expected):
        starts_value = _Tok("word", value, line, col)
    if starts_value is not None:
        return _missing_when_or_and(file, text, toks, starts_value)
    if "COMPARATOR" in expected and tok.type in ("STRING", "NUMBER", "TIMESTAMP", "DURATION") \
            and prev is not None and prev.line == line:
        j = len(toks) - 1
        while j > 0 and (toks[j].value in (".", "[", "]") or toks[j - 1].value in (".", "[")):
            j -= 1
        left = "".join(t.value for t in toks[j:])
        return make("E100", f"an operator is missing before {value}", file, text, line, col,
                    f"compare with ==, !=, <, <=, >, >=, in, contains, starts with, ends with or "
                    f"like: {left} == {value}", span)
    if value == "=" and "COMPARATOR" in expected:
        return make("E114", "'=' does not compare; write '==' to test equality", file, text,
                    line, col, 'for example: claims.role == "physician"', col + 1)
    opener = _unclosed(toks)
    if opener is not None and ({"RSQB", "RPAR"} & expected) and (
            tok.type not in ("STRING", "NUMBER", "TIMESTAMP", "DURATION", "COMMA")
            or tok.line > opener.line):
        if not (tok.type in ("STRING", "NUMBER") and "COMMA" in expected and tok.line == opener.line):
            return _unclosed_diag(file, text, opener)
    if "COMMA" in expected and "RSQB" in expected and tok.type in (
            "STRING", "NUMBER", "TIMESTAMP", "DURATION", "TRUE", "FALSE"):
        return make("E100", "list items are separated by commas", file, text, line, col,
                    f"add ',' before {value}", span)
    if prev is not None and prev.value in ("claims", "client", "resource") \
            and expected and expected <= {"DOT", "LSQB"}:
        return _reserved_diag(file, text, prev)
    if "ON" in expected:
        before = toks[-2] if len(toks) >= 2 else None
        if prev is not None and prev.value == "on" and before is not None \
                and before.value in EFFECTS:
            return make("E112", f"this {before.value} names no scopes", file, text,
                        before.line, before.column,
                        f"say which scopes it covers: {before.value} view, download on …, or "
                        f"{before.value} any scope on …", before.end_column)
        if value in ("any", "type", "name", "resource") or tok.type == "STRING" and \
                prev is not None and prev.value not in EFFECTS:
            return make("E113", "this rule needs 'on' before what it applies to", file, text,
                        line, col, f"write 'on {value} …', e.g. permit view on type \"photo-album\"",
                        span)
        if tok.type == "NAME" and value not in ("when", "unless", "for", "until"):
            return make("E100", "scopes are separated by commas", file, text, line, col,
                        f"add ',' before {value}: permit view, {value} on …", span)
        if value in ("when", "unless", "for", "until"):
            return make("E113", f"this rule says '{value}' before saying what it applies to",
                        file, text, line, col,
                        "write the target first: permit view on any resource when …", span)
    near = _near_keyword(value, expected) if tok.type == "NAME" else None
    if tok.type == "NAME" and "EFFECT" in expected and near and near not in EFFECTS \
            and line_start(text, tok):
        return make("E100", f"unknown word '{value}'", file, text, line, col,
                    f"did you mean '{near}'?", col + len(value))
    if tok.type == "NAME" and "EFFECT" in expected and (
            value.lower() in _EFFECT_LIKE or value.lower() in EFFECTS or line_start(text, tok)):
        hint = "a rule starts with permit, forbid or ask"
        if near in EFFECTS:
            hint = f"did you mean '{near}'? ({hint})"
        if value.lower() in ("allow", "grant", "accept"):
            hint = f"did you mean 'permit'? ({hint})"
        elif value.lower() in ("deny", "reject", "refuse", "block"):
            hint = f"did you mean 'forbid'? ({hint})"
        elif value.lower() in ("request", "require", "approve"):
            hint = f"did you mean 'ask'? ({hint})"
        return make("E102", f"'{value}' is not a rule effect", file, text, line, col, hint,
                    col + len(value))
    if value in ("owner", "global"):
        return make("E108", f"'{value}' can only be the first line of a file", file, text,
                    line, col, "a file has at most one header, before everything else",
                    col + len(value))
    hint = f"expected {_expected_words(expected)}"
    if near:
        hint = f"did you mean '{near}'? ({hint})"
    if expected == {"STRING"} and tok.type == "NAME":
        hint = f'expected a quoted string: write "{value}"'
    return make("E100", f"unexpected {_describe_token(tok)}", file, text, line, col, hint, span)


def _near_keyword(word: str, expected: set[str]) -> str | None:
    """A keyword the position accepts that ``word`` looks like a misspelling of."""
    import difflib

    words = {_keyword_of(name) for name in expected} - {None}
    if "EFFECT" in expected:
        words |= set(EFFECTS)
    if "STARTS" in expected:
        words |= {"starts with", "ends with"}
    words = {w for w in words if w and w[0].isalpha()}
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
    if not (0 < (tok.line or 0) <= len(lines)):
        return False
    return lines[tok.line - 1][: tok.column - 1].strip() == ""


# Terminals that start a value, and the operators, named once instead of token by token.
_IN_VALUE = {"CLAIMS", "CLIENT", "RESOURCE", "NOW", "TRUE", "FALSE", "STRING", "NUMBER",
             "TIMESTAMP", "DURATION", "LSQB", "LPAR", "NAME", "HAS", "NOT"}
_IN_OPERATOR = {"COMPARATOR", "IN", "NOT", "CONTAINS", "STARTS", "ENDS", "LIKE"}


def _expected_words(expected) -> str:
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
        items.insert(0, "a value (claims.email, client.id, resource.name, now, a string, a "
                        "number, a list or a group name)")
        rest -= _IN_VALUE
    keywords = []
    words = []
    for name in sorted(rest):
        if name in _WORDS:
            words.append(_WORDS[name])
            continue
        pattern = _keyword_of(name)
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


@lru_cache(maxsize=None)
def _keyword_of(terminal: str) -> str | None:
    for t in _parser().terminals:
        if t.name == terminal and t.pattern.type == "str":
            return t.pattern.value
    return None


# ------------------------------------------------------------------ entry point

def parse(text: str, file: str = "<policy>", owner: str | None = None) -> tuple[A.PolicyFile | None, list[Diagnostic]]:
    """Parse one policy text. Returns ``(PolicyFile or None, diagnostics)``;
    never raises for bad text. ``owner`` is the uploader of an owner upload:
    it fills in a missing header; the checker refuses a header naming anyone else."""
    comments: list[tuple[int, int, str]] = []

    def on_comment(tok: Token) -> None:
        comments.append((tok.line, tok.column, str(tok)))

    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        return None, [make("E105", "unexpected NUL character", file, text, line, col)]
    try:
        tree = _parse_with_comments(text, on_comment, _fast_parser())
    except Exception:  # noqa: BLE001 - the reference parser decides and reports
        comments.clear()
        try:
            tree = _parse_with_comments(text, on_comment)
        except UnexpectedInput as err:
            return None, [_syntax_diag(file, text, err)]
    builder = _Build(file, text)
    try:
        items = builder.run(tree)
    except _TooDeep as deep:
        return None, [deep_diag(file, text, deep.node)]
    except VisitError as err:  # a bug in the builder, reported located rather than raised
        orig = err.orig_exc
        return None, [make("E100", f"cannot read this policy: {orig}", file, text, 1, 1)]
    header = None
    if items and isinstance(items[0], tuple):
        header = items.pop(0)
    pf = A.PolicyFile(file, None, False, None, [], [], [], [], comments=comments)
    if header:
        kind, value, pos = header
        pf.header_pos = pos
        if kind == "global":
            pf.is_global = True
        else:
            pf.owner = value
    if pf.owner is None and not pf.is_global and owner is not None:
        pf.owner = owner
        pf.owner_filled = True
    rules = []
    for item in items:
        if isinstance(item, A.Rule):
            item = _with_owner(item, pf.owner)
            rules.append(item)
            pf.rules.append(item)
        elif isinstance(item, A.GroupDecl):
            pf.groups.append(item)
        elif isinstance(item, A.ClaimsDecl):
            pf.claims.append(item)
        elif isinstance(item, A.TypeDecl):
            pf.types.append(item)
        pf.items.append(item)
    return pf, builder.diags


# Deeper nesting than this is refused: every later stage (checker, compiler,
# evaluator, formatter) walks expressions recursively and must not overflow.
MAX_DEPTH = 64


_NOT_NESTING = frozenset({"start", "rule", "when_clause", "unless_clause", "group_decl",
                          "operand"})  # parentheses add no depth


class _TooDeep(Exception):
    """An expression or list nested deeper than MAX_DEPTH (found while building)."""

    def __init__(self, node):
        super().__init__("nested too deeply")
        self.node = node


def deep_diag(file: str, text: str, node) -> Diagnostic:
    first = next(node.scan_values(lambda v: not isinstance(v, Tree)), None)
    line = getattr(first, "line", 1) or 1
    col = getattr(first, "column", 1) or 1
    return make("E116", f"this is nested more than {MAX_DEPTH} levels deep", file, text, line,
                col, "split the condition into simpler parts, or several rules")


def _with_owner(rule: A.Rule, owner: str | None) -> A.Rule:
    return A.Rule(rule.effect, rule.scopes, rule.target, rule.when, rule.unless, rule.expiry,
                  rule.pos, rule.scope_pos, owner)


def _parse_with_comments(text: str, on_comment, parser: Lark | None = None):
    """Parse with a lexer callback that records comments (for fmt)."""
    parser = parser or _comment_parser()
    # the lexer callback is shared by every parse: route it to this thread's collector
    _SINK.collect = on_comment
    try:
        return parser.parse(text)
    finally:
        _SINK.collect = None


_SINK = threading.local()


def _sink(tok: Token) -> Token:
    collect = getattr(_SINK, "collect", None)
    if collect is not None:
        collect(tok)
    return tok


@lru_cache(maxsize=1)
def _comment_parser() -> Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", keep_all_tokens=True,
                maybe_placeholders=False, lexer_callbacks={"COMMENT": _sink})


@lru_cache(maxsize=1)
def _fast_parser() -> Lark:
    """The same grammar and tables, driven by lark-cython's compiled LALR loop
    and lexer (about a third less time on large policy sets). Only a text that
    it reads without error is taken from it; any error is read again by the
    reference parser, so diagnostics never depend on it. Without the plugin,
    the reference parser."""
    if lark_cython is None:
        return _comment_parser()
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", keep_all_tokens=True,
                maybe_placeholders=False, lexer_callbacks={"COMMENT": _sink},
                _plugins=lark_cython.plugins)


def parse_or_raise(text: str, file: str = "<policy>", owner: str | None = None) -> A.PolicyFile:
    pf, diags = parse(text, file, owner)
    if pf is None or any(d.is_error for d in diags):
        raise PolicyError(diags)
    return pf
