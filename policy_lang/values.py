"""Run-time values and the three-valued (Kleene) logic of conditions.

A condition evaluates to ``True``, ``False``, an :class:`Unknown` (a frozenset
of the claim names it lacks) or an :class:`Err` (a run-time type mismatch).
Operators here are total: they never raise and never take more than linear
time in their inputs (``like`` is a glob matched without backtracking).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .syntax import ast as A


class Unknown(frozenset[str]):
    """The names of the claims a condition lacks (UNKNOWN in the language page)."""

    __slots__ = ()


class Err:
    """A run-time type mismatch: a permit or ask does not apply, a forbid does."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return f"Err({self.message!r})"


class _Absent:
    """A client or resource attribute that is not there: every comparison with it is false."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


class Missing:
    """An operand that reads a claim the requesting party has not presented."""

    __slots__ = ("names",)

    def __init__(self, names: frozenset[str]):
        self.names = names


def kind_of(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, datetime):
        return "timestamp"
    if isinstance(v, timedelta):
        return "duration"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "object"
    if v is None:
        return "null"
    return type(v).__name__


def _as_time(v: Any) -> datetime | None:
    """A claim compared with a timestamp: ISO-8601 text or epoch seconds."""
    if isinstance(v, datetime):
        return v
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            return datetime.fromtimestamp(v, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(v, str) and 10 <= len(v) <= 40:
        try:
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def _pair(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Bring two values to one comparable kind, or None."""
    ka, kb = kind_of(a), kind_of(b)
    if ka == kb and ka in ("number", "string", "timestamp", "duration", "bool"):
        return a, b
    if ka == "timestamp" or kb == "timestamp":
        ta, tb = _as_time(a), _as_time(b)
        if ta is not None and tb is not None:
            return ta, tb
    return None


def eq(a: Any, b: Any) -> bool:
    """Equality without Python's coercions (true is not 1)."""
    if a is ABSENT or b is ABSENT:
        return False
    p = _pair(a, b)
    if p is not None:
        return bool(p[0] == p[1])
    ka, kb = kind_of(a), kind_of(b)
    if ka == "list" and kb == "list":
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b))
    if ka == kb and ka in ("object", "null"):
        return bool(a == b)
    return False


def order(op: str, a: Any, b: Any) -> bool | Err:
    if a is ABSENT or b is ABSENT:
        return False
    p = _pair(a, b)
    if p is None or isinstance(p[0], bool):
        return Err(f"cannot compare {kind_of(a)} {op} {kind_of(b)}")
    x, y = p
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def member(a: Any, b: Any) -> bool | Err:
    """``a in b``: b a list (membership) or a string (substring)."""
    if a is ABSENT or b is ABSENT:
        return False
    if isinstance(b, (list, tuple, frozenset)):
        if isinstance(a, str) and not isinstance(b, frozenset):
            for x in b:
                if x.__class__ is str and x == a:
                    return True
            return any(eq(a, x) for x in b if x.__class__ is not str)
        return any(eq(a, x) for x in b)
    if isinstance(b, str):
        if isinstance(a, str):
            return a in b
        return Err(f"cannot look for a {kind_of(a)} in a string")
    return Err(f"'in' needs a list on its right, not a {kind_of(b)}")


def contains(a: Any, b: Any) -> bool | Err:
    if a is ABSENT or b is ABSENT:
        return False
    if isinstance(a, (list, tuple)):
        return any(eq(x, b) for x in a)
    if isinstance(a, str):
        if isinstance(b, str):
            return b in a
        return Err(f"a string can only contain a string, not a {kind_of(b)}")
    return Err(f"'contains' needs a list or string on its left, not a {kind_of(a)}")


def starts_with(a: Any, b: Any) -> bool | Err:
    if a is ABSENT or b is ABSENT:
        return False
    if isinstance(a, str) and isinstance(b, str):
        return a.startswith(b)
    return Err(f"'starts with' needs two strings, not {kind_of(a)} and {kind_of(b)}")


def ends_with(a: Any, b: Any) -> bool | Err:
    if a is ABSENT or b is ABSENT:
        return False
    if isinstance(a, str) and isinstance(b, str):
        return a.endswith(b)
    return Err(f"'ends with' needs two strings, not {kind_of(a)} and {kind_of(b)}")


# ------------------------------------------------------------------ globs


class Glob:
    """A glob (``*`` any run of characters, ``?`` one character, ``\\`` escapes)
    matched in time linear in the subject for a fixed pattern: the pattern is
    cut at each ``*``; the pieces are found left to right, each at its
    leftmost place, which is exact for globs and never backtracks."""

    __slots__ = ("pattern", "pieces", "anchored_start", "anchored_end", "exact")

    def __init__(self, pattern: str):
        self.pattern = pattern
        pieces: list[list[str | None]] = [[]]  # None: any one character
        i = 0
        while i < len(pattern):
            c = pattern[i]
            if c == "\\" and i + 1 < len(pattern):
                pieces[-1].append(pattern[i + 1])  # a literal character
                i += 2
                continue
            if c == "*":
                pieces.append([])
            elif c == "?":
                pieces[-1].append(None)
            else:
                pieces[-1].append(c)
            i += 1
        self.exact = len(pieces) == 1
        self.pieces = [_Piece(p) for p in pieces]

    def match(self, s: str) -> bool:
        pieces = self.pieces
        if self.exact:
            return pieces[0].matches_at(s, 0) and len(s) == pieces[0].size
        first, last = pieces[0], pieces[-1]
        if len(s) < first.size + last.size:
            return False
        if not first.matches_at(s, 0):
            return False
        end = len(s) - last.size
        if not last.matches_at(s, end):
            return False
        pos = first.size
        for piece in pieces[1:-1]:
            found = piece.find(s, pos, end)
            if found < 0:
                return False
            pos = found + piece.size
        return True


_UNUSED = re.compile(r"(?!)")  # the regex of a plain piece: never read (plain pieces are found with str methods)


class _Piece:
    __slots__ = ("chars", "size", "plain", "regex")

    def __init__(self, chars: list[str | None]):
        self.chars = chars
        self.size = len(chars)
        self.plain = None if any(c is None for c in chars) else "".join(c for c in chars if c is not None)
        # a piece with '?' is a fixed-width regex without quantifiers: linear search
        self.regex = (
            _UNUSED
            if self.plain is not None
            else re.compile("".join("." if c is None else re.escape(c) for c in chars), re.DOTALL)
        )

    def matches_at(self, s: str, i: int) -> bool:
        if self.plain is not None:
            return s.startswith(self.plain, i)
        if i + self.size > len(s):
            return False
        return self.regex.match(s, i) is not None

    def find(self, s: str, start: int, end: int) -> int:
        if self.plain is not None:
            return s.find(self.plain, start, end)
        m = self.regex.search(s, start, end)
        return m.start() if m else -1


_GLOB_CACHE: dict[str, Glob] = {}


def glob(pattern: str) -> Glob:
    g = _GLOB_CACHE.get(pattern)
    if g is None:
        if len(_GLOB_CACHE) > 4096:
            _GLOB_CACHE.clear()
        g = _GLOB_CACHE[pattern] = Glob(pattern)
    return g


def like(a: Any, b: Any) -> bool | Err:
    if a is ABSENT or b is ABSENT:
        return False
    if isinstance(a, str) and isinstance(b, str):
        return glob(b).match(a)
    return Err(f"'like' needs a string and a pattern, not {kind_of(a)} and {kind_of(b)}")


# ------------------------------------------------------------------ Kleene logic


def k_and(results: Iterable[Any]) -> Any:
    missing: set[str] = set()
    err = None
    for r in results:
        if r is False:
            return False
        if r is True:
            continue
        if isinstance(r, Unknown):
            missing |= r
        else:
            err = err or r
    if err is not None:
        return err
    if missing:
        return Unknown(missing)
    return True


def k_or(results: Iterable[Any]) -> Any:
    missing: set[str] = set()
    err = None
    for r in results:
        if r is True:
            return True
        if r is False:
            continue
        if isinstance(r, Unknown):
            missing |= r
        else:
            err = err or r
    if err is not None:
        return err
    if missing:
        return Unknown(missing)
    return False


def k_not(r: Any) -> Any:
    if r is True:
        return False
    if r is False:
        return True
    return r  # Unknown and Err stay what they are


# ------------------------------------------------------------------ literals and operators

RESOURCE_ATTRS = ("id", "name", "type", "owner", "scopes", "description")

ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
JWT_FORMAT = "urn:ietf:params:oauth:token-type:jwt"
FORMAT_URIS = {"id_token": ID_TOKEN_FORMAT, "jwt": JWT_FORMAT}


def format_uri(fmt: str) -> str:
    """``id_token`` / ``jwt`` / a URI → the claim_token_format URI (G-15)."""
    return FORMAT_URIS.get(fmt, fmt)


def literal_value(node: A.Literal) -> Any:
    if node.kind == "list":
        return tuple(literal_value(x) for x in node.value)
    return node.value


OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": eq,
    "!=": lambda a, b: False if (a is ABSENT or b is ABSENT) else not eq(a, b),
    "<": lambda a, b: order("<", a, b),
    "<=": lambda a, b: order("<=", a, b),
    ">": lambda a, b: order(">", a, b),
    ">=": lambda a, b: order(">=", a, b),
    "in": member,
    "not in": lambda a, b: k_not(member(a, b)) if not (a is ABSENT or b is ABSENT) else False,
    "contains": contains,
    "starts with": starts_with,
    "ends with": ends_with,
    "like": like,
}


def apply_op(op: str, a: Any, b: Any) -> Any:
    """One comparison over evaluated operands (missing claims → Unknown)."""
    if isinstance(a, Missing) or isinstance(b, Missing):
        names = (a.names if isinstance(a, Missing) else frozenset()) | (
            b.names if isinstance(b, Missing) else frozenset()
        )
        return Unknown(names)
    if isinstance(a, Err):
        return a
    if isinstance(b, Err):
        return b
    return OPS[op](a, b)
