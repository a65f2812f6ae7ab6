"""Text → AST, with located syntax errors in a policy author's words.

The grammar lives in ``grammar.lark`` (LALR, contextual lexer). The parser's
callbacks (``_Build``) make the typed nodes of :mod:`policy_lang.syntax.ast`
while it reads, with no parse tree in between; literal problems (a timestamp
that is no date, a bad escape) become diagnostics instead of exceptions, so one
pass reports them all.

One reader, two backends behind :func:`parse` (``backend=``), both driving an
LALR parser over the same grammar and tables with the same callbacks:

- ``"lark"``: Lark's own parser and contextual lexer. The reference: it decides
  what every text means, and every syntax error is reported from it.
- ``"compiled"`` (the default): lark-cython's compiled LALR loop, fed by a
  one-pass lexer (``_FastReader``). A whole load of 10,000 rules takes about
  two thirds of the time it takes with ``"lark"`` (``bench/reader.py``). It
  takes a text only when the parser accepts every token it made; any other
  text (an error, a keyword used as a name) is read by ``"lark"``, and each
  such re-reading is counted (:func:`rereads`) and logged (DEBUG, logger
  ``policy_lang.syntax``). ``tests/policy_lang/test_reader_backends.py``
  shows, over generated policies, that the two give the same AST, comments
  and diagnostics.

Keywords are whole words: a keyword run together with the next letters
(``permitview``) is an error (E120) naming the word, in both backends.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from itertools import chain
from typing import Any, Literal, cast

import lark_cython
from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from ..diagnostics import Diagnostic, PolicyError, make
from . import ast as A
from .errors import keyword_as_group_diagnostic, run_together_diagnostic, syntax_diagnostic
from .grammar import GRAMMAR, KEYWORDS, NAME_CHARS
from .visitor import children

log = logging.getLogger("policy_lang.syntax")

Backend = Literal["compiled", "lark"]
BACKENDS: tuple[Backend, ...] = ("compiled", "lark")

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _unquote(tok: str) -> str:
    """A STRING token's value (JSON escapes). Most strings have no escape and no
    control character: their value is what stands between the quotes (without
    this short cut, json.loads for every string: 4 to 7% more on a whole load
    of 10,000 rules, two runs)."""
    text = str(tok)
    if _NEEDS_JSON(text) is None:
        return text[1:-1]
    value: str = json.loads(text)
    return value


_NEEDS_JSON = re.compile(r"[\\\x00-\x1f]").search


_TS_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_timestamp(text: str) -> datetime:
    """``2027-01-01`` (midnight UTC) or ``2027-01-01T09:00:00Z`` / with an offset.
    Raises ValueError with a reason in words."""
    if _TS_DATE.match(text):
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    if "T" in text and not (text.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", text)):
        raise ValueError("a timestamp with a time needs a zone: end it with Z (UTC) or an offset like +02:00")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    try:
        return value.astimezone(UTC)
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


class _Part:
    """An intermediate result (a scope list, a when clause, …) with its span."""

    __slots__ = ("value", "span")

    def __init__(self, value: Any, span: A.Span):
        self.value = value
        self.span = span


class _Paren(_Part):
    """``( expr )``: the expression keeps its own span; the parentheses widen its parent's."""

    __slots__ = ()


_CTX = threading.local()  # the file being read by this thread: name, text, owner, diagnostics


# A node's span runs from the start of its first child to the end of its last,
# keywords included (what Lark's ``propagate_positions`` would give). Each rule
# knows which of the two are tokens and which nodes (or parts): one helper per case.


def _tt(first: Any, last: Any) -> A.Span:
    return (_CTX.file, first.line, first.column, last.end_line, last.end_column)


def _tn(first: Any, last: Any) -> A.Span:
    _, _, _, end_line, end_column = last.span
    return (_CTX.file, first.line, first.column, end_line, end_column)


def _nn(first: Any, last: Any) -> A.Span:
    _, line, column, _, _ = first.span
    _, _, _, end_line, end_column = last.span
    return (_CTX.file, line, column, end_line, end_column)


def _tok_span(tok: Any) -> A.Span:
    return (_CTX.file, tok.line, tok.column, tok.end_line, tok.end_column)


def _bare(x: Any) -> Any:
    """An operand without its parentheses."""
    return x.value if x.__class__ is _Paren else x


def _binop(op: str, ch: list[Any]) -> A.Compare:
    """``left OP right`` (OP of one or two words)."""
    return A.Compare(op, _bare(ch[0]), _bare(ch[-1]), _nn(ch[0], ch[-1]))


def _diag(code: str, msg: str, tok: Any, hint: str = "") -> None:
    _CTX.diags.append(
        make(code, msg, _CTX.file, _CTX.text, tok.line, tok.column, hint, getattr(tok, "end_column", 0) or 0)
    )


def _string(tok: Any) -> str:
    try:
        return _unquote(tok.value)
    except ValueError:
        _diag(
            "E109",
            "this string has an escape sequence that is not allowed",
            tok,
            r"use \" for a quote, \\ for a backslash, \n for a new line, \uXXXX for others",
        )
        return str(tok.value)[1:-1]


class _Build:
    """The parser's callbacks: each grammar rule's children (keywords included, since
    the parser keeps every token) → an AST node, built while parsing, with no parse
    tree in between. Positions come from the first and last child. Per-file state
    (name, text, owner, diagnostics) is in ``_CTX``, so one parser serves every thread."""

    # ------------------------------------------------------------ file level
    def start(self, ch: list[Any]) -> Any:
        return ch

    def owner_header(self, ch: list[Any]) -> Any:
        owner = _string(ch[1])
        _CTX.owner = owner
        return ("owner", owner, _tt(ch[0], ch[1]))

    def global_header(self, ch: list[Any]) -> Any:
        _CTX.owner = None
        return ("global", None, _tok_span(ch[0]))

    def group_decl(self, ch: list[Any]) -> Any:  # group NAME = [ … ]
        return A.GroupDecl(ch[1].value, ch[3], _tn(ch[0], ch[3]))

    def claim_name(self, ch: list[Any]) -> Any:
        tok = ch[0]
        if tok.type == "STRING":
            return _Part((_string(tok), True), _tok_span(tok))
        return _Part((tok.value, False), _tok_span(tok))

    def token_format(self, ch: list[Any]) -> Any:
        tok = ch[0]
        if tok.type == "STRING":
            return _Part((_string(tok), True), _tok_span(tok))
        return _Part((tok.value, False), _tok_span(tok))

    def claims_decl(self, ch: list[Any]) -> Any:  # claims a, b from "issuer" as format
        names = [c.value for c in ch[1:-4:2]]
        fmt = ch[-1].value
        return A.ClaimsDecl(
            tuple(n for n, _ in names), _string(ch[-3]), fmt[0], _tn(ch[0], ch[-1]), tuple(q for _, q in names), fmt[1]
        )

    def scope_name(self, ch: list[Any]) -> Any:
        tok = ch[0]
        value = _string(tok) if tok.type == "STRING" else tok.value
        return _Part(value, _tok_span(tok))

    def type_decl(self, ch: list[Any]) -> Any:  # type "t" has scopes a, b
        return A.TypeDecl(_string(ch[1]), tuple(s.value for s in ch[4::2]), _tn(ch[0], ch[-1]))

    # ------------------------------------------------------------ rules
    def rule(self, ch: list[Any]) -> Any:
        effect_tok, scopes, _on, target, *rest = ch
        when = unless = expiry = None
        for part in rest:
            if part.__class__ is A.Expiry:
                expiry = part
            elif part.value[0] == "when":
                when = part.value[1]
            else:
                unless = part.value[1]
        names, positions = scopes.value
        return A.Rule(
            effect_tok.value, names, target, when, unless, expiry, _tn(effect_tok, ch[-1]), positions, _CTX.owner
        )

    def any_scope(self, ch: list[Any]) -> Any:
        return _Part((None, ()), _tt(ch[0], ch[1]))

    def scope_list(self, ch: list[Any]) -> Any:
        items = ch[::2]
        return _Part((tuple(s.value for s in items), tuple(s.span for s in items)), _nn(ch[0], ch[-1]))

    def target_any(self, ch: list[Any]) -> Any:
        return A.Target("any", span=_tt(ch[0], ch[1]))

    def target_id(self, ch: list[Any]) -> Any:
        return A.Target("id", resource_id=_string(ch[1]), span=_tt(ch[0], ch[1]))

    def target_type(self, ch: list[Any]) -> Any:
        type_ = _string(ch[1])
        if len(ch) == 2:
            return A.Target("type", type=type_, span=_tt(ch[0], ch[1]))
        kind, value = ch[2].value
        if kind == "name":
            return A.Target("type_name", type=type_, name=value, span=_tn(ch[0], ch[2]))
        return A.Target("type_name_like", type=type_, pattern=value, span=_tn(ch[0], ch[2]))

    def target_name(self, ch: list[Any]) -> Any:
        kind, value = ch[0].value
        if kind == "name":
            return A.Target("name", name=value, span=ch[0].span)
        return A.Target("name_like", pattern=value, span=ch[0].span)

    def name_exact(self, ch: list[Any]) -> Any:
        return _Part(("name", _string(ch[1])), _tt(ch[0], ch[1]))

    def name_like(self, ch: list[Any]) -> Any:
        return _Part(("like", _string(ch[2])), _tt(ch[0], ch[2]))

    def when_clause(self, ch: list[Any]) -> Any:
        return _Part(("when", _bare(ch[1])), _tn(ch[0], ch[1]))

    def unless_clause(self, ch: list[Any]) -> Any:
        return _Part(("unless", _bare(ch[1])), _tn(ch[0], ch[1]))

    def expiry_for(self, ch: list[Any]) -> Any:
        tok = ch[1]
        try:
            d = parse_duration(tok.value)
        except ValueError as e:
            _diag("E104", f"'{tok.value}' is not a duration", tok, str(e))
            d = None  # not a zero duration: no second error (E214) for the same mistake
        return A.Expiry("for", d, None, tok.value, _tt(ch[0], tok))

    def expiry_until(self, ch: list[Any]) -> Any:
        tok = ch[1]
        try:
            t = parse_timestamp(tok.value)
        except ValueError as e:
            _diag("E103", f"'{tok.value}' is not a valid timestamp", tok, _ts_hint(e))
            t = datetime(1970, 1, 1, tzinfo=UTC)
        return A.Expiry("until", None, t, tok.value, _tt(ch[0], tok))

    # ------------------------------------------------------------ expressions
    def operand(self, ch: list[Any]) -> Any:  # ( expr ): the expression, with the parentheses' span
        return _Paren(_bare(ch[1]), _tt(ch[0], ch[2]))

    def or_(self, ch: list[Any]) -> Any:
        return A.Or(tuple(_bare(c) for c in ch[::2]), _nn(ch[0], ch[-1]))

    def and_(self, ch: list[Any]) -> Any:
        return A.And(tuple(_bare(c) for c in ch[::2]), _nn(ch[0], ch[-1]))

    def not_(self, ch: list[Any]) -> Any:
        return A.Not(_bare(ch[1]), _tn(ch[0], ch[1]))

    def compare(self, ch: list[Any]) -> Any:
        left, op, right = ch
        return A.Compare(op.value, _bare(left), _bare(right), _nn(left, right))

    def in_(self, ch: list[Any]) -> A.Compare:
        return _binop("in", ch)

    def not_in(self, ch: list[Any]) -> A.Compare:
        return _binop("not in", ch)

    def contains(self, ch: list[Any]) -> A.Compare:
        return _binop("contains", ch)

    def starts_with(self, ch: list[Any]) -> A.Compare:
        return _binop("starts with", ch)

    def ends_with(self, ch: list[Any]) -> A.Compare:
        return _binop("ends with", ch)

    def like(self, ch: list[Any]) -> A.Compare:
        return _binop("like", ch)

    def has(self, ch: list[Any]) -> Any:
        return A.Has(ch[1], _tn(ch[0], ch[1]))

    def claim_path(self, ch: list[Any]) -> Any:  # one token: claims.a.b
        tok = ch[0]
        names = tuple(tok.value.split(".")[1:])
        return A.ClaimRef(names[0], names, False, _tok_span(tok))

    def claim_ref(self, ch: list[Any]) -> Any:  # claims . a . b, spaced out
        names = tuple(t.value for t in ch[2::2])
        return A.ClaimRef(names[0], names, False, _tt(ch[0], ch[-1]))

    def claim_ref_quoted(self, ch: list[Any]) -> Any:  # claims["…"]
        name = _string(ch[2])
        return A.ClaimRef(name, (name,), True, _tt(ch[0], ch[3]))

    def client_attr(self, ch: list[Any]) -> Any:  # one token: client.id
        return A.AttrRef("client", ch[0].value[7:], _tok_span(ch[0]))

    def client_ref(self, ch: list[Any]) -> Any:
        return A.AttrRef("client", ch[2].value, _tt(ch[0], ch[2]))

    def resource_attr(self, ch: list[Any]) -> Any:  # one token: resource.type
        return A.AttrRef("resource", ch[0].value[9:], _tok_span(ch[0]))

    def resource_ref(self, ch: list[Any]) -> Any:
        return A.AttrRef("resource", ch[2].value, _tt(ch[0], ch[2]))

    def now_ref(self, ch: list[Any]) -> Any:
        return A.NowRef(_tok_span(ch[0]))

    def group_ref(self, ch: list[Any]) -> Any:
        tok = ch[0]
        if tok.value in KEYWORDS:  # no group has a keyword's name: say what went wrong there
            raise KeywordAsName(tok.value, tok.line, tok.column, tok.start_pos)
        return A.GroupRef(tok.value, _tok_span(tok))

    def string(self, ch: list[Any]) -> Any:
        tok = ch[0]
        return A.Literal(_string(tok), "string", _tok_span(tok), tok.value)

    def number(self, ch: list[Any]) -> Any:
        text = ch[0].value
        value = float(text) if "." in text else int(text)
        return A.Literal(value, "number", _tok_span(ch[0]), text)

    def true(self, ch: list[Any]) -> Any:
        return A.Literal(True, "bool", _tok_span(ch[0]), "true")

    def false(self, ch: list[Any]) -> Any:
        return A.Literal(False, "bool", _tok_span(ch[0]), "false")

    def timestamp(self, ch: list[Any]) -> Any:
        tok = ch[0]
        try:
            value = parse_timestamp(tok.value)
        except ValueError as e:
            _diag("E103", f"'{tok.value}' is not a valid timestamp", tok, _ts_hint(e))
            value = datetime(1970, 1, 1, tzinfo=UTC)
        return A.Literal(value, "timestamp", _tok_span(tok), tok.value)

    def duration(self, ch: list[Any]) -> Any:
        tok = ch[0]
        try:
            value = parse_duration(tok.value)
        except ValueError as e:
            _diag("E104", f"'{tok.value}' is not a duration", tok, str(e))
            value = timedelta(0)
        return A.Literal(value, "duration", _tok_span(tok), tok.value)

    def list_lit(self, ch: list[Any]) -> Any:
        return A.Literal(tuple(c for c in ch if c.__class__ is A.Literal), "list", _tt(ch[0], ch[-1]))


def _ts_hint(e: Exception) -> str:
    msg = str(e)
    if "zone" in msg or "outside the years" in msg:
        return msg
    return "there is no such date or time; write YYYY-MM-DD, optionally with a time: 2027-01-01T09:00:00Z"


# ------------------------------------------------------------------ entry point


def parse(
    text: str, file: str = "<policy>", owner: str | None = None, *, backend: Backend = "compiled"
) -> tuple[A.PolicyFile | None, list[Diagnostic]]:
    """Parse one policy text. Returns ``(PolicyFile or None, diagnostics)``;
    never raises for bad text. ``owner`` is the uploader of an owner upload:
    it fills in a missing header; the checker refuses a header naming anyone else.
    ``backend`` picks the LALR loop (module docstring); both read alike."""
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        col = i - (text.rfind("\n", 0, i) + 1) + 1
        return None, [make("E105", "unexpected NUL character", file, text, line, col)]
    if backend == "compiled":
        reader: _FastReader | Lark = _fast_parser()
    elif backend == "lark":
        reader = _comment_parser()
    else:
        raise ValueError(f"no such reader backend: {backend!r} (one of {', '.join(BACKENDS)})")
    ctx = _CTX
    try:
        try:
            items = _read(text, file, owner, reader)
        except UnexpectedInput as err:
            return None, [syntax_diagnostic(file, text, err)]
        except RunTogether as err:
            return None, [run_together_diagnostic(file, text, err.line, err.column, err.keyword, err.word)]
        except KeywordAsName as err:
            return None, [keyword_as_group_diagnostic(file, text, err.word, err.line, err.column, err.start)]
        comments, diags = ctx.comments, ctx.diags
    finally:
        ctx.file = ctx.text = ctx.owner = ctx.comments = ctx.diags = None
    deep = _too_deep(items)
    if deep is not None:
        return None, [
            make(
                "E116",
                f"this is nested more than {MAX_DEPTH} levels deep",
                file,
                text,
                deep.line,
                deep.column,
                "split the condition into simpler parts, or several rules",
            )
        ]
    header = None
    if items and items[0].__class__ is tuple:
        header = items.pop(0)
    pf = A.PolicyFile(file, None, False, None, [], [], [], items, comments=comments)
    if header:
        kind, value, span = header
        pf.header_pos = A.Pos(*span)
        if kind == "global":
            pf.is_global = True
        else:
            pf.owner = value
    if pf.owner is None and not pf.is_global and owner is not None:
        pf.owner = owner
        pf.owner_filled = True
    rules, groups, claims, types = pf.rules, pf.groups, pf.claims, pf.types
    for item in items:
        cls = item.__class__
        if cls is A.Rule:
            rules.append(item)
        elif cls is A.GroupDecl:
            groups.append(item)
        elif cls is A.ClaimsDecl:
            claims.append(item)
        else:
            types.append(item)
    return pf, diags


def parse_or_raise(text: str, file: str = "<policy>", owner: str | None = None) -> A.PolicyFile:
    pf, diags = parse(text, file, owner)
    if pf is None or any(d.is_error for d in diags):
        raise PolicyError(diags)
    return pf


def _read(text: str, file: str, owner: str | None, reader: _FastReader | Lark) -> list[Any]:
    """The file's items (header first), built by ``_Build`` while ``reader`` reads."""
    ctx = _CTX
    ctx.file, ctx.text, ctx.owner, ctx.comments, ctx.diags = file, text, owner, [], []
    return cast(list[Any], reader.parse(text))


# Deeper nesting than this is refused: every later stage (checker, compiler,
# evaluator, formatter) walks expressions recursively and must not overflow.
MAX_DEPTH = 64


def _too_deep(items: list[Any]) -> A.Pos | None:
    """Where the first node nested deeper than MAX_DEPTH starts, if any.

    Depth counts each expression node and each list (parentheses add none); a
    condition's outermost node is at depth 1. The nodes are visited in reading
    order, depth first, without recursion (one loop: this walks every condition
    of every file a load reads)."""
    roots: list[A.Expr] = []
    for item in items:
        cls = item.__class__
        if cls is A.Rule:
            if item.when is not None:
                roots.append(item.when)
            if item.unless is not None:
                roots.append(item.unless)
        elif cls is A.GroupDecl:
            roots.append(item.members)
    stack = [(root, 1) for root in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node.pos
        below = children(node)
        if below:
            depth += 1
            for child in reversed(below):
                stack.append((child, depth))
    return None


# ------------------------------------------------------------------ whole words


class RunTogether(Exception):
    """A keyword run together with the letters after it (``permitview``): raised
    by the reference lexer, reported as E120."""

    def __init__(self, keyword: str, word: str, line: int, column: int):
        super().__init__(f"{word!r} at {line}:{column}")
        self.keyword, self.word, self.line, self.column = keyword, word, line, column


class KeywordAsName(Exception):
    """A keyword the parser read as a group's name, where a condition's operand may stand
    (``claims.a == 1 and and``, ``when when``): reported by
    :func:`~policy_lang.syntax.errors.keyword_as_group_diagnostic` (E121 for a doubled keyword)."""

    def __init__(self, word: str, line: int, column: int, start: int):
        super().__init__(f"{word!r} at {line}:{column}")
        self.word, self.line, self.column, self.start = word, line, column, start


def _whole_word(tok: Token) -> Token:
    """The reference lexer's callback for every keyword terminal: the keyword must
    not be followed by a character that continues a name. (Lark's contextual lexer
    matches a keyword on its own where the parser accepts no name, so it read
    ``permitview`` as ``permit view``; the one-pass lexer reads whole words.)"""
    text = _CTX.text
    end = tok.end_pos
    if end is not None and text is not None and end < len(text):
        tail = NAME_CHARS.match(text, end)
        if tail is not None and tail.end() > end:
            raise RunTogether(str(tok), str(tok) + tail.group(0), tok.line or 1, tok.column or 1)
    return tok


def _on_comment(tok: Token) -> None:
    """The lexer's callback for comments (kept for fmt), into this thread's file."""
    comments = getattr(_CTX, "comments", None)
    if comments is not None:
        comments.append((tok.line, tok.column, tok.value))


def _lark(**extra: Any) -> Lark:
    callbacks: dict[str, Callable[[Token], Any]] = dict.fromkeys(set(KEYWORDS.values()), _whole_word)
    callbacks["COMMENT"] = _on_comment
    return Lark(
        GRAMMAR,
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        maybe_placeholders=False,
        lexer_callbacks=callbacks,
        transformer=_Build(),
        **extra,
    )


# ------------------------------------------------------------------ the two backends


@lru_cache(maxsize=1)
def _comment_parser() -> Lark:
    """The ``"lark"`` backend: Lark's own LALR loop and contextual lexer. It reads
    every text that the compiled one refuses, and its errors are the ones reported."""
    return _lark()


@lru_cache(maxsize=1)
def _fast_parser() -> _FastReader:
    """The ``"compiled"`` backend: the same grammar and tables, driven by
    lark-cython's compiled LALR loop (a required dependency: no silent
    substitute) and fed by ``_FastReader``'s one-pass lexer."""
    fast = _lark(_plugins=lark_cython.plugins)
    _lean_tables(fast)
    return _FastReader(fast)


_REREADS_LOCK = threading.Lock()
_rereads = 0


def rereads() -> int:
    """How many texts the compiled backend handed to the reference one (in this process)."""
    return _rereads


def _count_reread(text: str, why: Exception) -> None:
    global _rereads
    with _REREADS_LOCK:
        _rereads += 1
    where = f" at {why.line}:{why.column}" if isinstance(why, UnexpectedInput) else ""
    log.debug("compiled reader: %s refused%s (%s); read again by Lark's reader", _CTX.file, where, type(why).__name__)


class _LeanOrigin:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _LeanRule:
    """What the LALR loop reads of a grammar rule on each reduction, in plain objects:
    Lark's own ``Rule`` compares in Python (its loop asserts ``rule != state`` each
    time) and names its left side with a ``str`` subclass, whose lookups compare in
    Python too. Pays: without it a whole load takes 1.10x as long at 10,000 rules
    and 1.30x on the shipped files (bench/reader.py, "compiled, Lark's rule objects")."""

    __slots__ = ("origin", "expansion")

    def __init__(self, rule: Any):
        self.origin = _LeanOrigin(str(rule.origin.name))
        self.expansion = tuple(rule.expansion)


def _lean_tables(fast: Lark) -> None:
    """Swap the compiled parser's rules for ``_LeanRule`` (same tables, same callbacks)."""
    from lark.grammar import Rule

    lalr = fast.parser.parser
    states = lalr._parse_table.states
    lean: dict[Rule, _LeanRule] = {}
    for state, actions in list(states.items()):
        new = {}
        for name, (action, arg) in actions.items():
            if isinstance(arg, Rule):
                arg = lean.setdefault(arg, _LeanRule(arg))
            new[str(name)] = (action, arg)
        states[state] = new
    callbacks = lalr.parser_conf.callbacks  # the parser holds this very dict: change it in place
    entries = list(callbacks.items())
    callbacks.clear()
    for rule, callback in entries:
        callbacks[lean.get(rule, rule) if isinstance(rule, Rule) else rule] = callback


# ------------------------------------------------------------ the compiled reader
#
# lark-cython's LALR loop is fast; its lexer is not (about half of all parsing
# work: one call chain, one regular-expression union and one token object per
# match, blanks included). ``_FastReader`` lexes the whole text in one pass with
# one expression and hands the tokens to that loop. Lark's contextual lexer picks,
# in each parser state, the first terminal (in its priority order) that matches
# among the terminals the state accepts. The one-pass lexer picks the first in
# the same order among all terminals, reading a whole word as its keyword. So
# wherever the parser accepts the token this lexer made, the contextual lexer
# would have made the same token (its candidates are a subset, in the same
# order); where the parser does not accept it (a keyword used as a name, words
# run together, a stray character), the text is read again by the reference
# backend, which decides and reports. ``_keyword_conflicts`` checks the one
# assumption on keywords that this needs, when the reader is built.


class _TokenFeed:
    """What lark-cython's loop asks of a lexer: ``next_token(parser_state)``."""

    __slots__ = ("next_token",)

    def __init__(self, tokens: list[Any]):
        # next(iterator, parser_state): C calls only; the parser state is the unused
        # default, and the end of the tokens raises EOFError, as the loop expects
        # (a Python method per token instead: 6 to 15% more on a whole load of
        # 10,000 rules, two runs)
        self.next_token = partial(next, chain(tokens, _END_OF_TEXT))


class _EndOfText:
    """An iterable whose iteration raises EOFError: how the loop learns that the text has ended."""

    def __iter__(self) -> Iterator[Any]:
        raise EOFError


_END_OF_TEXT = _EndOfText()


def _sort_key(t: Any) -> tuple[int, int, int, str]:
    """Lark's own order of terminals in a lexer (highest priority first, then widest)."""
    return (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name)


class _FastReader:
    """The compiled LALR loop of ``fast`` fed by a one-pass lexer over the same terminals."""

    def __init__(self, fast: Lark):
        self.lark = fast
        self._parser = fast.parser.parser.parser  # lark-cython's _Parser
        conf = fast.lexer_conf
        terms = sorted(conf.terminals, key=_sort_key)
        by_name = {t.name: t for t in terms}
        self.keywords: dict[str, str] = dict(KEYWORDS)
        alternatives = []
        for t in terms:
            if t.name in conf.ignore and t.name != "COMMENT":
                continue  # blanks: skipped before each token
            if t.name in self.keywords.values():
                if t.priority > by_name["NAME"].priority:
                    raise ValueError(f"keyword terminal {t.name} outranks NAME")
                continue  # read as NAME, then looked up
            # the group that names the terminal comes after it: an alternative that
            # starts with a plain character is skipped at once when that character
            # is not there (a group first would be entered and left each time)
            alternatives.append(f"(?:{t.pattern.to_regexp()})(?P<{t.name}>)")
        blanks = "|".join(t.pattern.to_regexp() for t in terms if t.name in conf.ignore and t.name != "COMMENT")
        # Read line by line (no token spans lines: strings and comments stop at a
        # new line). One match per token: the blanks before it (possessive: a
        # character that starts no token costs one try, not one per way to split
        # them), an empty group where the token starts, then the end of the line
        # (no name), or the token, or a character that starts none (BAD), so that
        # finditer never skips a character.
        self._finditer = re.compile(f"(?:{blanks})*+()(?:\\Z|{'|'.join(alternatives)}|[\\s\\S](?P<BAD>))").finditer
        _keyword_conflicts(fast, self.keywords)

    def tokens(self, text: str) -> list[Any]:
        """Every token of ``text`` (comments kept for fmt), or ValueError at a character
        that starts none."""
        finditer, keywords, new = self._finditer, self.keywords, lark_cython.Token
        comments = _CTX.comments
        out: list[Any] = []
        append = out.append
        offset = 0
        for number, line in enumerate(text.split("\n"), 1):
            for m in finditer(line):
                kind = m.lastgroup
                if kind is None:
                    break  # the end of the line
                start = m.end(1)
                end = m.end()
                value = line[start:end]
                if kind == "NAME":
                    kind = keywords.get(value, "NAME")
                elif kind == "COMMENT":
                    comments.append((number, start + 1, value))
                    continue
                elif kind == "BAD":
                    raise ValueError(f"no terminal starts with {value!r}")
                append(new(kind, value, offset + start, number, start + 1, number, end + 1, offset + end))
            offset += len(line) + 1
        return out

    def one_pass(self, text: str) -> Any:
        """The items of ``text`` read from the one-pass lexer's tokens (raises where
        the parser does not accept one of them)."""
        return self._parser.parse(_TokenFeed(self.tokens(text)), "start")

    def parse(self, text: str) -> Any:
        ctx = _CTX
        owner = ctx.owner
        try:
            return self.one_pass(text)
        except (UnexpectedInput, ValueError) as why:
            _count_reread(text, why)
            ctx.owner, ctx.comments, ctx.diags = owner, [], []
            return _comment_parser().parse(text)


def _keyword_conflicts(fast: Lark, keywords: dict[str, str]) -> None:
    """The one-pass lexer reads a word as its keyword; the contextual lexer reads it
    as NAME in a state that accepts NAME, turning it into a keyword only if that
    keyword is a plain string Lark folds into NAME. A state accepting NAME and a
    keyword that is not such a string (``EFFECT``) would read differently: refuse."""
    from lark.lexer import PatternStr

    regex_keywords = {name for name in keywords.values() if not isinstance(fast.get_terminal(name).pattern, PatternStr)}
    for actions in fast.parser.parser._parse_table.states.values():
        if "NAME" in actions and regex_keywords & set(map(str, actions)):
            raise ValueError("a parser state accepts a name and a keyword that is not a plain string")
