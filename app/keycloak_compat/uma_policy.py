"""Keycloak's UMA policy endpoint: a resource server manages user-managed sharing for an owner.

    POST   /realms/{realm}/authz/protection/uma-policy/{resource_id}   → 200 the policy (with its id)
    GET    /realms/{realm}/authz/protection/uma-policy?resource=&name=&scope=&first=&max=   → 200 [policies]
    GET    /realms/{realm}/authz/protection/uma-policy/{policy_id}    → 200 the policy
    PUT    /realms/{realm}/authz/protection/uma-policy/{policy_id}    → 200, empty body (as Keycloak)
    DELETE /realms/{realm}/authz/protection/uma-policy/{policy_id}    → 204

A policy is Keycloak's ``{"name", "description", "scopes", "users"}``; here it is a rule of the
owner's policy text, written by :mod:`app.sharing` (the share pages' rules) under a label
comment that names it, and saved as a new version of that text (checked like any upload; the
owner sees and can edit it on their pages)::

    # label: uma-policy-3f9c2a1b7e04d5c6
    # name: Family
    # description: my family may view
    permit view on resource "R" when claims.sub in ["bob", "carol"]

Reading it back goes through :func:`app.sharing.read_shares`: a labelled rule the owner has
since edited into something a share cannot express is no longer a policy of this endpoint (it
stays in the text, and keeps deciding). Keycloak's ``roles``, ``groups``, ``clients`` and
``condition`` have no share form: they are refused with a clear 400 (write such a rule in the
policy text instead). Every call needs a PAT of the owner at the resource's resource server.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .. import owner_service, sharing
from ..body import json_body
from ..db import get_session
from ..errors import NO_STORE, InvalidRequest, NotFound
from ..models import Resource, Token
from ..protection.auth import current_pat, pat_required
from ..protection.resources import find_resource, resources_of
from .resources import page
from .views import PROTECTION, known_realm

bp = Blueprint("keycloak_uma_policy", __name__)
bp.url_value_preprocessor(known_realm)  # only the configured realm exists

POLICY_PATH = PROTECTION + "/uma-policy"
LABEL_PREFIX = "uma-policy-"
_LABEL = re.compile(r"^#\s*label:\s*uma-policy-([0-9a-f]{16})\s*$")
_META = re.compile(r"^#\s*(name|description):\s?(.*)$")
#: Members of Keycloak's representation without a share form here.
UNSUPPORTED = ("roles", "groups", "clients", "condition")
MAX_TEXT = 200


def _one_line(value: Any, member: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise InvalidRequest(f"'{member}' must be one line of at most {MAX_TEXT} characters.")
    return value.strip()


def _names(value: Any, member: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidRequest(f"'{member}' must be an array of names.")
    return list(dict.fromkeys(v.strip() for v in value))


def _block(policy_id: str, data: Any, resource: Resource) -> str:
    """The label comments and the share rule of one policy (:class:`InvalidRequest` for input
    that makes none)."""
    if not isinstance(data, dict):
        raise InvalidRequest("The policy must be a JSON object.")
    given = [m for m in UNSUPPORTED if data.get(m)]
    if given:
        raise InvalidRequest(
            f"'{given[0]}' has no equivalent here: name the people in 'users', or write the rule in the owner's policy text."
        )
    name = _one_line(data.get("name"), "name")
    description = _one_line(data.get("description"), "description")
    scopes = _names(data.get("scopes"), "scopes") or list(resource.resource_scopes)
    unknown = [s for s in scopes if s not in resource.resource_scopes]
    if unknown:
        raise InvalidRequest(f"Scope {unknown[0][:64]} is not registered for resource {resource.id}.")
    users = _names(data.get("users"), "users")
    if not users:
        raise InvalidRequest("'users' must name at least one user (their user names).")
    try:
        rule = sharing.share_rule(resource.id, scopes, "sub", users)
    except sharing.ShareError as exc:
        raise InvalidRequest(str(exc)) from None
    lines = [f"# label: {LABEL_PREFIX}{policy_id}"]
    if name:
        lines.append(f"# name: {name}")
    if description:
        lines.append(f"# description: {description}")
    return "\n".join([*lines, rule])


def _read(text: str, owner: str) -> list[dict[str, Any]]:
    """The policies of this endpoint in the owner's ``text``: ``{"id", "name", "description",
    "scopes", "users", "resource", "start", "end"}`` (``start``..``end``: the block's line numbers)."""
    lines = text.splitlines()
    by_line: dict[int, list[sharing.Share]] = {}
    for share in sharing.read_shares(text, None):
        if share.claim == "sub" and share.effect == "permit" and share.expiry is None:
            by_line.setdefault(share.line, []).append(share)
    out = []
    for line, shares in by_line.items():
        start, meta, policy_id = line, {}, None
        while start > 1 and lines[start - 2].startswith("#"):
            comment = lines[start - 2]
            label = _LABEL.match(comment)
            if label:
                policy_id = label.group(1)
            elif found := _META.match(comment):
                meta[found.group(1)] = found.group(2)
            start -= 1
        if policy_id is None:
            continue
        first = shares[0]
        out.append(
            {
                "id": policy_id,
                "name": meta.get("name", ""),
                "description": meta.get("description", ""),
                "type": "uma",
                "logic": "POSITIVE",
                "decisionStrategy": "UNANIMOUS",
                "owner": owner,
                "resource": first.resource_id,
                "scopes": list(first.scopes),
                "users": [s.person for s in shares],
                "start": start,
                "end": first.end_line,
            }
        )
    return out


def _public(policy: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in policy.items() if k not in ("start", "end", "resource")} | {
        "resources": [policy["resource"]]
    }


def _mine(pat: Token) -> tuple[str, int, list[dict[str, Any]]]:
    """The owner's text, its version, and its policies on resources of the PAT's resource server."""
    session = get_session()
    text, version = owner_service.policy_text(session, pat.owner)
    ids = {row.id for row in resources_of(session, pat)}
    return text, version, [p for p in _read(text, pat.owner) if p["resource"] in ids]


def _find(pat: Token, policy_id: str) -> tuple[str, int, dict[str, Any]]:
    text, version, policies = _mine(pat)
    for policy in policies:
        if policy["id"] == policy_id:
            return text, version, policy
    raise NotFound("No such policy.")


def _replace(text: str, policy: dict[str, Any], block: str | None) -> str:
    """``text`` with the policy's block replaced by ``block`` (None: removed, with the blank line before it)."""
    lines = text.splitlines()
    before, after = lines[: policy["start"] - 1], lines[policy["end"] :]
    if block is None:
        if before and not before[-1].strip() and (not after or not after[0].strip()):
            before = before[:-1]
        kept = [*before, *after]
    else:
        kept = [*before, *block.splitlines(), *after]
    return "\n".join(kept).strip("\n") + "\n"


def _save(pat: Token, version: int, text: str) -> None:
    owner_service.save_change(get_session(), pat.owner, version, text)


@bp.post(POLICY_PATH + "/<path:resource_id>")
@pat_required
def create_policy(resource_id: str) -> Response:
    """A new policy for the resource: a share rule appended to the owner's text (a new version)."""
    pat = current_pat()
    session = get_session()
    resource = find_resource(session, pat, resource_id)
    policy_id = secrets.token_hex(8)
    block = _block(policy_id, json_body(), resource)
    text, version = owner_service.policy_text(session, pat.owner)
    _save(pat, version, sharing.add_share(text, block))
    _text, _version, policy = _find(pat, policy_id)
    response = jsonify(_public(policy))
    response.headers.update(NO_STORE)
    return response


@bp.get(POLICY_PATH)
@pat_required
def list_policies() -> Response:
    """Keycloak's query: ``resource`` (id), ``name`` (a part of it), ``scope``, ``first``, ``max``."""
    _text, _version, policies = _mine(current_pat())
    resource, name, scope = (request.args.get(k, "") for k in ("resource", "name", "scope"))
    chosen = [
        p
        for p in policies
        if (not resource or p["resource"] == resource)
        and (not name or name.lower() in p["name"].lower())
        and (not scope or scope in p["scopes"])
    ]
    response = jsonify([_public(p) for p in page(chosen, request.args.get("first"), request.args.get("max"))])
    response.headers.update(NO_STORE)
    return response


@bp.get(POLICY_PATH + "/<policy_id>")
@pat_required
def read_policy(policy_id: str) -> Response:
    response = jsonify(_public(_find(current_pat(), policy_id)[2]))
    response.headers.update(NO_STORE)
    return response


@bp.put(POLICY_PATH + "/<policy_id>")
@pat_required
def update_policy(policy_id: str) -> Response:
    """The policy's rule rewritten in place (a new version); 200 with an empty body, as Keycloak."""
    pat = current_pat()
    text, version, policy = _find(pat, policy_id)
    resource = find_resource(get_session(), pat, policy["resource"])
    _save(pat, version, _replace(text, policy, _block(policy_id, json_body(), resource)))
    return Response(status=200, headers=NO_STORE)


@bp.delete(POLICY_PATH + "/<policy_id>")
@pat_required
def delete_policy(policy_id: str) -> Response:
    """The policy's rule and label removed from the owner's text (a new version); 204."""
    pat = current_pat()
    text, version, policy = _find(pat, policy_id)
    _save(pat, version, _replace(text, policy, None))
    return Response(status=204, headers=NO_STORE)
