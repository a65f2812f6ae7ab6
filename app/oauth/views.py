"""HTTP endpoints of the OAuth side, in two blueprints:

* ``oauth`` — the page a person uses: authorize (+consent), with the session cookie;
* ``oauth_api`` — what clients call with their own credentials: discovery, JWKS, token,
  revocation, dynamic registration and its management (no session, so no anti-CSRF token;
  see ``app/factory.py``).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for

from .. import get_settings
from ..db import get_session
from ..web import current_user
from .keys import jwks
from .metadata import server_metadata
from .server import get_server

bp = Blueprint("oauth", __name__)
api = Blueprint("oauth_api", __name__)


@api.get("/.well-known/uma2-configuration")
@api.get("/.well-known/oauth-authorization-server")
def discovery() -> Any:
    """Discovery document (G-04…G-09, F-09…F-12, O-23…O-26).

    ``GET /.well-known/uma2-configuration`` → 200 ``application/json`` with
    ``issuer``, every endpoint, ``permission_endpoint``,
    ``resource_registration_endpoint``, ``introspection_endpoint``, ...
    """
    return jsonify(server_metadata(current_app, get_settings()))


@api.get("/jwks")
def jwks_endpoint() -> Any:
    """Public keys verifying JWT RPTs: the active key and recently retired ones."""
    response = jsonify(jwks(get_session(), get_settings().key_retention))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Any:
    """Authorization endpoint (RFC 6749 §4.1, RFC 7636; O-08, O-09, O-12, O-41…O-45).

    ``GET /authorize?response_type=code&client_id=…&redirect_uri=…&scope=uma_protection
    &state=…&code_challenge=…&code_challenge_method=S256`` shows the consent page
    (after the login page); ``POST`` of that page with the anti-CSRF token (checked for every page) and
    ``decision=approve|deny`` redirects (302) to the redirect URI with ``code`` and
    ``state``, or ``error=access_denied``. A bad ``client_id`` or ``redirect_uri``
    gives an error page and no redirect.
    """
    server = get_server()
    user = current_user()
    problem = server.form_problem(server.create_oauth2_request(None))
    if problem:
        return render_template("error.html", error="invalid_request", description=problem, not_redirected=True), 400
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return server.handle_error_response(None, error)
        return (
            render_template("error.html", error=error.error, description=error.description, not_redirected=True),
            400,
        )
    if user is None:
        return redirect(url_for("web.login", next=request.full_path), code=303)
    if request.method == "GET":
        return render_template(
            "consent.html",
            user=user,
            client=grant.client,
            scopes=(grant.request.scope or "").split(),
            redirect_uri=grant.redirect_uri,
            action=request.full_path,
        )
    approved = request.form.get("decision") == "approve"
    return server.create_authorization_response(grant_user=user if approved else None, grant=grant)


@api.post("/token")
def token() -> Any:
    """Token endpoint (RFC 6749 §3.2; O-02…O-06, O-10, O-11): authorization_code,
    client_credentials, refresh_token — and the UMA grant once ``app.grant`` registers it."""
    return get_server().create_token_response()


@api.post("/revoke")
def revoke() -> Any:
    """Revocation (RFC 7009; G-56, O-29…O-31): ``token``, optional ``token_type_hint``
    (``access_token``, ``refresh_token``, ``pct``), client authentication → 200."""
    return get_server().create_endpoint_response("revocation")


@api.post("/register")
def register() -> Any:
    """Dynamic client registration (RFC 7591; G-10, O-32…O-37) → 201 with the client."""
    if not get_settings().registration_open:
        abort(404)
    return get_server().create_endpoint_response("client_registration")


@api.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def client_configuration(client_id: str) -> Any:
    """Management of a dynamically registered client (RFC 7592) with its registration access
    token: GET → 200, PUT → 200 (metadata replaced, new token), DELETE → 204; a bad token → 401
    ``invalid_token`` (:class:`app.oauth.endpoints.ClientConfigurationEndpoint`)."""
    return get_server().create_endpoint_response("client_configuration")
