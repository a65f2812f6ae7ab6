"""``uma policy fmt``: one canonical layout for policy files.

The layout (documented in docs/cli.md):

* the header (``owner "…"`` or ``global``) first, then every item in source
  order, exactly one blank line between items; the file ends with one newline;
* a rule without a condition (no ``when``, no ``unless``) stays on one line
  when that line is at most 80 columns and no full-line comment sits between
  its clauses; every other rule starts with its effect and scopes, and each clause
  (``on``, ``when``, ``unless``, ``for``/``until``) has its own line,
  indented by two spaces. A clause longer than 80 columns whose
  condition is a chain of ``and`` (or of ``or``) puts each operand on its own
  line, the operator first, indented by four spaces;
* a group list longer than 80 columns has one member per line, with a
  trailing comma;
* one space around every operator and after every comma; lists ``["a", "b"]``;
  strings in double quotes with JSON escapes; numbers without superfluous
  zeros; timestamps and durations as written;
* scope and claim names bare when they are plain names, quoted otherwise
  (and when they would read as a keyword);
* only the parentheses operator precedence needs (``or`` < ``and`` < ``not``
  < comparisons), plus those that keep the parsed tree identical (a nested
  ``a or (b or c)`` keeps its parentheses);
* comments kept: a full-line comment stays above the line that followed it
  (blank lines between comment blocks and the next item are kept, at most
  one); a comment at the end of a line stays at the end of the first output
  line made from that source line (the rule's first line for a one-line
  rule), after two spaces.

Formatting never changes meaning: :func:`format_text` re-parses its output
and refuses (``FormatError``) if the tree or the comments differ.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .diagnostics import PolicyError
from .syntax import ast as A
from .syntax import parse
from .syntax.grammar import KEYWORDS, NAME_RE
from .syntax.visitor import Visitor, descendants

WIDTH = 80
# characters str.splitlines() treats as line breaks but JSON does not escape
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class FormatError(RuntimeError):
    """The formatter would change a file's meaning (a bug): nothing is written."""


# ------------------------------------------------------------------ atoms


def keywords() -> frozenset[str]:
    """Every word of the grammar: such names are quoted where a name may be quoted."""
    return _KEYWORDS


_KEYWORDS = frozenset(KEYWORDS)


def quote(value: str) -> str:
    """A string literal: double quotes, JSON escapes."""
    out = json.dumps(value, ensure_ascii=False)
    for ch, esc in _LINE_BREAKS.items():
        out = out.replace(ch, esc)
    return out


def name_or_quoted(value: str) -> str:
    """A scope, claim or format name: bare when the grammar reads it as a name."""
    if NAME_RE.fullmatch(value) and value not in keywords():
        return value
    return quote(value)


def number_text(node: A.Literal) -> str:
    value = node.value
    if isinstance(value, bool):  # not produced by the parser; be exact anyway
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = node.text or repr(value)
    if re.fullmatch(r"-?\d+\.\d+", text):
        sign = "-" if text.startswith("-") else ""
        whole, frac = text.lstrip("-").split(".")
        return f"{sign}{int(whole)}.{frac.rstrip('0') or '0'}"
    d = Decimal(repr(value))  # a float built by hand: plain decimal notation
    return format(d, "f") if "." in format(d, "f") else format(d, "f") + ".0"


def duration_text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def timestamp_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def literal(node: A.Literal) -> str:
    k = node.kind
    if k == "string":
        return quote(node.value)
    if k == "number":
        return number_text(node)
    if k == "bool":
        return "true" if node.value else "false"
    if k == "timestamp":
        return node.text or timestamp_text(node.value)
    if k == "duration":
        return node.text or duration_text(node.value)
    if k == "list":
        return "[" + ", ".join(literal(x) for x in node.value) + "]"
    raise FormatError(f"unknown literal kind {k!r}")


# ------------------------------------------------------------------ expressions

_OR, _AND, _NOT, _CMP, _ATOM = 1, 2, 3, 4, 5


class _Level(Visitor[int]):
    """How tightly an expression binds (which parent needs it parenthesised)."""

    def visit_Or(self, node: A.Or) -> int:
        return _OR

    def visit_And(self, node: A.And) -> int:
        return _AND

    def visit_Not(self, node: A.Not) -> int:
        return _NOT

    def visit_Compare(self, node: A.Compare) -> int:
        return _CMP

    def visit_Has(self, node: A.Has) -> int:
        return _CMP

    def visit_Truthy(self, node: A.Truthy) -> int:
        return self.visit(node.operand)

    def generic_visit(self, node: Any) -> int:
        return _ATOM


class _Spell(Visitor[str]):
    """An expression in canonical spelling."""

    def visit_Or(self, node: A.Or) -> str:
        return " or ".join(operand_in(node, x) for x in node.items)

    def visit_And(self, node: A.And) -> str:
        return " and ".join(operand_in(node, x) for x in node.items)

    def visit_Not(self, node: A.Not) -> str:
        return "not " + operand_in(node, node.item)

    def visit_Compare(self, node: A.Compare) -> str:
        return f"{operand_in(node, node.left)} {node.op} {operand_in(node, node.right)}"

    def visit_Has(self, node: A.Has) -> str:
        return "has " + self.visit(node.ref)

    def visit_Truthy(self, node: A.Truthy) -> str:
        return self.visit(node.operand)

    def visit_Literal(self, node: A.Literal) -> str:
        return literal(node)

    def visit_ClaimRef(self, node: A.ClaimRef) -> str:
        if node.quoted:
            return f"claims[{quote(node.name)}]"
        return "claims." + ".".join(node.path)

    def visit_AttrRef(self, node: A.AttrRef) -> str:
        return f"{node.entity}.{node.name}"

    def visit_NowRef(self, node: A.NowRef) -> str:
        return "now"

    def visit_GroupRef(self, node: A.GroupRef) -> str:
        return node.name

    def generic_visit(self, node: Any) -> str:
        raise FormatError(f"cannot format {type(node).__name__}")


_LEVEL, _SPELL = _Level(), _Spell()


def _wrap(node: A.Expr, ok: bool) -> str:
    text = expr(node)
    return text if ok else f"({text})"


def operand_in(parent: A.Expr, child: A.Expr) -> str:
    """``child`` printed inside ``parent``, parenthesised only where needed to
    read back the same tree."""
    inner, outer = _LEVEL.visit(child), _LEVEL.visit(parent)
    # bare when the child binds more tightly than its parent, and under a not, a not
    return _wrap(child, inner > outer or inner == outer == _NOT)


def expr(node: A.Expr) -> str:
    """An expression in canonical spelling."""
    return _SPELL.visit(node)


def target(t: A.Target) -> str:
    k = t.kind
    if k == "any":
        return "any resource"
    if k == "id":
        return f"resource {quote(t.resource_id or '')}"
    if k == "type":
        return f"type {quote(t.type or '')}"
    if k == "name":
        return f"name {quote(t.name or '')}"
    if k == "name_like":
        return f"name like {quote(t.pattern or '')}"
    if k == "type_name":
        return f"type {quote(t.type or '')} name {quote(t.name or '')}"
    if k == "type_name_like":
        return f"type {quote(t.type or '')} name like {quote(t.pattern or '')}"
    raise FormatError(f"unknown target kind {k!r}")


def scopes(names: tuple[str, ...] | None) -> str:
    if names is None:
        return "any scope"
    return ", ".join(name_or_quoted(s) for s in names)


def expiry(e: A.Expiry) -> str:
    if e.kind == "for":
        return "for " + (e.text or duration_text(e.duration or timedelta(0)))
    return "until " + (e.text or timestamp_text(e.until or datetime(1970, 1, 1, tzinfo=UTC)))


def rule_one_line(rule: A.Rule) -> str:
    parts = [f"{rule.effect} {scopes(rule.scopes)} on {target(rule.target)}"]
    if rule.when is not None:
        parts.append("when " + expr(rule.when))
    if rule.unless is not None:
        parts.append("unless " + expr(rule.unless))
    if rule.expiry is not None:
        parts.append(expiry(rule.expiry))
    return " ".join(parts)


# ------------------------------------------------------------------ layout


@dataclass
class _Seg:
    """One output line, tied to the source line (``anchor``) it came from."""

    anchor: int
    indent: str
    text: str
    leading: list[str] = field(default_factory=list)  # full-line comments (and "" = blank)
    trailing: list[str] = field(default_factory=list)


@dataclass
class _Unit:
    """Something printed on one line when it fits, else on the lines ``segs``.
    It stays expanded when a full-line comment sits before one of its later
    lines: the comment then keeps its place, and formatting stays idempotent
    (the decision depends only on where the comments land, never on the
    source layout)."""

    one: str  # the one-line form, without indent
    indent: str
    segs: list[_Seg]
    can_join: bool = True

    def lines(self) -> list[_Seg]:
        return _join(self.segs, self.indent, self.one, self.can_join)


def _join(segs: list[_Seg], indent: str, one: str, can_join: bool) -> list[_Seg]:
    if len(segs) == 1 or not can_join or len(indent + one) > WIDTH or any(s.leading for s in segs[1:]):
        return segs
    first = segs[0]
    return [_Seg(first.anchor, indent, one, first.leading, [t for s in segs for t in s.trailing])]


def _points(pf: A.PolicyFile, out: list[tuple[int, int]]) -> None:
    """Every (line, column) where a node of the file's items starts or ends."""
    for node in descendants(pf):
        v = getattr(node, "pos", None)
        if v is not None and v.line:
            out.append((v.line, v.column))
            out.append((v.end_line, v.end_column))


def _span(node: Any) -> tuple[int, int]:
    pos = getattr(node, "pos", None)
    if not isinstance(pos, A.Pos) or not pos.line:
        return (0, 0)
    return (pos.line, pos.end_line)


class _Block:
    """One header or item: its lines fully expanded, and how to join them."""

    def __init__(self, units: list[_Unit], one: str | None = None):
        self.units = units
        self.one = one  # the whole item on one line, when it may be

    @property
    def segs(self) -> list[_Seg]:
        return [s for u in self.units for s in u.segs]

    def lines(self) -> list[_Seg]:
        segs = [s for u in self.units for s in u.lines()]
        if self.one is None:
            return segs
        return _join(segs, "", self.one, True)


class _Layout(Visitor[_Block]):
    """One file laid out: ``visit(item)`` → the item's :class:`_Block`."""

    def __init__(self, pf: A.PolicyFile, comments: list[tuple[int, int, str]]):
        self.pf = pf
        pts: list[tuple[int, int]] = []
        if pf.header_pos is not None:
            pts += [(pf.header_pos.line, pf.header_pos.column), (pf.header_pos.end_line, pf.header_pos.end_column)]
        _points(pf, pts)
        self.points: dict[int, int] = {}  # line -> leftmost column of a node there
        for line, col in pts:
            if line:
                self.points[line] = min(col, self.points.get(line, col))
        self.full: list[tuple[int, str]] = []
        self.trailing: list[tuple[int, str]] = []
        for line, col, text in sorted(comments):
            text = text.rstrip()
            if line in self.points and self.points[line] < col:
                self.trailing.append((line, text))
            else:
                self.full.append((line, text))

    # -------------------------------------------------------------- items
    def header(self) -> _Block | None:
        pf = self.pf
        if pf.is_global:
            text = "global"
        elif pf.owner is not None and not pf.owner_filled:
            text = f"owner {quote(pf.owner)}"
        else:
            return None
        anchor = pf.header_pos.line if pf.header_pos else 0
        return _Block([_Unit(text, "", [_Seg(anchor, "", text)])])

    def visit_ClaimsDecl(self, item: A.ClaimsDecl) -> _Block:
        names = ", ".join(name_or_quoted(n) for n in item.names)
        text = f"claims {names} from {quote(item.issuer)} as {name_or_quoted(item.format)}"
        return _Block([_Unit(text, "", [_Seg(item.pos.line, "", text)])])

    def visit_TypeDecl(self, item: A.TypeDecl) -> _Block:
        text = f"type {quote(item.type)} has scopes {scopes(item.scopes)}"
        return _Block([_Unit(text, "", [_Seg(item.pos.line, "", text)])])

    def generic_visit(self, item: Any) -> _Block:
        raise FormatError(f"cannot format {type(item).__name__}")

    def visit_GroupDecl(self, g: A.GroupDecl) -> _Block:
        one = f"group {g.name} = {literal(g.members)}"
        first, last = _span(g)
        segs = [_Seg(first, "", f"group {g.name} = [")]
        for m in g.members.value:
            segs.append(_Seg(max(m.pos.line, segs[-1].anchor), "  ", literal(m) + ","))
        segs.append(_Seg(max(last, segs[-1].anchor), "", "]"))
        return _Block([_Unit(one, "", segs)])

    def visit_Rule(self, r: A.Rule) -> _Block:
        first, _ = _span(r)
        head = f"{r.effect} {scopes(r.scopes)}"
        units = [_Unit(head, "", [_Seg(first, "", head)])]
        on = "on " + target(r.target)
        units.append(_Unit(on, "  ", [_Seg(max(r.target.pos.line, first), "  ", on)]))
        for word, cond in (("when", r.when), ("unless", r.unless)):
            if cond is not None:
                units.append(self.clause(word, cond, units[-1].segs[-1].anchor))
        if r.expiry is not None:
            text = expiry(r.expiry)
            units.append(_Unit(text, "  ", [_Seg(max(r.expiry.pos.line, units[-1].segs[-1].anchor), "  ", text)]))
        # only a rule without a condition may stand on one line
        one = rule_one_line(r) if r.when is None and r.unless is None else None
        return _Block(units, one)

    def clause(self, word: str, cond: A.Expr, prev: int) -> _Unit:
        one = f"{word} {expr(cond)}"
        first = max(_span(cond)[0], prev)
        if not isinstance(cond, (A.And, A.Or)):
            return _Unit(one, "  ", [_Seg(first, "  ", one)])
        op = "and" if isinstance(cond, A.And) else "or"
        items = cond.items
        segs = [_Seg(first, "  ", f"{word} {operand_in(cond, items[0])}")]
        for x in items[1:]:
            segs.append(_Seg(max(x.pos.line, segs[-1].anchor), "    ", f"{op} {operand_in(cond, x)}"))
        return _Unit(one, "  ", segs)

    # -------------------------------------------------------------- assembly
    def render(self) -> str:
        blocks: list[_Block] = []
        head = self.header()
        if head is not None:
            blocks.append(head)
        for item in self.pf.items:
            blocks.append(self.visit(item))
        segs = [s for b in blocks for s in b.segs]  # every line, fully expanded
        starts = {id(b.segs[0]) for b in blocks}
        tail: list[str] = []
        # full-line comments: above the first line whose source follows them
        full = list(self.full)
        for i, (line, text) in enumerate(full):
            target_seg = next((s for s in segs if s.anchor > line), None)
            nxt = full[i + 1][0] if i + 1 < len(full) else None
            dest = target_seg.leading if target_seg is not None else tail
            dest.append(text)
            # keep (one) blank line after a comment outside items when the source had one
            limit = target_seg.anchor if target_seg is not None else None
            follow: int | None = nxt if nxt is not None and (limit is None or nxt < limit) else limit
            if (
                (target_seg is None or id(target_seg) in starts)
                and follow is not None
                and follow - line > 1
                and not self._inside_item(line)
            ):
                dest.append("")
        for line, text in self.trailing:
            # the first output line of the last source line at or before the comment's
            host = None
            for s in segs:
                if s.anchor > line:
                    break
                if host is None or s.anchor > host.anchor:
                    host = s
            (host or segs[0]).trailing.append(text)

        out: list[str] = []
        for b in blocks:
            if out:
                out.append("")
            for s in b.lines():
                for c in s.leading:
                    out.append(s.indent + c if c else "")
                text = s.indent + s.text
                if s.trailing:
                    text += "  " + " ".join(s.trailing)
                out.append(text)
        if tail:
            if out:
                out.append("")
            out.extend(tail)
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out) + "\n" if out else ""

    def _inside_item(self, line: int) -> bool:
        for item in self.pf.items:
            first, last = _span(item)
            if first < line < last:
                return True
        return False


def format_file(pf: A.PolicyFile, comments: list[tuple[int, int, str]] | None = None) -> str:
    """A parsed policy file (and its comments, ``pf.comments`` by default) in canonical layout."""
    return _Layout(pf, pf.comments if comments is None else comments).render()


def same_meaning(a: A.PolicyFile, b: A.PolicyFile) -> bool:
    """Equal trees ignoring positions (the AST dataclasses compare without them)."""
    return (a.owner, a.is_global, a.owner_filled, a.items) == (b.owner, b.is_global, b.owner_filled, b.items)


def format_text(text: str, name: str = "<stdin>") -> str:
    """Policy text → canonical text. Raises :class:`PolicyError` when the text
    has a syntax error (nothing is formatted) and :class:`FormatError` if the
    result would not read back as the same policy."""
    pf, diags = parse(text, name)
    if pf is None or any(d.is_error for d in diags):
        raise PolicyError(diags)
    out = format_file(pf, pf.comments)
    again, diags2 = parse(out, name)
    if again is None or any(d.is_error for d in diags2) or not same_meaning(pf, again):
        raise FormatError(f"{name}: formatting would change the meaning of this file; left unchanged")
    if _comment_words(pf) != _comment_words(again):
        raise FormatError(f"{name}: formatting would lose a comment; left unchanged")
    return out


def _comment_words(pf: A.PolicyFile) -> list[str]:
    """The words of all comments (trailing comments of one line may merge into one)."""
    return sorted(w for c in pf.comments for w in c[2].split())
