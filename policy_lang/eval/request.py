"""A request (section 4 of the language page) → plain values, or RequestError.

The shape is checked here once, so that deciding never meets a value of the
wrong kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

REQUEST_MEMBERS = frozenset(
    {"resource", "scopes", "claims", "claim_sources", "client", "time", "approvals", "permissions"}
)
PERMISSION_MEMBERS = frozenset({"resource", "scopes", "approvals"})
RESOURCE_MEMBERS = frozenset({"id", "owner", "type", "name", "scopes", "description", "icon_uri"})


class RequestError(ValueError):
    """The request is not of the documented shape (section 4 of the language page)."""


# ------------------------------------------------------------------ request parsing

_TIME_CACHE: dict[str, datetime] = {}


def parse_time(value: Any) -> datetime:
    if value.__class__ is str:
        t = _TIME_CACHE.get(value)
        if t is not None:
            return t
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise RequestError("'time' must be an ISO-8601 timestamp string such as 2026-11-27T10:00:00Z")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(f"'time' is not an ISO-8601 timestamp: {value!r}") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    try:
        t = t.astimezone(UTC)  # in UTC, so no later arithmetic leaves the calendar
    except OverflowError:
        raise RequestError(f"'time' is out of range: {value!r}") from None
    if len(_TIME_CACHE) > 1024:
        _TIME_CACHE.clear()
    _TIME_CACHE[value] = t
    return t


def _obj(value: Any, what: str) -> dict[str, Any]:
    if value.__class__ is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"'{what}' must be a JSON object")
    return value


def _scopes(value: Any, what: str) -> list[str]:
    if value.__class__ is not list:
        raise RequestError(f"'{what}' must be a list of scope names (strings)")
    for s in value:
        if s.__class__ is not str:
            raise RequestError(f"'{what}' must be a list of scope names (strings)")
    return value


def _approvals(value: Any, what: str) -> dict[str, str]:
    if not value:
        if value is None or value == []:
            return _NO_APPROVALS
    if not isinstance(value, list):
        raise RequestError(f'\'{what}\' must be a list of {{"scope", "answer"}} objects')
    out: dict[str, str] = {}
    for a in value:
        if (
            not isinstance(a, dict)
            or not isinstance(a.get("scope"), str)
            or a.get("answer") not in ("approved", "denied")
        ):
            raise RequestError(f'each of \'{what}\' is {{"scope": "...", "answer": "approved"|"denied"}}')
        unknown = set(a) - {"scope", "answer", "at"}
        if unknown:
            raise RequestError(f"unknown member {sorted(unknown)[0]!r} in '{what}'")
        # a refusal outweighs an approval of the same scope
        if out.get(a["scope"]) != "denied":
            out[a["scope"]] = a["answer"]
    return out


_NO_APPROVALS: dict[str, str] = {}
_NO_SOURCES: dict[str, Any] = {}


def _resource(value: Any, what: str) -> dict[str, Any]:
    r = _obj(value, what)
    if r.get("id").__class__ is not str:
        raise RequestError(f"'{what}' needs an 'id' (a string)")
    if r.get("owner").__class__ is not str:
        raise RequestError(f"'{what}' needs an 'owner' (a string)")
    for k in ("type", "name", "description"):
        v = r.get(k)
        if v is not None and v.__class__ is not str:
            raise RequestError(f"'{what}.{k}' must be a string")
    if r.get("scopes") is not None:
        _scopes(r["scopes"], f"{what}.scopes")
    return r


#: one requested resource: (the resource, its scopes, the owner's answers by scope)
Permission = tuple[dict[str, Any], list[str], dict[str, str]]
#: a request checked: (permissions, claims, claim sources, client, time)
Normalised = tuple[list[Permission], dict[str, Any], dict[str, Any], dict[str, Any], datetime]


def normalise(request: Any) -> Normalised:
    """Check a request's shape → (permissions, claims, claim_sources, client, time)."""
    return plain_request(request) or check_request(request)


def check_request(request: Any) -> Normalised:
    """:func:`normalise` for any request: each member checked in turn, the first
    problem raised as a :class:`RequestError`."""
    if not isinstance(request, dict):
        raise RequestError("a request is a JSON object")
    unknown = [k for k in request if k not in REQUEST_MEMBERS]
    if unknown:
        raise RequestError(
            f"unknown member {sorted(unknown)[0]!r} in the request (known: {', '.join(sorted(REQUEST_MEMBERS))})"
        )
    perms: list[Permission] = []
    if "permissions" in request:
        if "resource" in request or "scopes" in request:
            raise RequestError("give either 'resource' and 'scopes' or 'permissions', not both")
        plist = request["permissions"]
        if not isinstance(plist, list) or not plist:
            raise RequestError("'permissions' must be a non-empty list")
        for i, p in enumerate(plist):
            if not isinstance(p, dict):
                raise RequestError(f"'permissions[{i}]' must be an object")
            bad = set(p) - PERMISSION_MEMBERS
            if bad:
                raise RequestError(f"unknown member {sorted(bad)[0]!r} in 'permissions[{i}]'")
            perms.append(
                (
                    _resource(p.get("resource"), f"permissions[{i}].resource"),
                    _scopes(p.get("scopes"), f"permissions[{i}].scopes"),
                    _approvals(p.get("approvals"), f"permissions[{i}].approvals"),
                )
            )
    else:
        if "resource" not in request:
            raise RequestError("the request needs a 'resource' (or 'permissions')")
        perms.append(
            (
                _resource(request["resource"], "resource"),
                _scopes(request.get("scopes"), "scopes"),
                _approvals(request.get("approvals"), "approvals"),
            )
        )
    if "approvals" in request and "permissions" in request:
        raise RequestError("with 'permissions', give 'approvals' inside each permission")
    claims = _obj(request.get("claims"), "claims")
    sources = request.get("claim_sources")
    sources = _obj(sources, "claim_sources") if sources else _NO_SOURCES
    for name, src in sources.items():
        # a malformed source must not let a claim pass as if it had none (fail closed)
        if not isinstance(src, dict) or any(
            src.get(k) is not None and not isinstance(src.get(k), str) for k in ("issuer", "format")
        ):
            raise RequestError(f"'claim_sources.{name}' must be an object with 'issuer' and 'format' strings")
    client = _obj(request.get("client"), "client")
    return perms, claims, sources, client, parse_time(request.get("time"))


_PLAIN_MEMBERS = frozenset({"resource", "scopes", "claims", "client", "time"})
_TEXT_OR_NONE = (str, type(None))


def plain_request(request: Any) -> Normalised | None:
    """The usual request (one resource; no approvals, claim sources or permissions)
    checked in one pass, as :func:`check_request` would accept it; None for anything
    else, and check_request (which names the problem) runs instead. A request is
    checked on every decision: check_request's calls to one small helper per member
    were about a third of a decision's instructions."""
    if request.__class__ is not dict or not _PLAIN_MEMBERS.issuperset(request):
        return None
    r = request.get("resource")
    if (
        r.__class__ is not dict
        or r.get("id").__class__ is not str
        or r.get("owner").__class__ is not str
        or r.get("type").__class__ not in _TEXT_OR_NONE
        or r.get("name").__class__ not in _TEXT_OR_NONE
        or r.get("description").__class__ not in _TEXT_OR_NONE
    ):
        return None
    listed = r.get("scopes")
    if listed is not None:
        if listed.__class__ is not list:
            return None
        for s in listed:
            if s.__class__ is not str:
                return None
    scopes = request.get("scopes")
    if scopes.__class__ is not list:
        return None
    for s in scopes:
        if s.__class__ is not str:
            return None
    claims = request.get("claims")
    if claims is None:
        claims = {}
    elif claims.__class__ is not dict:
        return None
    client = request.get("client")
    if client is None:
        client = {}
    elif client.__class__ is not dict:
        return None
    t = request.get("time")
    if t is None:
        now = datetime.now(UTC)
    else:
        cached = _TIME_CACHE.get(t) if t.__class__ is str else None
        if cached is None:
            return None  # not a time seen before: parse_time reads it
        now = cached
    return [(r, scopes, _NO_APPROVALS)], claims, _NO_SOURCES, client, now
