"""Keycloak's resource representation over this server's resource descriptions (no storage here).

Keycloak's protection API sends and answers a ``ResourceRepresentation``::

    {"name", "type", "icon_uri", "uris": [...], "resource_scopes": ["view"] | [{"name": "view"}],
     "owner": "alice" | {"id", "name"}, "ownerManagedAccess", "attributes": {...}, "displayName"}

:func:`to_description` turns one into a UMA resource description checked by the one parser of
the standard surface (:func:`app.protection.resources.parse_description`): Keycloak's members
without a UMA meaning (``uris``, ``attributes``, ``displayName``, ``ownerManagedAccess``) are
kept as extra members, as the standard surface keeps any. :func:`representation` answers a
stored resource the way Keycloak does; :func:`matches` applies the list filters of
``GET resource_set`` (``name``, ``exactName``, ``uri``, ``matchingUri``, ``owner``, ``type``,
``scope``).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import InvalidRequest
from ..models import Resource, Token
from ..protection.resources import parse_description

#: Members of Keycloak's representation that the AS sets itself (or that name the AS's record).
IGNORED = ("_id", "id", "owner", "scopes")


def _scope_names(value: Any) -> Any:
    """``["view"]`` or ``[{"name": "view"}]`` → ``["view"]`` (anything else is left for the parser to refuse)."""
    if not isinstance(value, list):
        return value
    return [item.get("name") if isinstance(item, dict) else item for item in value]


def owner_name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name") or value.get("id")
    return value if isinstance(value, str) and value else None


def to_description(data: Any, pat: Token) -> dict[str, Any]:
    """The stored fields for a Keycloak resource representation sent with ``pat``.

    Keycloak lets a resource server name the owner (``owner``); here a resource belongs to the
    owner its PAT was issued for (as on the standard surface), so another owner is refused
    rather than silently ignored."""
    if not isinstance(data, dict):
        raise InvalidRequest("The resource representation must be a JSON object.")
    owner = owner_name(data.get("owner"))
    if data.get("owner") is not None and owner not in (pat.owner, pat.subject):
        raise InvalidRequest(
            f"'owner' must be the PAT's owner ({pat.owner}): a resource server registers a user's "
            "resources with a PAT that user authorized."
        )
    scopes = data.get("resource_scopes", data.get("scopes"))
    description = {k: v for k, v in data.items() if k not in (*IGNORED, "resource_scopes")}
    description["resource_scopes"] = _scope_names(scopes) if scopes is not None else []
    return parse_description(description)


def representation(row: Resource) -> dict[str, Any]:
    """A stored resource as Keycloak answers it (``_id``, ``owner`` object, scope objects)."""
    doc = row.description_document()
    doc["resource_scopes"] = [{"name": s} for s in row.resource_scopes]
    doc["owner"] = {"id": row.owner, "name": row.owner}
    doc.setdefault("ownerManagedAccess", False)
    doc.setdefault("uris", [])
    return doc


def _uris(row: Resource) -> list[str]:
    uris = row.extra.get("uris")
    if isinstance(uris, str):
        return [uris]
    return [u for u in uris if isinstance(u, str)] if isinstance(uris, list) else []


def _uri_pattern(pattern: str) -> re.Pattern[str]:
    """A Keycloak URI pattern (``/albums/{id}``, ``/albums/*``) as a regular expression."""
    out = []
    for part in re.split(r"(\{[^}/]*\}|\*)", pattern):
        if part == "*":
            out.append(".*")
        elif part.startswith("{") and part.endswith("}"):
            out.append("[^/]+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _true(value: str | None) -> bool:
    return (value or "").lower() == "true"


def matches(row: Resource, query: dict[str, str]) -> bool:
    """Whether ``row`` passes Keycloak's list filters (each one given must hold)."""
    name = query.get("name")
    if name:
        have = row.name or ""
        if _true(query.get("exactName")):
            if have != name:
                return False
        elif name.lower() not in have.lower():
            return False
    uri = query.get("uri")
    if uri:
        uris = _uris(row)
        if _true(query.get("matchingUri")):
            if not any(u == uri or _uri_pattern(u).fullmatch(uri) for u in uris):
                return False
        elif uri not in uris:
            return False
    owner = query.get("owner")
    if owner and owner != row.owner:
        return False
    kind = query.get("type")
    if kind and kind != row.type:
        return False
    scope = query.get("scope")
    return not scope or any(scope.lower() in s.lower() for s in row.resource_scopes)


def page(values: list[Any], first: str | None, maximum: str | None) -> list[Any]:
    """Keycloak's ``first`` (offset) and ``max`` (count; negative: all)."""
    try:
        start = int(first) if first else 0
        count = int(maximum) if maximum else -1
    except ValueError:
        raise InvalidRequest("'first' and 'max' must be integers.") from None
    if start < 0:
        raise InvalidRequest("'first' must not be negative.")
    return values[start:] if count < 0 else values[start : start + count]
