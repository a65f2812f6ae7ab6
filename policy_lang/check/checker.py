"""Static validation: parsed policy files → located diagnostics.

The checker runs after the parser, over every file of a policy set at once,
because some mistakes only show across files (two files of one owner that
declare the same claim differently, a global forbid that shadows an owner's
permit). Each diagnostic has a stable code from :data:`diagnostics.CODES`,
points at the exact span of text, and says what is wrong and what to write
instead in a policy author's words.

Static kinds: literals have their kind; ``now`` is a timestamp;
``resource.id|name|type|owner|description`` and ``client.id`` are strings;
``resource.scopes`` and groups are lists; a parenthesised condition is a
boolean. Claims and other client metadata have no static kind: comparing them
with anything is fine here (a mismatch at run time is reported by the engine).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..diagnostics import Diagnostic, sort_diagnostics
from ..syntax import ast as A
from ..syntax.grammar import KEYWORDS
from ..syntax.visitor import Visitor, walk
from ..values import RESOURCE_ATTRS, apply_op, format_uri, glob, literal_value

# Words of the language: a group named after one of them cannot be read back
# (``claims``, ``true``, ``now`` start values) or reads as something else.
RESERVED = frozenset(KEYWORDS)

STRING, NUMBER, BOOL, TIMESTAMP, DURATION, LIST = ("string", "number", "bool", "timestamp", "duration", "list")
KIND_WORDS = {
    STRING: "a string",
    NUMBER: "a number",
    BOOL: "true or false",
    TIMESTAMP: "a timestamp",
    DURATION: "a duration",
    LIST: "a list",
}
PLURALS = {
    STRING: "strings",
    NUMBER: "numbers",
    BOOL: "true/false values",
    TIMESTAMP: "timestamps",
    DURATION: "durations",
    LIST: "lists",
}
ORDERED = (NUMBER, STRING, TIMESTAMP, DURATION)
ORDER_OPS = ("<", "<=", ">", ">=")
CLIENT_STRINGS = ("id",)
FORMAT_NAMES = ("id_token", "jwt")

GLOBAL_KEY = ""  # owner key of global files

_CONDITIONS = (A.And, A.Or, A.Not, A.Compare, A.Has, A.Truthy)
_REFERENCES = (A.ClaimRef, A.AttrRef, A.NowRef)


class _Refs:
    """What the checks read from one condition, gathered in one walk (in
    :func:`walk` order): its claim references, and the nodes the rule check
    looks at (group references, ``resource.…`` attributes, list literals)."""

    __slots__ = ("claims", "marks")

    def __init__(self, node: A.Expr | None) -> None:
        self.claims: list[A.ClaimRef] = []
        self.marks: list[A.GroupRef | A.AttrRef | A.Literal] = []
        for n in walk(node):
            if isinstance(n, A.ClaimRef):
                self.claims.append(n)
            elif (
                isinstance(n, A.GroupRef)
                or (isinstance(n, A.AttrRef) and n.entity == "resource")
                or (isinstance(n, A.Literal) and n.kind == LIST)
            ):
                self.marks.append(n)


_NO_REFS = _Refs(None)


class _RuleRefs:
    """A rule's ``when`` and ``unless`` :class:`_Refs`."""

    __slots__ = ("when", "unless")

    def __init__(self, rule: A.Rule) -> None:
        self.when = _Refs(rule.when) if rule.when is not None else _NO_REFS
        self.unless = _Refs(rule.unless) if rule.unless is not None else _NO_REFS

    def groups(self) -> list[str]:
        """The names of the groups the conditions read (sorted, once each)."""
        return sorted({n.name for refs in (self.when, self.unless) for n in refs.marks if type(n) is A.GroupRef})


# ------------------------------------------------------------------ source access


class _Src:
    """One file's text, for quoting lines and finding words inside a span."""

    def __init__(self, pf: A.PolicyFile, text: str | None):
        self.pf = pf
        self.file = pf.name
        self.text = text
        self.lines = text.split("\n") if text is not None else []
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        """The offset of each line in the text (computed when first needed)."""
        if self._starts is None:
            starts = [0]
            for ln in self.lines[:-1]:
                starts.append(starts[-1] + len(ln) + 1)
            self._starts = starts
        return self._starts

    def diag(self, code: str, msg: str, line: int, col: int, end_col: int = 0, hint: str = "") -> Diagnostic:
        # as diagnostics.make, quoting from the lines split once per file
        quoted = self.lines[line - 1].rstrip("\r") if 0 < line <= len(self.lines) else ""
        return Diagnostic(code, msg, self.file, line, col, quoted, hint, end_col)

    def at(self, code: str, msg: str, pos: A.Pos | None, hint: str = "") -> Diagnostic:
        if pos is None or pos.line <= 0:
            return self.diag(code, msg, 1, 1, 0, hint)
        if pos.end_line == pos.line:
            end = pos.end_column
        else:  # a span over several lines: underline the rest of its first line
            first = self.lines[pos.line - 1] if pos.line <= len(self.lines) else ""
            end = len(first.rstrip()) + 1 if len(first.rstrip()) >= pos.column else 0
        return self.diag(code, msg, pos.line, pos.column, end, hint)

    def snippet(self, pos: A.Pos, limit: int = 40) -> str | None:
        """The text of a one-line span, if short."""
        if pos.line != pos.end_line or not (0 < pos.line <= len(self.lines)):
            return None
        s = self.lines[pos.line - 1][pos.column - 1 : pos.end_column - 1]
        return s if 0 < len(s) <= limit else None

    def find(self, pos: A.Pos, pattern: str, group: int = 0, last: bool = False) -> tuple[int, int, int] | None:
        """(line, column, end column) of a regex match inside ``pos``'s span."""
        if self.text is None or not (0 < pos.line <= len(self.lines)):
            return None
        start = self.starts[pos.line - 1] + pos.column - 1
        end_line = min(max(pos.end_line, pos.line), len(self.lines))
        end = self.starts[end_line - 1] + max(pos.end_column - 1, 0)
        if end <= start:
            end = len(self.text)
        chunk = self.text[start:end]
        matches = list(re.finditer(pattern, chunk))
        if not matches:
            return None
        m = matches[-1] if last else matches[0]
        off = start + m.start(group)
        line = self.text.count("\n", 0, off) + 1
        col = off - self.starts[line - 1] + 1
        return line, col, col + (m.end(group) - m.start(group))

    def at_found(
        self, code: str, msg: str, pos: A.Pos | None, pattern: str, hint: str = "", group: int = 0, last: bool = False
    ) -> Diagnostic:
        hit = self.find(pos, pattern, group, last) if pos is not None else None
        if hit is None:
            return self.at(code, msg, pos, hint)
        line, col, end = hit
        return self.diag(code, msg, line, col, end, hint)


def _suggest(word: str, candidates: Iterable[str]) -> str | None:
    got = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return got[0] if got else None


def _kinds(words: Iterable[str]) -> str:
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


# ------------------------------------------------------------------ entry point


def check_files(
    files: list[A.PolicyFile], texts: dict[str, str], uploads: dict[str, str] | None = None, now: datetime | None = None
) -> list[Diagnostic]:
    """Every meaning error and warning of a policy set, sorted by file, line, column.

    ``uploads`` maps a file name to its uploader (an owner upload); ``now``
    is the time against which ``until`` is judged (default: the current time).
    """
    uploads = uploads or {}
    if now is None:
        now = datetime.now(UTC)
    srcs = {id(pf): _Src(pf, texts.get(pf.name)) for pf in files}
    # what each rule's conditions read, gathered once: the checks look at it several times
    refs = {id(pf): [_RuleRefs(r) for r in pf.rules] for pf in files}
    elsewhere: dict[tuple[str | None, str], str] = {}  # (owner, group) → a file declaring it
    for pf in files:
        for g in pf.groups:
            elsewhere.setdefault((owner_key(pf), g.name), pf.name)
    out: list[Diagnostic] = []
    for pf in files:
        out.extend(_FileCheck(pf, srcs[id(pf)], refs[id(pf)], uploads.get(pf.name), now, elsewhere).run())
    out.extend(_SetCheck(files, srcs, refs).run())
    return sort_diagnostics(out)


def check_file(
    pf: A.PolicyFile, text: str | None, uploader: str | None = None, now: datetime | None = None
) -> list[Diagnostic]:
    """One file on its own (the cross-file checks see only this file)."""
    return check_files(
        [pf], {pf.name: text} if text is not None else {}, {pf.name: uploader} if uploader is not None else {}, now
    )


def owner_key(pf: A.PolicyFile) -> str | None:
    return GLOBAL_KEY if pf.is_global else pf.owner


# ------------------------------------------------------------------ one file


class _FileCheck(Visitor[None]):
    def __init__(
        self,
        pf: A.PolicyFile,
        src: _Src,
        refs: list[_RuleRefs],
        uploader: str | None,
        now: datetime,
        elsewhere: dict[tuple[str | None, str], str] | None = None,
    ):
        self.elsewhere = elsewhere or {}
        self.pf = pf
        self.src = src
        self.refs = refs  # of pf.rules, in order
        self.uploader = uploader
        self.now = now
        self.out: list[Diagnostic] = []
        self.groups: dict[str, A.GroupDecl] = {}

    def emit(self, d: Diagnostic) -> None:
        self.out.append(d)

    def run(self) -> list[Diagnostic]:
        self.header()
        self.group_decls()
        self.claims_decls()
        used_groups: set[str] = set()
        for rule, refs in zip(self.pf.rules, self.refs):
            self.rule(rule, refs, used_groups)
        for name, g in self.groups.items():
            if name not in used_groups and name not in RESERVED:
                self.emit(
                    self.src.at_found(
                        "W303",
                        f"group '{name}' is never used",
                        g.pos,
                        r"group\s+(\S+)",
                        f"no rule in this file reads it: use it in a condition (claims.email in {name}) or remove it",
                        group=1,
                    )
                )
        return self.out

    # -------------------------------------------------------------- header
    def header(self) -> None:
        pf, src = self.pf, self.src
        self.empty_names()
        if self.uploader is not None:
            if pf.is_global:
                self.emit(
                    src.at(
                        "E212",
                        "an owner's upload cannot hold global rules",
                        pf.header_pos,
                        "global guardrails are the operator's; remove the 'global' line to make these rules yours",
                    )
                )
            elif pf.owner != self.uploader:
                self.emit(
                    src.at_found(
                        "E202",
                        f"this policy is for owner '{pf.owner}', but it was uploaded by '{self.uploader}'",
                        pf.header_pos,
                        r'"(?:[^"\\\n]|\\.)*"',
                        f"you can only upload rules for your own resources: write owner "
                        f'"{self.uploader}" or leave the owner line out',
                    )
                )
        if pf.owner is not None and not pf.owner.strip() and not pf.owner_filled:
            self.emit(
                src.at_found(
                    "E217",
                    "the owner's name is empty",
                    pf.header_pos,
                    r'"(?:[^"\\\n]|\\.)*"',
                    'write whose resources these rules govern: owner "alice"',
                )
            )
        if self.uploader is not None:
            return
        if not pf.is_global and pf.owner is None and pf.items:
            first = pf.items[0].pos
            self.emit(
                src.diag(
                    "E203",
                    "this file does not say whose resources its rules govern",
                    first.line,
                    first.column,
                    first.column + len(_first_word(src, first)),
                    'start the file with owner "<subject>" (or global, for the operator\'s guardrails)',
                )
            )

    def empty_names(self) -> None:
        """E217: an empty scope, resource id, type, name, claim or issuer never matches."""
        src = self.src
        quoted_empty = r'""'
        for c in self.pf.claims:
            if not c.issuer.strip():
                self.emit(
                    src.at_found(
                        "E217",
                        "the issuer is empty",
                        c.pos,
                        r'\bfrom\s+("\s*")',
                        'write the issuer\'s URL: from "https://idp.example.com"',
                        group=1,
                    )
                )
            if any(not n.strip() for n in c.names):
                self.emit(
                    src.at_found("E217", "a claim name is empty", c.pos, quoted_empty, "name the claim, such as email")
                )
        for td in self.pf.types:
            if not td.type.strip():
                self.emit(
                    src.at_found(
                        "E217",
                        "the type name is empty",
                        td.pos,
                        quoted_empty,
                        'name the resource type: type "photo-album" has scopes …',
                    )
                )
        for r, refs in zip(self.pf.rules, self.refs):
            # (names are nearly never empty: each rule's are first tested in one go, and
            # the empty ones sought only then)
            if r.scopes and not all(map(str.strip, r.scopes)):
                for name, spos in zip(r.scopes or (), r.scope_pos or ()):
                    if not name.strip():
                        self.emit(
                            src.at(
                                "E217",
                                "a scope name is empty",
                                spos,
                                "name the scope, such as view, or write 'any scope'",
                            )
                        )
            t = r.target
            for value in (t.resource_id, t.type, t.name):
                if value is not None and not value.strip():
                    self.empty_target(t)
                    break
            for cond_refs in (refs.when, refs.unless):
                for node in cond_refs.claims:
                    if node.quoted and not node.name.strip():
                        self.emit(
                            src.at(
                                "E217",
                                "the claim name is empty",
                                node.pos,
                                'name the claim: claims["https://example.com/role"]',
                            )
                        )

    def empty_target(self, t: A.Target) -> None:
        for what, value in (("resource id", t.resource_id), ("type", t.type), ("name", t.name)):
            if value is not None and not value.strip():
                self.emit(
                    self.src.at_found(
                        "E217", f"the {what} is empty", t.pos, r'""', f"an empty {what} matches no resource"
                    )
                )

    # -------------------------------------------------------------- groups
    def group_decls(self) -> None:
        src = self.src
        for g in self.pf.groups:
            name_at = r"group\s+(\S+?)(?=\s|=|$)"
            if g.name in RESERVED:
                self.emit(
                    src.at_found(
                        "E115",
                        f"'{g.name}' is a word of the policy language and cannot name a group",
                        g.pos,
                        name_at,
                        f"pick another name, such as {g.name}_list",
                        group=1,
                    )
                )
            if g.name in self.groups:
                first = self.groups[g.name].pos.line
                self.emit(
                    src.at_found(
                        "E204",
                        f"group '{g.name}' is declared twice",
                        g.pos,
                        name_at,
                        f"it is first declared on line {first}; merge the two lists or rename one",
                        group=1,
                    )
                )
            else:
                self.groups[g.name] = g
            self.list_literal(g.members, group=g.name)

    def list_literal(self, lit: A.Literal, group: str | None = None) -> None:
        kinds: dict[str, A.Literal] = {}
        for item in lit.value:
            if item.kind == LIST:
                self.emit(
                    self.src.at(
                        "E210",
                        "a list cannot hold another list",
                        item.pos,
                        'write the items one level deep: ["a", "b"]',
                    )
                )
                continue
            kinds.setdefault(item.kind, item)
        if group is not None and len(kinds) > 1:
            first, *others = list(kinds.values())
            odd = others[0]
            self.emit(
                self.src.at(
                    "E210",
                    f"group '{group}' mixes {_kinds(PLURALS[k] for k in kinds)}",
                    odd.pos,
                    f"a group's members are all of one kind, like the first one "
                    f'({KIND_WORDS[first.kind]}); quote numbers meant as text: "42"',
                )
            )

    # -------------------------------------------------------------- claims
    def claims_decls(self) -> None:
        src = self.src
        seen: dict[str, tuple[str, str, A.ClaimsDecl]] = {}
        for c in self.pf.claims:
            fmt = c.format
            if fmt not in FORMAT_NAMES and (not c.format_quoted or ":" not in fmt or fmt != fmt.strip() or " " in fmt):
                sug = _suggest(fmt, FORMAT_NAMES)
                hint = (
                    f"did you mean '{sug}'? " if sug else ""
                ) + 'write id_token, jwt, or a token format URI in quotes ("urn:ietf:params:oauth:token-type:saml2")'
                self.emit(
                    src.at_found(
                        "E206",
                        f"'{fmt}' is not a claim token format",
                        c.pos,
                        r"\bas\s+(\S+)\s*$",
                        hint,
                        group=1,
                        last=True,
                    )
                )
            for n in c.names:
                key = (c.issuer, format_uri(fmt))
                if n in seen and seen[n][:2] != key:
                    other = seen[n][2]
                    self.emit(
                        src.at_found(
                            "E207",
                            f"claim '{n}' is declared twice with different sources",
                            c.pos,
                            _name_re(n),
                            f"line {other.pos.line} says it comes from '{other.issuer}' as "
                            f"{other.format}; a claim has one issuer and format",
                            last=False,
                        )
                    )
                else:
                    seen.setdefault(n, (key[0], key[1], c))

    # -------------------------------------------------------------- rules
    def rule(self, rule: A.Rule, refs: _RuleRefs, used_groups: set[str]) -> None:
        src = self.src
        exp = rule.expiry
        if exp is not None:
            if exp.kind == "for" and rule.effect == "forbid":
                self.emit(
                    src.at(
                        "E209",
                        "a forbid cannot last 'for' a duration",
                        exp.pos,
                        "a forbid refuses until it is removed; to stop it at a fixed "
                        "time write 'until 2027-01-01T00:00:00Z'",
                    )
                )
            elif exp.kind == "for" and exp.duration is not None and not exp.duration:
                self.emit(
                    src.at(
                        "E214",
                        f"'for {exp.text}' grants nothing: the permission would expire as it is granted",
                        exp.pos,
                        "give a positive duration such as 'for 30d', or drop 'for'",
                    )
                )
            elif exp.kind == "until" and exp.until is not None and exp.until <= self.now:
                self.emit(
                    src.at(
                        "W304",
                        f"this rule expired at {exp.until.isoformat().replace('+00:00', 'Z')}",
                        exp.pos,
                        "an 'until' in the past means the rule never applies any more; "
                        "remove the rule or move the date",
                    )
                )
        t = rule.target
        if t.pattern is not None:
            self.pattern(t.pattern, t.pos, target=True)
        for cond, cond_refs in ((rule.when, refs.when), (rule.unless, refs.unless)):
            if cond is None:
                continue
            self.visit(cond)
            for node in cond_refs.marks:
                if isinstance(node, A.GroupRef):
                    used_groups.add(node.name)
                    if node.name not in self.groups:
                        self.unknown_group(node)
                elif isinstance(node, A.AttrRef) and node.entity == "resource" and node.name not in RESOURCE_ATTRS:
                    sug = _suggest(node.name, RESOURCE_ATTRS)
                    hint = (f"did you mean '{sug}'? " if sug else "") + "a resource has " + ", ".join(RESOURCE_ATTRS)
                    self.emit(
                        src.at_found(
                            "E205", f"a resource has no attribute '{node.name}'", node.pos, r"\.\s*(\S+)", hint, group=1
                        )
                    )
                elif isinstance(node, A.Literal) and node.kind == LIST:
                    self.list_literal(node)
        self.never_true(rule)

    def unknown_group(self, node: A.GroupRef) -> None:
        sug = _suggest(node.name, list(self.groups) + ["true", "false", "now"])
        other = self.elsewhere.get((owner_key(self.pf), node.name))
        if other is not None and other != self.pf.name:
            hint = (
                f"group '{node.name}' is declared in {other}, but a group can only be used "
                "in the file that declares it: declare it here too"
            )
        elif sug:
            hint = f"did you mean '{sug}'?"
        elif self.groups:
            hint = (
                f'declare it with: group {node.name} = ["…"] (this file declares '
                f"{', '.join(sorted(self.groups))}); to compare with the text itself, "
                f'quote it: "{node.name}"'
            )
        else:
            hint = (
                f'declare it with: group {node.name} = ["…"]; to compare with the text itself, quote it: "{node.name}"'
            )
        self.emit(self.src.at("E200", f"unknown group '{node.name}'", node.pos, hint))

    def pattern(self, pattern: str, pos: A.Pos, target: bool) -> None:
        src = self.src
        if pattern == "":
            self.emit(
                src.at_found(
                    "E208",
                    "this pattern is empty",
                    pos,
                    r'""',
                    'an empty pattern matches only an empty name; write what names should look like, e.g. "photos/*"',
                    last=True,
                )
            )
        elif not _has_wildcard(pattern):
            lit = pattern.replace("\\", "")
            hint = (
                f'it matches only the name "{lit}": write name "{lit}", or add * or ? for a pattern'
                if target
                else f'it matches only "{lit}" itself: write == "{lit}", or add * or ? for a pattern'
            )
            self.emit(
                src.at_found("W305", "this pattern has no wildcard", pos, r'"(?:[^"\\\n]|\\.)*"', hint, last=True)
            )

    # -------------------------------------------------------------- types
    # Type-check a condition (``visit``): conditions are booleans, operators get their kinds.
    def visit_Compare(self, node: A.Compare) -> None:
        self.compare(node)
        # an operand is visited only if it holds conditions of its own:
        # a plain value under a comparison is not tested for truth
        for side in (node.left, node.right):
            if isinstance(side, _CONDITIONS):
                self.visit(side)

    def visit_And(self, node: A.And) -> None:
        for item in node.items:
            self.visit(item)

    def visit_Or(self, node: A.Or) -> None:
        for item in node.items:
            self.visit(item)

    def visit_Not(self, node: A.Not) -> None:
        self.visit(node.item)

    def visit_Truthy(self, node: A.Truthy) -> None:
        self.visit(node.operand)

    def visit_Has(self, node: A.Has) -> None:
        return None

    def generic_visit(self, node: Any) -> None:
        self.truthy(node)  # a plain value where a condition stands

    def kind(self, node: A.Expr) -> str | None:
        """The static kind of an operand (None: known only at run time, as a claim's)."""
        return _STATIC_KIND.visit(node)

    def items(self, node: A.Expr) -> list[A.Literal] | None:
        """The literal items of a list literal or a declared group."""
        if isinstance(node, A.Literal) and node.kind == LIST:
            return list(node.value)
        if isinstance(node, A.GroupRef) and node.name in self.groups:
            return list(self.groups[node.name].members.value)
        return None

    def describe(self, node: A.Expr, kind: str | None) -> str:
        text = self.src.snippet(node.pos) if hasattr(node, "pos") else None
        what = KIND_WORDS.get(kind, "a value") if kind else "a value"
        return what if text is None else f"{text} ({what})"

    def mismatch(self, node: A.Compare, msg: str, hint: str, at: A.Expr | None = None) -> None:
        target = at if at is not None else node
        self.emit(self.src.at("E201", msg, target.pos, hint))

    def compare(self, node: A.Compare) -> None:
        op, left, right = node.op, node.left, node.right
        lk, rk = self.kind(left), self.kind(right)
        if op in ("==", "!="):
            if lk and rk and lk != rk:
                never = "never true" if op == "==" else "always true"
                self.mismatch(
                    node,
                    f"{self.describe(left, lk)} is compared with {self.describe(right, rk)}: this is {never}",
                    _pair_hint(lk, rk),
                    _literal_side(left, right),
                )
            return
        if op in ORDER_OPS:
            for side, k in ((left, lk), (right, rk)):
                if k in (BOOL, LIST):
                    self.mismatch(
                        node,
                        f"'{op}' cannot order {KIND_WORDS[k]}",
                        "< <= > >= compare numbers, strings, timestamps or durations; "
                        + (
                            "use == or != for true and false"
                            if k == BOOL
                            else "to test membership use 'in' or 'contains'"
                        ),
                        side,
                    )
                    return
            if lk and rk and lk != rk:
                self.mismatch(
                    node,
                    f"{self.describe(left, lk)} cannot be ordered against {self.describe(right, rk)}",
                    _pair_hint(lk, rk),
                    _literal_side(left, right),
                )
            return
        if op in ("in", "not in"):
            if rk and rk not in (LIST, STRING):
                self.mismatch(
                    node,
                    f"'{op}' needs a list or a string on its right, not {KIND_WORDS[rk]}",
                    'write a list ["a", "b"], a group name, or a string to search in; '
                    "to compare with one value use == or !=",
                    right,
                )
            elif rk == STRING and lk and lk != STRING:
                self.mismatch(
                    node,
                    f"only a string can be found in a string, not {KIND_WORDS[lk]}",
                    "to look for a value in a list, put a list on the right",
                    left,
                )
            elif rk == LIST and lk:
                self.no_item_of_kind(node, right, lk, op)
            return
        if op == "contains":
            if lk and lk not in (LIST, STRING):
                self.mismatch(
                    node,
                    f"'contains' needs a list or a string on its left, not {KIND_WORDS[lk]}",
                    "to compare one value use ==; 'contains' tests membership "
                    '(resource.scopes contains "view") or a substring',
                    left,
                )
            elif lk == STRING and rk and rk != STRING:
                self.mismatch(
                    node,
                    f"a string can only contain a string, not {KIND_WORDS[rk]}",
                    'quote the text to look for: contains "abc"',
                    right,
                )
            elif lk == LIST and rk:
                self.no_item_of_kind(node, left, rk, op)
            return
        # starts with, ends with, like: strings on both sides
        for side, k, role in ((left, lk, "left"), (right, rk, "right")):
            if k and k != STRING:
                if op == "like" and role == "right":
                    msg = f"the pattern of 'like' must be a string, not {KIND_WORDS[k]}"
                    hint = 'write a quoted glob such as "health/*" (* any text, ? one character)'
                else:
                    msg = f"'{op}' works on strings, not {KIND_WORDS[k]}"
                    hint = (
                        f'quote the text: {op} "…"'
                        if role == "right"
                        else "use it with a string such as claims.email or resource.name"
                    )
                self.mismatch(node, msg, hint, side)
                return
        if op == "like" and isinstance(right, A.Literal) and right.kind == STRING:
            self.pattern(right.value, right.pos, target=False)

    def no_item_of_kind(self, node: A.Compare, lst: A.Expr, kind: str, op: str) -> None:
        items = self.items(lst)
        if not items:
            return
        kinds = {i.kind for i in items}
        if kind not in kinds:
            holds = _kinds(sorted(PLURALS[k] for k in kinds))
            outcome = {
                "in": f"{KIND_WORDS[kind]} is never in it",
                "not in": "'not in' is always true here",
                "contains": f"it never contains {KIND_WORDS[kind]}",
            }[op]
            self.mismatch(
                node,
                f"this list holds only {holds}, so {outcome}",
                "make the list's items the same kind as the value tested (quote numbers meant as text)",
                lst,
            )

    def truthy(self, node: A.Expr) -> None:
        k = self.kind(node)
        if k is None or k == BOOL:
            return
        if k == LIST and isinstance(node, A.GroupRef):
            hint = f"test membership: claims.email in {node.name}"
        elif k == LIST:
            hint = "test membership with 'in' or 'contains'"
        elif k == STRING:
            hint = 'compare it with something: == "…", starts with "…", like "…"'
        elif k == TIMESTAMP:
            hint = "compare it: now < 2027-01-01T00:00:00Z"
        else:
            hint = "compare it with ==, <, > or another operator"
        self.emit(
            self.src.at(
                "E201", f"a condition must be true or false, but this is {self.describe(node, k)}", node.pos, hint
            )
        )

    # -------------------------------------------------------------- never true
    def never_true(self, rule: A.Rule) -> None:
        if rule.when is not None and _const(rule.when, self.groups) is False:
            self.emit(
                self.src.at(
                    "W306",
                    "this condition is never true, so the rule never applies",
                    rule.when.pos,
                    "check the condition, or remove the rule",
                )
            )
        elif rule.when is not None and (why := _contradiction(rule.when)):
            self.emit(self.src.at("W306", f"this condition is never true: {why}", rule.when.pos, "did you mean 'or'?"))
        if rule.unless is not None and _const(rule.unless, self.groups) is True:
            self.emit(
                self.src.at(
                    "W306",
                    "this 'unless' is always true, so the rule never applies",
                    rule.unless.pos,
                    "check the condition, or remove the rule",
                )
            )


def _first_word(src: _Src, pos: A.Pos) -> str:
    if 0 < pos.line <= len(src.lines):
        m = re.match(r"\S+", src.lines[pos.line - 1][pos.column - 1 :])
        if m:
            return m.group(0)
    return "x"


def _name_re(name: str) -> str:
    return r'(?<![\w\-"])' + re.escape(name) + r'(?![\w\-])|"' + re.escape(name) + '"'


def _literal_side(left: A.Expr, right: A.Expr) -> A.Literal | None:
    """Point at the literal when one side is a literal (the likelier mistake)."""
    if isinstance(right, A.Literal) and not isinstance(left, A.Literal):
        return right
    if isinstance(left, A.Literal) and not isinstance(right, A.Literal):
        return left
    return None


def _pair_hint(lk: str, rk: str) -> str:
    pair = {lk, rk}
    if pair == {TIMESTAMP, DURATION}:
        return (
            "a duration such as 30d is a length of time, not a point in time: compare now "
            "with a timestamp such as 2027-01-01T00:00:00Z"
        )
    if TIMESTAMP in pair:
        return "write the time as a timestamp, without quotes: 2027-01-01 or 2027-01-01T09:00:00Z"
    if pair == {STRING, NUMBER}:
        return 'quote the number to compare text ("42"), or compare with a number-valued claim'
    if BOOL in pair:
        return "true and false are not text or numbers: compare with true or false"
    return f"compare values of one kind: {KIND_WORDS[lk]} with {KIND_WORDS[lk]}"


def _has_wildcard(pattern: str) -> bool:
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?":
            return True
        i += 1
    return False


class _StaticKind(Visitor["str | None"]):
    """The static kind of an operand (None: known only at run time, as a claim's)."""

    def visit_Literal(self, node: A.Literal) -> str | None:
        return node.kind

    def visit_AttrRef(self, node: A.AttrRef) -> str | None:
        if node.entity == "resource":
            if node.name == "scopes":
                return LIST
            return STRING if node.name in RESOURCE_ATTRS else None
        return STRING if node.name in CLIENT_STRINGS else None

    def visit_NowRef(self, node: A.NowRef) -> str | None:
        return TIMESTAMP

    def visit_GroupRef(self, node: A.GroupRef) -> str | None:
        return LIST

    def visit_ClaimRef(self, node: A.ClaimRef) -> str | None:
        return None

    def generic_visit(self, node: Any) -> str | None:
        return BOOL  # a condition (and, or, not, a comparison, has) used as a value


_STATIC_KIND = _StaticKind()


class _Const(Visitor["bool | None"]):
    """The value of a condition that reads no claim, client, resource or time
    (None: not constant)."""

    def __init__(self, groups: dict[str, A.GroupDecl]):
        self.groups = groups

    def visit_Compare(self, node: A.Compare) -> bool | None:
        right = node.right
        if isinstance(right, A.GroupRef) and right.name in self.groups:
            right = self.groups[right.name].members
        if node.op == "in" and isinstance(right, A.Literal) and right.kind == LIST and not right.value:
            return False  # nothing is in an empty list
        left = node.left
        if isinstance(left, A.Literal) and isinstance(right, A.Literal):
            kinds = {left.kind, right.kind}
            if len(kinds) == 1 or LIST in kinds:
                got = apply_op(node.op, literal_value(left), literal_value(right))
                return got if isinstance(got, bool) else None
        return None

    def visit_And(self, node: A.And) -> bool | None:
        """False if any item is False, else True if all are True, else None."""
        values = [self.visit(x) for x in node.items]
        return False if False in values else None if None in values else True

    def visit_Or(self, node: A.Or) -> bool | None:
        """True if any item is True, else False if all are False, else None."""
        values = [self.visit(x) for x in node.items]
        return True if True in values else None if None in values else False

    def visit_Literal(self, node: A.Literal) -> bool | None:
        return node.value if node.kind == BOOL and isinstance(node.value, bool) else None

    def visit_Truthy(self, node: A.Truthy) -> bool | None:
        return self.visit(node.operand)

    def visit_Not(self, node: A.Not) -> bool | None:
        v = self.visit(node.item)
        return None if v is None else not v

    def generic_visit(self, node: Any) -> bool | None:
        return None


def _const(node: A.Expr, groups: dict[str, A.GroupDecl]) -> bool | None:
    return _Const(groups).visit(node)


def _contradiction(node: A.Expr) -> str | None:
    """``x == "a" and x == "b"``: one value cannot equal two different constants."""
    if not isinstance(node, A.And):
        return None
    seen: dict[A.ClaimRef | A.AttrRef | A.NowRef, A.Literal] = {}  # reference → the first literal it is said to equal
    for item in node.items:
        if (
            isinstance(item, A.Compare)
            and item.op == "=="
            and isinstance(item.right, A.Literal)
            and isinstance(item.left, _REFERENCES)
            and item.right.kind != LIST
        ):
            key, right = item.left, item.right
            first = seen.setdefault(key, right)
            if first is not right and (first.kind, literal_value(first)) != (right.kind, literal_value(right)):
                ref = (
                    "now"
                    if isinstance(key, A.NowRef)
                    else (
                        f"claims.{'.'.join(key.path)}"
                        if isinstance(key, A.ClaimRef) and not key.quoted
                        else f'claims["{key.name}"]'
                        if isinstance(key, A.ClaimRef)
                        else f"{key.entity}.{key.name}"
                    )
                )
                return f"{ref} cannot be both {first.text or repr(first.value)} and {right.text or right.value}"
    return None


# ------------------------------------------------------------------ across files


class _SetCheck:
    def __init__(self, files: list[A.PolicyFile], srcs: dict[int, _Src], refs: dict[int, list[_RuleRefs]]):
        self.files = files
        self.srcs = srcs
        self.refs = refs  # id(file) → its rules' _RuleRefs, in order
        self.out: list[Diagnostic] = []
        self.by_owner: dict[str, list[A.PolicyFile]] = {}
        for pf in files:
            key = owner_key(pf)
            if key is not None:
                self.by_owner.setdefault(key, []).append(pf)
        self.globals = self.by_owner.get(GLOBAL_KEY, [])

    def run(self) -> list[Diagnostic]:
        for key, own in self.by_owner.items():
            self.claims(own)
            visible = own if key == GLOBAL_KEY else self.globals + own
            types = self.types(visible, own)
            self.rules(key, own, types)
        self.unread_claims()
        return self.out

    def claims(self, own: list[A.PolicyFile]) -> None:
        """E207 across the files of one owner (one file's conflicts are reported per file)."""
        first: dict[str, tuple[A.PolicyFile, A.ClaimsDecl]] = {}
        for pf in own:
            here: set[str] = set()
            for c in pf.claims:
                for n in c.names:
                    if n in first and first[n][0] is not pf and n not in here:
                        opf, oc = first[n]
                        if (oc.issuer, format_uri(oc.format)) != (c.issuer, format_uri(c.format)):
                            self.out.append(
                                self.srcs[id(pf)].at_found(
                                    "E207",
                                    f"claim '{n}' is declared differently in two files",
                                    c.pos,
                                    _name_re(n),
                                    f"{opf.name}:{oc.pos.line} says it comes from '{oc.issuer}' as "
                                    f"{oc.format}; one owner's claims have one issuer and format",
                                )
                            )
                    here.add(n)
                    first.setdefault(n, (pf, c))

    def types(self, visible: list[A.PolicyFile], own: list[A.PolicyFile]) -> dict[str, tuple[A.PolicyFile, A.TypeDecl]]:
        declared: dict[str, tuple[A.PolicyFile, A.TypeDecl]] = {}
        for pf in visible:
            for t in pf.types:
                if t.type in declared:
                    opf, ot = declared[t.type]
                    if set(ot.scopes) != set(t.scopes) and any(pf is o for o in own):
                        where = f"line {ot.pos.line}" if opf is pf else f"{opf.name}:{ot.pos.line}"
                        self.out.append(
                            self.srcs[id(pf)].at_found(
                                "E211",
                                f"type '{t.type}' is declared again with other scopes",
                                t.pos,
                                r'"(?:[^"\\\n]|\\.)*"',
                                f"{where} says it has scopes {', '.join(ot.scopes)}; declare each type once",
                            )
                        )
                else:
                    declared[t.type] = (pf, t)
        return declared

    def rules(self, key: str, own: list[A.PolicyFile], types: dict[str, tuple[A.PolicyFile, A.TypeDecl]]) -> None:
        forbids: list[tuple[A.PolicyFile, A.Rule]] = []
        for pf in own if key == GLOBAL_KEY else self.globals + own:
            for r in pf.rules:
                if (
                    r.effect == "forbid"
                    and r.when is None
                    and r.unless is None
                    and (r.expiry is None or r.expiry.kind == "for")
                ):
                    forbids.append((pf, r))
        seen: dict[tuple[Any, ...], list[list[Any]]] = {}  # W301: rules by effect, scopes and target
        for pf in own:
            src = self.srcs[id(pf)]
            groups = {g.name: g.members for g in pf.groups}
            for r, rrefs in zip(pf.rules, self.refs[id(pf)]):
                # W300: shadowed by an unconditional forbid
                if r.effect != "forbid":
                    for fpf, f in forbids:
                        if _covers_scopes(f, r) and _covers_target(f.target, r.target):
                            where = f"line {f.pos.line}" if fpf is pf else f"{fpf.name}:{f.pos.line}"
                            self.out.append(
                                src.diag(
                                    "W300",
                                    f"this {r.effect} never applies: the forbid on {where} "
                                    "always refuses these scopes here",
                                    *_effect_span(r),
                                    hint="a forbid beats every permit and ask; give the forbid a "
                                    "'when' or 'unless', or remove this rule",
                                )
                            )
                            break
                # W301: duplicate. Hashing a whole rule key costs a Python __hash__ call per
                # condition node, and nearly every rule differs from all the others in its
                # effect, scopes or target already: rules are grouped by those cheap parts
                # (the target's fields: a Target hashes through a Python call), and whole
                # keys are compared only within a group (see _first_equal)
                t = r.target
                head = (
                    r.effect,
                    frozenset(r.scopes) if r.scopes is not None else None,
                    t.kind,
                    t.resource_id,
                    t.type,
                    t.name,
                    t.pattern,
                )
                bucket = seen.get(head)
                if bucket is None:
                    seen[head] = [[None, pf, r, rrefs, groups]]
                elif (first := _first_equal(bucket, pf, r, rrefs, groups)) is not None:
                    opf, other = first
                    where = f"line {other.pos.line}" if opf is pf else f"{opf.name}:{other.pos.line}"
                    self.out.append(
                        src.diag(
                            "W301",
                            f"this rule repeats the rule on {where}",
                            *_effect_span(r),
                            hint="remove one of the two; they mean the same",
                        )
                    )
                # W302 / W307: declared resource types
                ttype = r.target.type
                if ttype is not None and types:
                    if ttype not in types:
                        sug = _suggest(ttype, types)
                        self.out.append(
                            src.at_found(
                                "W307",
                                f"no resource type '{ttype}' is declared",
                                r.target.pos,
                                r'"(?:[^"\\\n]|\\.)*"',
                                (f"did you mean '{sug}'? " if sug else "")
                                + "declared types: "
                                + ", ".join(sorted(types))
                                + f'; declare it with: type "{ttype}" has scopes …',
                            )
                        )
                    elif r.scopes is not None:
                        tpf, tdecl = types[ttype]
                        for name, spos in zip(r.scopes, r.scope_pos or (None,) * len(r.scopes)):
                            if name not in tdecl.scopes:
                                sug = _suggest(name, tdecl.scopes)
                                where = f"line {tdecl.pos.line}" if tpf is pf else f"{tpf.name}:{tdecl.pos.line}"
                                self.out.append(
                                    src.at(
                                        "W302",
                                        f"type '{ttype}' does not offer the scope '{name}'",
                                        spos or r.pos,
                                        (f"did you mean '{sug}'? " if sug else "")
                                        + f"it offers {', '.join(tdecl.scopes)} ({where})",
                                    )
                                )

    def unread_claims(self) -> None:
        if not any(pf.claims for pf in self.files):
            return  # W308 is about declared claims
        read: dict[str | None, set[str]] = {}
        for pf in self.files:
            names = read.setdefault(owner_key(pf), set())
            for refs in self.refs[id(pf)]:
                for cond_refs in (refs.when, refs.unless):
                    for node in cond_refs.claims:
                        names.add(node.path[0] if not node.quoted else node.name)
        everything = set().union(*read.values()) if read else set()
        for pf in self.files:
            key = owner_key(pf)
            if key is None:
                continue
            used = everything if key == GLOBAL_KEY else read.get(key, set()) | read.get(GLOBAL_KEY, set())
            for c in pf.claims:
                for n in c.names:
                    if n not in used:
                        self.out.append(
                            self.srcs[id(pf)].at_found(
                                "W308",
                                f"claim '{n}' is declared but no rule reads it",
                                c.pos,
                                _name_re(n),
                                f"use it in a condition (claims.{n} == …) or remove it from the "
                                "declaration; undeclared claims are never asked for"
                                if re.fullmatch(r"[A-Za-z_][\w\-]*", n)
                                else f'use it in a condition (claims["{n}"] == …) or remove it',
                            )
                        )


def _effect_span(r: A.Rule) -> tuple[int, int, int]:
    """(line, column, end column) of a rule's first word."""
    return r.pos.line, r.pos.column, r.pos.column + len(r.effect)


def _covers_scopes(f: A.Rule, r: A.Rule) -> bool:
    if f.scopes is None:
        return True
    return r.scopes is not None and set(r.scopes) <= set(f.scopes)


def _literal_prefix(pattern: str) -> tuple[str, str]:
    """(the literal text before the first wildcard, the rest)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if c in "*?":
            return "".join(out), pattern[i:]
        out.append(c)
        i += 1
    return "".join(out), ""


def _glob_covers(p: str, q: str) -> bool:
    """Does every name matching glob ``q`` also match glob ``p``? (a safe under-approximation)"""
    if p == q:
        return True
    prefix, rest = _literal_prefix(p)
    if rest == "*":  # "abc*" covers every pattern whose literal start begins with abc
        return _literal_prefix(q)[0].startswith(prefix)
    return False


def _covers_target(f: A.Target, r: A.Target) -> bool:
    k = f.kind
    if k == "any":
        return True
    if k == "id":
        return r.kind == "id" and r.resource_id == f.resource_id
    if k == "type":
        return r.kind in ("type", "type_name", "type_name_like") and r.type == f.type
    if k == "name":
        return r.kind in ("name", "type_name") and r.name == f.name
    if k == "type_name":
        return r.kind == "type_name" and (r.type, r.name) == (f.type, f.name)
    if k in ("name_like", "type_name_like"):
        if k == "type_name_like" and (r.type != f.type or r.kind not in ("type_name", "type_name_like")):
            return False
        if r.kind in ("name", "type_name"):
            return glob(f.pattern or "").match(r.name or "")
        if r.kind in ("name_like", "type_name_like"):
            return _glob_covers(f.pattern or "", r.pattern or "")
    return False


def _first_equal(
    bucket: list[list[Any]], pf: A.PolicyFile, r: A.Rule, refs: _RuleRefs, groups: dict[str, A.Literal]
) -> tuple[A.PolicyFile, A.Rule] | None:
    """The first rule of ``bucket`` (rules seen before ``r`` with its effect, scopes and
    target) with an equal :func:`_rule_key`, or None (then ``r`` joins the bucket).
    Whole keys are made and compared (``==``, as a dict lookup would) only here."""
    key = _rule_key(r, refs, groups)
    for entry in bucket:
        if entry[0] is None:  # the key of a rule seen earlier, made when first needed
            entry[0] = _rule_key(*entry[2:])
        if entry[0] == key:
            return entry[1], entry[2]
    bucket.append([key, pf, r, refs, groups])
    return None


def _rule_key(r: A.Rule, refs: _RuleRefs, groups: dict[str, A.Literal]) -> tuple[Any, ...]:
    """Rules equal up to positions, scope order and the groups' contents."""
    used = refs.groups()
    return (
        r.effect,
        frozenset(r.scopes) if r.scopes is not None else None,
        r.target,
        r.when,
        r.unless,
        r.expiry,
        tuple((g, groups.get(g)) for g in used),
    )
