"""Audit trail: every grant decision, for the owners and their auditors.

One :class:`~app.models.AuditRecord` per resource of a decided request: when,
the requesting party, the client, the resource, the requested scopes, the
outcome (``permit``, ``partial``, ``need_info``, ``request_submitted``,
``deny``), the rules that made it (the engine's reasons for that resource),
the policy-set version in use and the names of the claims it was made with.
A requesting party's consent at the claims interaction is recorded the same
way, outcome ``claims_released``, with the names of the claims released. Owners read their own with ``GET /owner/audit``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from .models import AuditRecord
from .observability import count_decision
from .security import now

OUTCOMES = ("permit", "partial", "need_info", "request_submitted", "deny", "claims_released")
MAX_LIST = 500


def record_decision(
    session: Session,
    *,
    owner: str,
    requesting_party: str | None,
    client_id: str | None,
    requested: list[tuple[str, list[str]]],
    outcome: str,
    reasons: list[dict[str, Any]],
    policy_version: int | None,
    claims: list[str] | None = None,
) -> None:
    """Add the records of one decision (the caller commits). ``claims``: the names of the
    party's claims it was made with; for ``claims_released``, the names the party released
    at the claims interaction (issue 14: what was shared, never the values)."""
    at = now()
    names = sorted(claims or [])
    rows = [
        {
            "created_at": at,
            "owner": owner,
            "requesting_party": requesting_party,
            "client_id": client_id,
            "resource_id": resource_id,
            "scopes": list(scopes),
            "outcome": outcome,
            "rules": [r for r in reasons if r.get("resource_id") == resource_id],
            "policy_version": policy_version,
            "claims": names,
        }
        for resource_id, scopes in requested
    ]
    if rows:
        # A Core INSERT (one statement for all the resources), not ORM objects: see
        # app.protection.rpt.issue_rpt for the figure.
        session.connection().execute(insert(AuditRecord.__table__), rows)  # type: ignore[arg-type]
    count_decision(outcome)


def audit_json(row: AuditRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "time": row.created_at,
        "requesting_party": row.requesting_party,
        "client_id": row.client_id,
        "resource_id": row.resource_id,
        "scopes": list(row.scopes),
        "outcome": row.outcome,
        "rules": list(row.rules),
        "policy_version": row.policy_version,
        "claims": list(row.claims),
    }


def list_records(
    session: Session,
    owner: str,
    *,
    resource_id: str | None = None,
    outcome: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditRecord]:
    """An owner's records, newest first, optionally filtered by resource and outcome."""
    query = select(AuditRecord).where(AuditRecord.owner == owner)
    if resource_id is not None:
        query = query.where(AuditRecord.resource_id == resource_id)
    if outcome is not None:
        query = query.where(AuditRecord.outcome == outcome)
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    query = query.order_by(AuditRecord.id.desc()).limit(max(1, min(limit, MAX_LIST)))
    return list(session.execute(query).scalars())
