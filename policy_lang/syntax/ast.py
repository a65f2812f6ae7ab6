"""AST of the sharing policy language.

Every node carries a :class:`Pos` (file, line, column, end) so that every
diagnostic, explanation and decision reason can point at the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple


class Pos(NamedTuple):
    """Where a node stands in its file (1-based): what ``node.pos`` gives (nodes keep
    the same five values as a plain tuple, their ``span``)."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE = Pos("<none>", 0, 0, 0, 0)

#: Where a node stands, as the node keeps it: (file, line, column, end line, end
#: column), a plain tuple (a :class:`Pos` is also one).
Span = tuple[str, int, int, int, int]


class _Located:
    """A node's ``span``, read as a :class:`Pos` through ``pos``.

    Nodes keep plain tuples, not :class:`Pos` objects: the cyclic garbage collector
    stops following a plain tuple of strings and numbers once it has seen it, but
    follows a NamedTuple (a tuple subclass) for as long as it lives, and a set of
    10,000 rules has 112,000 positions. Loading 10,000 rules with Pos objects in the
    nodes took 15 % longer (1.70 against 1.48 s, the median of 3, the two trees in
    alternate processes; the full collections visited 1,125,000 objects against
    742,000)."""

    __slots__ = ()
    span: Span

    @property
    def pos(self) -> Pos:
        return Pos(*self.span)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as (class, field values), rebuilt by :func:`_rebuild`. The ``__getstate__``
        and ``__setstate__`` a frozen slotted dataclass gets call ``dataclasses.fields`` for every
        node: 73 % of the time of pickling a parsed text, which the server's policy cache does for
        every file at a first start (3.9 s at 100,000 rules, figures in docs/benchmarks.md)."""
        cls = type(self)
        return _rebuild, (cls, _fields_of(cls)[1](self))


#: Per node class: its field names, and a function giving their values as a tuple.
_FIELDS: dict[type, tuple[tuple[str, ...], Any]] = {}


def _fields_of(cls: type) -> tuple[tuple[str, ...], Any]:
    known = _FIELDS.get(cls)
    if known is None:
        names = tuple(f.name for f in fields(cls))
        if len(names) > 1:
            known = (names, attrgetter(*names))  # a tuple of them, in C
        else:  # attrgetter of one name gives the value itself
            known = (names, lambda node, name=names[0]: (getattr(node, name),))
        _FIELDS[cls] = known
    return known


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """A node from :meth:`_Located.__reduce__`'s values (frozen: set as its ``__init__`` does)."""
    node: Any = object.__new__(cls)
    for name, value in zip(_fields_of(cls)[0], values, strict=True):
        object.__setattr__(node, name, value)
    return node


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Literal(_Located):
    """A constant: str, int/float, bool, datetime (UTC), timedelta or a list of those."""

    value: Any
    kind: str  # "string" | "number" | "bool" | "timestamp" | "duration" | "list"
    span: Span = field(compare=False)
    text: str = field(default="", compare=False)  # the source spelling (for fmt)


@dataclass(frozen=True, slots=True)
class ClaimRef(_Located):
    """``claims.NAME`` (``path`` for nested members) or ``claims["uri"]``."""

    name: str
    path: tuple[str, ...]
    quoted: bool
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class AttrRef(_Located):
    """``client.NAME`` or ``resource.NAME``: always known; absent compares false."""

    entity: str  # "client" | "resource"
    name: str
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class NowRef(_Located):
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class GroupRef(_Located):
    name: str
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Compare(_Located):
    """A binary test. ``op`` is one of == != < <= > >= in, not in, contains,
    starts with, ends with, like."""

    op: str
    left: Expr
    right: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Has(_Located):
    ref: ClaimRef | AttrRef
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Truthy(_Located):
    """A bare operand used as a condition (``when claims.email_verified``)."""

    operand: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class And(_Located):
    items: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Or(_Located):
    items: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Not(_Located):
    item: Expr
    span: Span = field(compare=False)


Expr = Literal | ClaimRef | AttrRef | NowRef | GroupRef | Compare | Has | Truthy | And | Or | Not
Cond = Compare | Has | Truthy | And | Or | Not


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Target(_Located):
    """What a rule applies to. ``kind`` is any | id | type | name | name_like |
    type_name | type_name_like."""

    kind: str
    resource_id: str | None = None
    type: str | None = None
    name: str | None = None
    pattern: str | None = None
    span: Span = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Expiry(_Located):
    kind: str  # "for" | "until"
    duration: timedelta | None
    until: datetime | None
    text: str
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Rule(_Located):
    effect: str  # "permit" | "forbid" | "ask"
    scopes: tuple[str, ...] | None  # None = any scope
    target: Target
    when: Expr | None
    unless: Expr | None
    expiry: Expiry | None
    span: Span = field(compare=False)
    scope_spans: tuple[Span, ...] = field(default=(), compare=False)  # where each scope name stands
    # filled by the parser: the owner of the file (None for global files)
    owner: str | None = field(default=None, compare=False)

    @property
    def ref(self) -> str:
        file, line = self.span[0], self.span[1]
        return f"{file}:{line}"

    @property
    def scope_pos(self) -> tuple[Pos, ...]:
        return tuple(Pos(*span) for span in self.scope_spans)


@dataclass(frozen=True, slots=True)
class GroupDecl(_Located):
    name: str
    members: Literal  # kind == "list"
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class ClaimsDecl(_Located):
    names: tuple[str, ...]
    issuer: str
    format: str
    span: Span = field(compare=False)
    name_quoted: tuple[bool, ...] = field(default=(), compare=False)
    format_quoted: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class TypeDecl(_Located):
    """``type "photo-album" has scopes view, download``: the scopes a resource
    type offers, so the checker can flag rules naming others."""

    type: str
    scopes: tuple[str, ...]
    span: Span = field(compare=False)


@dataclass(slots=True)
class PolicyFile:
    name: str
    owner: str | None  # None with is_global
    is_global: bool
    header_pos: Pos | None
    groups: list[GroupDecl]
    claims: list[ClaimsDecl]
    rules: list[Rule]
    items: list[GroupDecl | ClaimsDecl | TypeDecl | Rule]  # in source order (for fmt)
    types: list[TypeDecl] = field(default_factory=list)
    comments: list[tuple[int, int, str]] = field(default_factory=list)  # (line, column, text)
    owner_filled: bool = False  # True when the owner came from the uploader
