"""A lower bound for the UMA grant: its work with the fewest layers, as a route of the same app.

``bench/grant_cpu.py --bare`` measures it beside the grant and the floor endpoint. The route
``POST /bench/bare-grant`` (form ``ticket``, HTTP Basic client credentials) does what the grant
cannot avoid, in the same application (its middleware, its database, its policy set, its
signing key) but without authlib's request and grant objects, the ORM session's transaction,
the lockout and the checks of an incomplete or hostile request:

* the client's secret checked against its cached row;
* the ticket spent by the grant's own ``UPDATE … RETURNING`` (which reads the policy-set version);
* the policy request built and decided by the set in use;
* the audit row and the RPT row inserted by Core statements on one connection, one commit;
* the RPT signed (RS256, the active key) and the JSON answer.

It is not a grant (no scope, claim, PCT, RPT-upgrade or error handling, no metrics): a
measure of how far trimming layers could take the real one. Registered only by the bench.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import jwt
from flask import Flask, abort, jsonify, request
from sqlalchemy import insert

PATH = "/bench/bare-grant"


def install(app: Flask) -> None:
    """Register the route on ``app`` (before its first request)."""
    from app.db import get_engine, get_session
    from app.grant.bridge import iso_now, load_resources, policy_request, requested_scopes, requesting_party_of
    from app.models import AuditRecord, Rpt
    from app.oauth.clients import cached_client
    from app.oauth.keys import ALGORITHM, active_key, private_key
    from app.policies import get_store
    from app.protection.tickets import _REDEEM
    from app.security import hash_token, new_token, now

    engine = get_engine(app)
    settings = app.config["UMA_SETTINGS"]
    audit_insert, rpt_insert = insert(AuditRecord.__table__), insert(Rpt.__table__)  # type: ignore[arg-type]

    def bare_grant() -> Any:
        try:
            client_id, _, secret = base64.b64decode(request.headers["Authorization"][6:]).decode().partition(":")
        except (KeyError, ValueError):
            abort(401)
        session = get_session()  # only for the cached rows: the writes go on their own connection
        client = cached_client(session, client_id)
        if client is None or not client.check_client_secret(secret):
            abort(401)
        at = now()
        with engine.begin() as conn:
            ticket = conn.execute(_REDEEM, {"digest": hash_token(request.form["ticket"]), "at": at}).one_or_none()
            if ticket is None:
                abort(400)
            requested = requested_scopes(ticket, load_resources(session, ticket), None, client)
            decision = get_store().current().policy_set.decide(policy_request(requested, client, {}, {}, {}, iso_now()))
            party = requesting_party_of({}, {}, settings.issuer, client_id)
            conn.execute(
                audit_insert,
                [
                    {
                        "created_at": at,
                        "owner": ticket.owner,
                        "requesting_party": party,
                        "client_id": client_id,
                        "resource_id": resource.id,
                        "scopes": scopes,
                        "outcome": decision.decision,
                        "rules": decision.reasons,
                        "policy_version": ticket.policy_set_version,
                        "claims": [],
                    }
                    for resource, scopes in requested
                ],
            )
            expires = at + settings.rpt_lifetime
            permissions = [
                {"resource_id": g["resource_id"], "resource_scopes": list(g["scopes"]), "iat": at, "exp": expires}
                for g in decision.granted
            ]
            key, jti, refresh = active_key(session), secrets.token_urlsafe(24), new_token()
            claims = {"iss": settings.issuer, "aud": ticket.rs_client_id, "azp": client_id, "iat": at}
            claims |= {"exp": expires, "jti": jti, "permissions": permissions, "sub": party}
            token = jwt.encode(claims, private_key(key), algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})
            conn.execute(
                rpt_insert,
                {
                    "jti": jti,
                    "token_hash": hash_token(token),
                    "format": "jwt",
                    "client_id": client_id,
                    "requesting_party": party,
                    "owner": ticket.owner,
                    "rs_client_id": ticket.rs_client_id,
                    "permissions": permissions,
                    "issued_at": at,
                    "expires_at": expires,
                    "refresh_token_hash": hash_token(refresh),
                    "refresh_expires_at": at + settings.rpt_refresh_lifetime,
                    "ticket_id": ticket.id,
                    "family_id": new_token()[:43],
                    "basis": {"claims": {}, "claim_sources": {}, "policy_version": ticket.policy_set_version},
                    "revoked": False,
                    "rotated": False,
                },
            )
        return jsonify(access_token=token, token_type="Bearer", expires_in=expires - at, refresh_token=refresh)

    app.add_url_rule(PATH, "bench_bare_grant", bare_grant, methods=["POST"])
    app.extensions["csrf"].exempt(bare_grant)  # an API route, like the token endpoint


def create_app() -> Flask:
    """The application with the bare grant's route: what ``bench/server.py --endpoints …,bare``
    serves (``gunicorn --pythonpath bench 'bare_grant:create_app()'``)."""
    from app import create_app as create_application

    application = create_application()
    install(application)
    return application
