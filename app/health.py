"""Liveness and readiness, for a load balancer or an orchestrator (issue 11, point 1).

``GET /healthz``  200 while the process runs: it reads nothing, so a database outage
                  does not make an orchestrator restart healthy processes.
``GET /readyz``   200 when this process can decide: a policy set that checked is in use
                  (compiled at start, before the first request) and the database answers
                  one small query; 503 otherwise (before the start-up compile, while the
                  database is unreachable or not migrated, or when no policy set ever
                  checked). The body says which.

Neither needs credentials nor tells more than the version of the policy set in use.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .policies import get_store

bp = Blueprint("health", __name__)


def _answer(body: dict[str, object], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz() -> Response:
    return _answer({"status": "ok"}, 200)


@bp.get("/readyz")
def readyz() -> Response:
    ready, details = get_store().readiness()
    return _answer({"status": "ready" if ready else "not ready", **details}, 200 if ready else 503)
