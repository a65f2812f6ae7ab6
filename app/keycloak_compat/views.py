"""The realm's URLs: thin adapters over the standard endpoints and services.

    GET  /realms/{realm}                                    Keycloak's realm document (its ``public_key``)
    GET  /realms/{realm}/.well-known/uma2-configuration     the realm's discovery document
    GET  /realms/{realm}/.well-known/openid-configuration   the same document
    GET  /.well-known/oauth-authorization-server/realms/{realm}   (RFC 8414 §3.1: inserted well-known)
    GET  /.well-known/uma2-configuration/realms/{realm}
    POST /realms/{realm}/protocol/openid-connect/token              the token endpoint (+ Keycloak's grant extensions)
    POST /realms/{realm}/protocol/openid-connect/token/introspect   /uma/introspect
    GET  /realms/{realm}/protocol/openid-connect/certs              /jwks
    POST|GET /realms/{realm}/authz/protection/resource_set          create → 201 representation; list → ids
    GET|PUT|DELETE /realms/{realm}/authz/protection/resource_set/{id}   read → 200; update → 204; delete → 204
    POST /realms/{realm}/authz/protection/permission                /uma/permission → 201 {"ticket"}
    …/authz/protection/uma-policy                                   :mod:`.uma_policy`

Every route is a PAT- or client-authenticated API, like the standard ones, over the same
data: a resource registered here is the one ``/uma/resources`` shows, and the other way round.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.datastructures import MultiDict

from .. import get_settings
from ..body import json_body
from ..config import Settings
from ..db import get_session
from ..errors import NO_STORE, NotFound
from ..oauth.keys import active_key, private_key
from ..oauth.metadata import server_metadata
from ..oauth.requests import Payload
from ..oauth.server import get_server
from ..oauth.views import jwks_endpoint
from ..protection.auth import current_pat, pat_required
from ..protection.introspection import introspect as standard_introspect
from ..protection.permissions import request_permission
from ..protection.resources import delete_resource as standard_delete
from ..protection.resources import find_resource, register_resource, replace_resource, resources_of
from . import resources as kc

bp = Blueprint("keycloak", __name__)  # the name the grant recognises its token endpoint by (BLUEPRINT)

REALM = "/realms/<realm>"
PROTECTION = REALM + "/authz/protection"


def realm_url(settings: Settings, path: str = "") -> str:
    return settings.url(f"/realms/{settings.keycloak_realm}{path}")


@bp.url_value_preprocessor
def known_realm(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Only the configured realm exists; any other is 404 (as an unknown realm is at Keycloak)."""
    if values is not None and values.pop("realm", get_settings().keycloak_realm) != get_settings().keycloak_realm:
        raise NotFound("No such realm.")


def realm_metadata(settings: Settings) -> dict[str, Any]:
    """The standard discovery document with the realm's issuer and endpoints (Keycloak's layout)."""
    data = server_metadata(current_app, settings)
    connect = "/protocol/openid-connect"
    data.update(
        issuer=realm_url(settings),
        token_endpoint=realm_url(settings, connect + "/token"),
        introspection_endpoint=realm_url(settings, connect + "/token/introspect"),
        jwks_uri=realm_url(settings, connect + "/certs"),
        resource_registration_endpoint=realm_url(settings, "/authz/protection/resource_set"),
        permission_endpoint=realm_url(settings, "/authz/protection/permission"),
        policy_endpoint=realm_url(settings, "/authz/protection/uma-policy"),
    )
    return data


@bp.get(REALM)
def realm_info() -> Any:
    """Keycloak's realm document: ``public_key`` is the active signing key (base64 DER, as
    Keycloak's clients read it to verify tokens without the JWKS)."""
    settings = get_settings()
    public = private_key(active_key(get_session())).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return jsonify(
        {
            "realm": settings.keycloak_realm,
            "public_key": base64.b64encode(der).decode("ascii"),
            "token-service": realm_url(settings, "/protocol/openid-connect"),
            "account-service": settings.url("/account"),
            "tokens-not-before": 0,
        }
    )


@bp.get(REALM + "/.well-known/uma2-configuration")
@bp.get(REALM + "/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server" + REALM)
@bp.get("/.well-known/uma2-configuration" + REALM)
def discovery() -> Any:
    return jsonify(realm_metadata(get_settings()))


@bp.post(REALM + "/protocol/openid-connect/token")
def token() -> Any:
    """The standard token endpoint over Keycloak's form: empty parameters (Keycloak's clients send
    ``username=&password=`` with client credentials) are dropped; ``openid`` in ``scope`` means
    the client's registered scopes (no ID token is issued); repeated ``permission`` parameters
    are the grant's (:mod:`.grant`)."""
    server = get_server()
    req = server.create_oauth2_request(None)
    params: MultiDict[str, str] = MultiDict()
    permissions = []
    for key, value in req.payload.data.items(multi=True):
        if key == "permission":
            permissions.append(value)
        elif key == "scope":
            value = " ".join(s for s in value.split(" ") if s and s != "openid")
            if value:
                params.add(key, value)
        elif value != "":
            params.add(key, value)
    g.keycloak_permissions = permissions
    req.payload = Payload(params)
    return server.create_token_response(req)


@bp.post(REALM + "/protocol/openid-connect/token/introspect")
def introspect() -> Any:
    return standard_introspect()


@bp.get(REALM + "/protocol/openid-connect/certs")
def certs() -> Any:
    return jwks_endpoint()


def _no_store(response: Response) -> Response:
    response.headers.update(NO_STORE)
    return response


@bp.post(PROTECTION + "/resource_set")
@pat_required
def create_resource() -> Response:
    """Create → 201 with the representation (``_id`` included), as Keycloak answers."""
    pat = current_pat()
    row = register_resource(get_session(), pat, kc.to_description(json_body(), pat))
    response = _no_store(jsonify(kc.representation(row)))
    response.status_code = 201
    response.headers["Location"] = realm_url(get_settings(), f"/authz/protection/resource_set/{row.id}")
    return response


@bp.get(PROTECTION + "/resource_set")
@pat_required
def list_resources() -> Response:
    """The ids of the PAT's (owner, RS) resources passing Keycloak's filters, paged by ``first``/``max``;
    ``deep=true``: the representations instead of the ids."""
    query = {
        key: request.args.get(key, "") for key in ("name", "exactName", "uri", "matchingUri", "owner", "type", "scope")
    }
    rows = [row for row in resources_of(get_session(), current_pat()) if kc.matches(row, query)]
    rows = kc.page(rows, request.args.get("first"), request.args.get("max"))
    if request.args.get("deep", "").lower() == "true":
        return _no_store(jsonify([kc.representation(row) for row in rows]))
    return _no_store(jsonify([row.id for row in rows]))


@bp.get(PROTECTION + "/resource_set/<path:resource_id>")
@pat_required
def read_resource(resource_id: str) -> Response:
    return _no_store(jsonify(kc.representation(find_resource(get_session(), current_pat(), resource_id))))


@bp.put(PROTECTION + "/resource_set/<path:resource_id>")
@pat_required
def update_resource(resource_id: str) -> Response:
    """Update → 204 (Keycloak's answer; the standard surface answers 200 with ``_id``)."""
    session = get_session()
    pat = current_pat()
    row = find_resource(session, pat, resource_id)
    replace_resource(session, row, kc.to_description(json_body(), pat))
    return Response(status=204, headers=NO_STORE)


@bp.delete(PROTECTION + "/resource_set/<path:resource_id>")
def delete_resource(resource_id: str) -> Response:
    """The standard delete: 204, as Keycloak answers."""
    return standard_delete(resource_id)


@bp.post(PROTECTION + "/permission")
def permission() -> Response:
    """The standard permission endpoint: Keycloak's body is UMA's (one or an array of
    ``{"resource_id", "resource_scopes"}``) and its answer is the same 201 ``{"ticket"}``."""
    return request_permission()
