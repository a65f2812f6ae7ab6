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

from lark import Lark, Token, Transformer, v_args
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
    return json.loads(tok)


_TS_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_timestamp(text: str) -> datetime:
    """``2027-01-01`` (midnight UTC) or ``2027-01-01T09:00:00Z`` / with an offset.
    Raises ValueError with a reason in words."""
    if _TS_DATE.match(text):
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    if "T" in text and not (text.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", text)):
        raise ValueError("a timestamp with a time needs a zone: end it with Z (UTC) or an offset like +02:00")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(timezone.utc)


def parse_duration(text: str) -> timedelta:
    m = re.fullmatch(r"(\d+)([smhdw])", text)
    if not m:
        raise ValueError("a duration is a whole number followed by s, m, h, d or w (30d, 12h, 15m)")
    return timedelta(seconds=int(m.group(1)) * DURATION_UNITS[m.group(2)])


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
        return _pos(self.file, x)

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
            d = timedelta(0)
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


def _ts_hint(e: Exception) -> str:
    msg = str(e)
    if "zone" in msg:
        return msg
    return "there is no such date or time; write YYYY-MM-DD, optionally with a time: 2027-01-01T09:00:00Z"


# ------------------------------------------------------------------ errors

_EFFECT_LIKE = {"allow", "deny", "grant", "permits", "accept", "reject", "refuse", "block",
                "require", "request", "approve"}


def _syntax_diag(file: str, text: str, err: UnexpectedInput) -> Diagnostic:
    line = getattr(err, "line", 0) or 0
    col = getattr(err, "column", 0) or 0
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        rest = text[err.pos_in_stream:]
        if ch == '"':
            return make("E101", "this string is never closed", file, text, line, col,
                        'close it with " on the same line')
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
            return make("E107", "this is not a number", file, text, line, col,
                        "numbers are written like 18, -3 or 2.5")
        if ch == "'":
            return make("E105", "strings are written with double quotes", file, text, line, col,
                        'write "text", not \'text\'')
        shown = ch if ch.strip() else repr(ch)
        expected = _expected_words(err.allowed or set())
        return make("E105", f"unexpected character {shown!s}", file, text, line, col,
                    f"expected {expected}" if expected else "")
    if isinstance(err, UnexpectedEOF):
        lines = text.splitlines() or [""]
        line = len(lines)
        col = len(lines[-1]) + 1
        return make("E106", "the file ends in the middle of a rule or declaration", file, text,
                    line, col, f"expected {_expected_words(err.expected)}")
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            return make("E106", "the file ends in the middle of a rule or declaration", file, text,
                        len(lines), len(lines[-1]) + 1, f"expected {_expected_words(err.expected)}")
        value = str(tok)
        expected = err.expected
        try:  # LALR merges lookaheads; ask the parser what it really accepts here
            expected = err.interactive_parser.accepts() or expected
        except Exception:  # noqa: BLE001 - fall back to Lark's own set
            pass
        if tok.type == "NAME" and "EFFECT" in expected and (
                value.lower() in _EFFECT_LIKE or value.lower() in EFFECTS or line_start(text, tok)):
            hint = "a rule starts with permit, forbid or ask"
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
        what = f"'{value}'"
        return make("E100", f"unexpected {what}", file, text, line, col,
                    f"expected {_expected_words(expected)}", col + max(1, len(value)))
    return make("E100", str(err).splitlines()[0], file, text, line, col)


def line_start(text: str, tok: Token) -> bool:
    """Is ``tok`` the first thing on its line (where a rule would start)?"""
    lines = text.splitlines()
    if not (0 < tok.line <= len(lines)):
        return False
    return lines[tok.line - 1][: tok.column - 1].strip() == ""


def _expected_words(expected) -> str:
    words = []
    keywords = []
    for name in sorted(expected or ()):
        if name in _WORDS:
            words.append(_WORDS[name])
            continue
        pattern = _keyword_of(name)
        if pattern:
            keywords.append(f"'{pattern}'")
        else:
            words.append(name.lower())
    items = sorted(set(keywords)) + sorted(set(words))
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
        tree = _parse_with_comments(text, on_comment)
    except UnexpectedInput as err:
        return None, [_syntax_diag(file, text, err)]
    builder = _Build(file, text)
    try:
        items = builder.transform(tree)
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


def _with_owner(rule: A.Rule, owner: str | None) -> A.Rule:
    return A.Rule(rule.effect, rule.scopes, rule.target, rule.when, rule.unless, rule.expiry,
                  rule.pos, rule.scope_pos, owner)


def _parse_with_comments(text: str, on_comment):
    """Parse with a lexer callback that records comments (for fmt)."""
    parser = _comment_parser()
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
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False, lexer_callbacks={"COMMENT": _sink})


def parse_or_raise(text: str, file: str = "<policy>", owner: str | None = None) -> A.PolicyFile:
    pf, diags = parse(text, file, owner)
    if pf is None or any(d.is_error for d in diags):
        raise PolicyError(diags)
    return pf
