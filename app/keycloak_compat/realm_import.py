"""Moving a Keycloak realm's UMA resources and permissions over (``uma keycloak import``).

Reads a realm export (``kc.sh export`` or the admin console's partial export, JSON) and the
authorization settings of one client (the resource server) in it:

* each resource becomes a registered resource of that resource server here, **keeping its
  Keycloak id** (so ids stored by the resource server stay valid), its name, type, scopes,
  icon and (as extra members, as the protection API keeps them) ``uris``, ``attributes``,
  ``displayName``, ``ownerManagedAccess``; its owner is the user Keycloak names, or
  ``default_owner`` for the resources the resource server owns itself;
* each resource or scope permission whose policies this language can say without guessing
  becomes rules appended to the resource owner's policy text (a new version, checked like
  any upload): a *user* policy → ``when claims.sub in [...]`` (the user names, which are the
  ``sub`` of a local account here); a *client* policy → ``when client.id in [...]``. Several
  policies with ``AFFIRMATIVE`` → one rule each; one policy → one rule.

What it cannot translate faithfully is listed in ``skipped`` with the reason, and nothing of
it is written: role, group, JavaScript, time, regex and aggregated policies, ``NEGATIVE``
logic, ``UNANIMOUS`` over several policies, permissions naming unknown resources. The owner
(or the operator) writes those as rules by hand; ``docs/keycloak-migration.md`` shows how.

:func:`plan` is pure (the export in, what would be done out); :func:`apply` does it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from policy_lang import PolicyError, format_text

from .. import owner_service
from ..errors import ApiError
from ..models import Resource
from ..protection.resources import parse_description

#: Resource members kept as extra members of the description.
EXTRA_MEMBERS = ("uris", "attributes", "displayName", "ownerManagedAccess")


class RealmExportError(ValueError):
    """The export cannot be read as a realm with that client's authorization settings."""


@dataclass
class Plan:
    resources: list[dict[str, Any]] = field(default_factory=list)  # {"id", "owner", "fields"}
    rules: dict[str, list[str]] = field(default_factory=dict)  # owner → formatted rules
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"what", "reason"}

    def summary(self) -> dict[str, Any]:
        return {
            "resources": [
                {"id": r["id"], "owner": r["owner"], "name": r["fields"].get("name")} for r in self.resources
            ],
            "rules": self.rules,
            "skipped": self.skipped,
        }


def _json_list(value: Any) -> list[str]:
    """Keycloak keeps a policy's ``config`` values as JSON text: ``"[\\"alice\\"]"``."""
    if isinstance(value, list):
        items = value
    elif isinstance(value, str) and value.strip():
        try:
            items = json.loads(value)
        except ValueError:
            return []
    else:
        return []
    return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _rule(scopes: list[str], resource_id: str, condition: str, comment: str) -> str:
    text = f"permit {', '.join(_quote(s) for s in scopes)} on resource {_quote(resource_id)} when {condition}\n"
    return f"# {comment}\n" + format_text(text).strip("\n")


def _condition(policy: dict[str, Any]) -> tuple[str | None, str]:
    """``(condition, "")`` for a policy this language can say, else ``(None, reason)``."""
    kind = policy.get("type")
    if policy.get("logic", "POSITIVE") != "POSITIVE":
        return None, "NEGATIVE logic"
    config = policy.get("config") or {}
    if kind == "user":
        users = _json_list(config.get("users"))
        return (f"claims.sub in [{', '.join(_quote(u) for u in users)}]", "") if users else (None, "no users")
    if kind == "client":
        clients = _json_list(config.get("clients"))
        return (f"client.id in [{', '.join(_quote(c) for c in clients)}]", "") if clients else (None, "no clients")
    return None, f"a {kind} policy has no faithful translation; write it as a rule by hand"


def plan(export: Any, *, client_id: str, default_owner: str) -> Plan:
    """What importing ``client_id``'s authorization settings from the realm ``export`` does."""
    if not isinstance(export, dict) or not isinstance(export.get("clients"), list):
        raise RealmExportError("not a realm export: no 'clients' array")
    client = next((c for c in export["clients"] if isinstance(c, dict) and c.get("clientId") == client_id), None)
    if client is None:
        raise RealmExportError(f"the export has no client {client_id!r}")
    settings = client.get("authorizationSettings")
    if not isinstance(settings, dict):
        raise RealmExportError(f"client {client_id!r} has no authorization settings in the export")
    out = Plan()
    by_name: dict[str, dict[str, Any]] = {}
    for res in settings.get("resources") or []:
        if not isinstance(res, dict):
            continue
        rid, name = res.get("_id"), res.get("name")
        if not isinstance(rid, str) or not rid or len(rid) > 64:
            out.skipped.append({"what": f"resource {name!r}", "reason": "no usable _id"})
            continue
        owner_field = res.get("owner")
        owner = owner_field.get("name") if isinstance(owner_field, dict) else owner_field
        if not isinstance(owner, str) or not owner or owner == client_id:
            owner = default_owner
        scopes = [s.get("name") if isinstance(s, dict) else s for s in res.get("scopes") or []]
        description = {
            "name": name,
            "type": res.get("type"),
            "icon_uri": res.get("icon_uri") or None,
            "resource_scopes": [s for s in scopes if isinstance(s, str)],
            **{k: res[k] for k in EXTRA_MEMBERS if k in res},
        }
        try:
            fields = parse_description(description)
        except ApiError as exc:
            out.skipped.append({"what": f"resource {name!r}", "reason": exc.description})
            continue
        entry = {"id": rid, "owner": owner, "fields": fields}
        out.resources.append(entry)
        if isinstance(name, str):
            by_name[name] = entry

    policies = {p.get("name"): p for p in settings.get("policies") or [] if isinstance(p, dict)}
    for permission in policies.values():
        if permission.get("type") not in ("resource", "scope"):
            continue
        what = f"permission {permission.get('name')!r}"
        config = permission.get("config") or {}
        applied = [policies.get(n) for n in _json_list(config.get("applyPolicies"))]
        if not applied or any(p is None for p in applied):
            out.skipped.append({"what": what, "reason": "it applies no policy, or one missing from the export"})
            continue
        if len(applied) > 1 and permission.get("decisionStrategy", "UNANIMOUS") == "UNANIMOUS":
            out.skipped.append({"what": what, "reason": "UNANIMOUS over several policies"})
            continue
        conditions = []
        for policy in applied:
            assert policy is not None
            condition, reason = _condition(policy)
            if condition is None:
                out.skipped.append({"what": f"{what}, policy {policy.get('name')!r}", "reason": reason})
            else:
                conditions.append((policy.get("name"), condition))
        if not conditions:
            continue
        names = _json_list(config.get("resources"))
        targets = [by_name.get(n) for n in names]
        if not targets or any(t is None for t in targets):
            out.skipped.append({"what": what, "reason": "it names no resource, or one not imported"})
            continue
        wanted = _json_list(config.get("scopes"))
        for target in targets:
            assert target is not None
            available = target["fields"]["resource_scopes"]
            scopes = [s for s in wanted if s in available] if wanted else list(available)
            if not scopes:
                out.skipped.append(
                    {"what": f"{what} on {target['id']}", "reason": "none of its scopes is the resource's"}
                )
                continue
            for policy_name, condition in conditions:
                comment = f"Imported from Keycloak: {permission.get('name')} / {policy_name}".replace("\n", " ")
                try:
                    rule = _rule(scopes, target["id"], condition, comment)
                except PolicyError as exc:
                    out.skipped.append({"what": what, "reason": f"the rule does not read: {exc}"})
                    continue
                out.rules.setdefault(target["owner"], []).append(rule)
    return out


def apply(db: Session, the_plan: Plan, *, rs_client_id: str) -> dict[str, Any]:
    """Register the resources (those whose id is taken are reported, not changed) and append the
    rules (those not in the text already) to each owner's text as a new version (checked; a
    refused text → :class:`app.owner_service.InvalidPolicy`)."""
    created, existing = [], []
    for entry in the_plan.resources:
        if db.get(Resource, entry["id"]) is not None:
            existing.append(entry["id"])
            continue
        db.add(Resource(id=entry["id"], owner=entry["owner"], rs_client_id=rs_client_id, **entry["fields"]))
        created.append(entry["id"])
    db.commit()
    versions = {}
    for owner, rules in the_plan.rules.items():
        text, _version = owner_service.policy_text(db, owner)
        fresh = [rule for rule in rules if rule not in text]  # imported before: not again
        if not fresh:
            continue
        body = text.rstrip("\n")
        added = "\n\n".join(fresh)
        doc, _warnings = owner_service.save_policy(db, owner, f"{body}\n\n{added}\n" if body else f"{added}\n")
        versions[owner] = doc.version
    return {"created": created, "already_registered": existing, "policy_versions": versions}
