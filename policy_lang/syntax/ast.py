"""AST of the sharing policy language.

Every node carries a :class:`Pos` (file, line, column, end) so that every
diagnostic, explanation and decision reason can point at the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple


class Pos(NamedTuple):
    """Where a node stands in its file (1-based). A tuple: a large policy set
    has hundreds of thousands of them, and a tuple is the cheapest to make."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE = Pos("<none>", 0, 0, 0, 0)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: str, int/float, bool, datetime (UTC), timedelta or a list of those."""

    value: Any
    kind: str  # "string" | "number" | "bool" | "timestamp" | "duration" | "list"
    pos: Pos = field(compare=False)
    text: str = field(default="", compare=False)  # the source spelling (for fmt)


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """``claims.NAME`` (``path`` for nested members) or ``claims["uri"]``."""

    name: str
    path: tuple[str, ...]
    quoted: bool
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class AttrRef:
    """``client.NAME`` or ``resource.NAME``: always known; absent compares false."""

    entity: str  # "client" | "resource"
    name: str
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class NowRef:
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class GroupRef:
    name: str
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """A binary test. ``op`` is one of == != < <= > >= in, not in, contains,
    starts with, ends with, like."""

    op: str
    left: Expr
    right: Expr
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class Has:
    ref: ClaimRef | AttrRef
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class Truthy:
    """A bare operand used as a condition (``when claims.email_verified``)."""

    operand: Expr
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr
    pos: Pos = field(compare=False)


Expr = Literal | ClaimRef | AttrRef | NowRef | GroupRef | Compare | Has | Truthy | And | Or | Not
Cond = Compare | Has | Truthy | And | Or | Not


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class Target:
    """What a rule applies to. ``kind`` is any | id | type | name | name_like |
    type_name | type_name_like."""

    kind: str
    resource_id: str | None = None
    type: str | None = None
    name: str | None = None
    pattern: str | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Expiry:
    kind: str  # "for" | "until"
    duration: timedelta | None
    until: datetime | None
    text: str
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class Rule:
    effect: str  # "permit" | "forbid" | "ask"
    scopes: tuple[str, ...] | None  # None = any scope
    target: Target
    when: Expr | None
    unless: Expr | None
    expiry: Expiry | None
    pos: Pos = field(compare=False)
    scope_pos: tuple[Pos, ...] = field(default=(), compare=False)
    # filled by the parser: the owner of the file (None for global files)
    owner: str | None = field(default=None, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.pos.file}:{self.pos.line}"


@dataclass(frozen=True, slots=True)
class GroupDecl:
    name: str
    members: Literal  # kind == "list"
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class ClaimsDecl:
    names: tuple[str, ...]
    issuer: str
    format: str
    pos: Pos = field(compare=False)
    name_quoted: tuple[bool, ...] = field(default=(), compare=False)
    format_quoted: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class TypeDecl:
    """``type "photo-album" has scopes view, download``: the scopes a resource
    type offers, so the checker can flag rules naming others."""

    type: str
    scopes: tuple[str, ...]
    pos: Pos = field(compare=False)


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
