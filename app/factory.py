"""The Flask application factory (imported lazily by ``app``).

``create_app(config)`` builds an app with no import-time side effects::

    app = create_app({"database_url": "postgresql+psycopg://...", "issuer": "https://as.example.org"})

Production: ``gunicorn -c python:app.gunicorn_conf -w 4 'app:create_app()'`` (settings from ``UMA_*``
variables or the TOML file named by ``UMA_CONFIG``; see docs/operations.md).

Every grant, endpoint and blueprint is registered here, by name, in one place:
reading :func:`create_app` tells what the server serves. Blueprints come in two
kinds (see :func:`_register_blueprints`): pages, which a person's browser uses
with the session cookie and which are protected against cross-site requests by
default (Flask-WTF's ``CSRFProtect``), and APIs authenticated by credentials
sent with each request (client credentials, PATs, owner tokens), exempt from it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cache, db, get_settings, notifications, observability, purge
from .body import StrictRequest
from .config import flask_overrides, load_settings, unknown_environment_variables
from .demo import bp as demo_client
from .errors import register_error_handlers
from .grant import grant_metadata
from .grant.interaction import bp as claims_interaction
from .grant.token_grant import UmaTicketGrant
from .health import bp as health_api
from .identity import lockout
from .keycloak_compat.grant import KeycloakRefreshTokenGrant, KeycloakUmaGrant
from .keycloak_compat.uma_policy import bp as keycloak_policy_api
from .keycloak_compat.views import bp as keycloak_api
from .logs import configure_logging, safe_database_url
from .oauth.endpoints import ClientConfigurationEndpoint, ClientRegistrationEndpoint, RevocationEndpoint
from .oauth.grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant, S256CodeChallenge
from .oauth.metadata import register_metadata
from .oauth.server import UmaAuthorizationServer
from .oauth.views import api as oauth_api
from .oauth.views import bp as oauth_pages
from .observability import bp as metrics_api
from .owner_api import bp as owner_api
from .policies import init_policies
from .protection.introspection import UmaIntrospectionEndpoint
from .protection.introspection import bp as introspection_api
from .protection.permissions import bp as permissions_api
from .protection.resources import bp as resources_api
from .web import bp as web_pages
from .web import page_csp
from .web.common import init_filters as init_page_filters

__all__ = ["close_app", "create_app", "get_settings"]

log = logging.getLogger(__name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    ``config`` maps setting names (see :class:`app.config.Settings`) to values;
    they win over the TOML file and ``UMA_*`` variables. The key
    ``config_file`` names a TOML file to read instead of ``UMA_CONFIG``.
    Upper-case keys are passed to ``app.config`` as they are (e.g. ``TESTING``).
    """
    config = dict(config or {})
    settings = load_settings(config, config_file=config.get("config_file"))
    configure_logging(settings)
    for warning in unknown_environment_variables():
        log.warning("%s", warning)
    instance_path = os.path.abspath(settings.instance_path) if settings.instance_path else None
    app = Flask(__package__, instance_path=instance_path, instance_relative_config=True)
    app.request_class = StrictRequest  # every body read by the one strict reader (app/body.py)
    if settings.trusted_proxies:  # the client's address and scheme as the proxy saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)  # type: ignore[method-assign]
    os.makedirs(app.instance_path, exist_ok=True)
    settings = settings.with_paths_from(app.instance_path)  # relative paths: from the instance folder

    app.config["UMA_SETTINGS"] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key or _instance_secret(app.instance_path),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_NAME="uma_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=3600,
    )
    app.config.update(flask_overrides(config))

    database_url = db.database_url_for(app.instance_path, settings.database_url)
    log.info(
        "uma-as %s starting: issuer %s, database %s, policy folder %s",
        _version(),
        settings.issuer,
        safe_database_url(database_url),
        settings.policy_dir,
    )
    engine = db.init_app(app, database_url)
    lockout.init_app(app, engine)
    observability.init_app(app)
    cache.init_app(app)
    purge.init_app(app)
    notifications.init_app(app)
    schema_current = db.schema_is_current(engine)
    if settings.auto_migrate and not schema_current:
        db.upgrade_database(engine)
        schema_current = True

    register_error_handlers(app)
    app.after_request(_security_headers)
    init_policies(app)
    _build_authorization_server(app)
    register_metadata(app, grant_metadata)
    _register_blueprints(app)
    init_page_filters(app)
    if schema_current:
        load_policies(app)
    return app


def close_app(app: Flask, wait: float = 0.0) -> None:
    """Close an app for good: stop its background threads (policy checks, purge, notifications)
    and close its database connections. A closed app starts none of those threads again, even if
    a request reaches it. ``wait``: seconds to wait for each thread to end (a check or batch in
    flight finishes first).

    For a process that is done with an app while it goes on: a one-shot ``uma`` command
    (:mod:`app.cli`; a command is not a server, and ``main`` may run many times in one process),
    and the tests, before the database under their apps goes (``tests/support/server.py``)."""
    app.extensions["uma_closed"] = True
    for name in ("uma_purger", "uma_policies", "uma_notifier"):
        app.extensions[name].stop(wait)
    db.get_engine(app).dispose()


def load_policies(app: Flask) -> None:
    """Compile the policy set now, once per app, before the first request (with gunicorn's
    preload, in the master before the workers fork); ``/readyz`` answers 503 until then."""
    store = app.extensions.get("uma_policies")
    if store is None or app.extensions.get("uma_policies_loaded"):
        return
    app.extensions["uma_policies_loaded"] = True
    store.load()


def _version() -> str:
    try:
        return importlib.metadata.version("uma-as")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _build_authorization_server(app: Flask) -> UmaAuthorizationServer:
    """authlib's server with every grant and endpoint of this AS."""
    server = UmaAuthorizationServer(app)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    server.register_grant(ClientCredentialsGrant)
    if get_settings(app).keycloak_compat:  # Keycloak's grant extensions (issue 16), at the realm's token endpoint only
        server.register_grant(KeycloakRefreshTokenGrant)  # before the standard grants, which they extend
    server.register_grant(RefreshTokenGrant)
    if get_settings(app).keycloak_compat:
        server.register_grant(KeycloakUmaGrant)
    server.register_grant(UmaTicketGrant)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(ClientRegistrationEndpoint(server))
    server.register_endpoint(ClientConfigurationEndpoint(server))
    server.register_endpoint(UmaIntrospectionEndpoint)
    app.extensions["uma_oauth_server"] = server
    return server


#: Pages: a person's browser with the session cookie; every unsafe request needs the form's
#: ``csrf_token`` (or the ``X-CSRF-Token`` header of a page's script), also in routes added later.
PAGES = (web_pages, oauth_pages, claims_interaction)
#: APIs whose callers authenticate each request with credentials of their own (client
#: credentials, PATs): no ambient credential to forge, so no anti-CSRF token. The owner API
#: also takes the pages' session, and then asks for the token itself (:mod:`app.owner_api`).
APIS = (oauth_api, resources_api, permissions_api, introspection_api, owner_api, health_api, metrics_api)
#: Keycloak's layout beside the standard one (issue 16), only with the ``keycloak_compat`` setting:
#: APIs too (PATs and client credentials with each request).
KEYCLOAK_APIS = (keycloak_api, keycloak_policy_api)


def _register_blueprints(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    # Over HTTPS Flask-WTF would also ask for a same-origin Referer, which browsers do not send
    # under this server's ``Referrer-Policy: no-referrer``; the session-bound token (and the
    # SameSite=Lax cookie) are the protection.
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    csrf = CSRFProtect(app)
    for blueprint in PAGES:
        app.register_blueprint(blueprint)
    if get_settings(app).demo:  # `uma serve --demo`: the demo client's claims redirection page
        app.register_blueprint(demo_client)
    apis = APIS + KEYCLOAK_APIS if get_settings(app).keycloak_compat else APIS
    for blueprint in apis:
        app.register_blueprint(blueprint)
        csrf.exempt(blueprint)


def _security_headers(response: Response) -> Response:
    """Clickjacking and referrer hygiene on every answer; on every HTML page (error pages too)
    the strict content policy of :func:`app.web.page_csp` (O-55, O-58)."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = page_csp()
    else:
        response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _instance_secret(instance_path: str) -> str:
    """A secret key kept in the instance folder, created once (atomically) on first start."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        tmp = path.with_name(f".secret_key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(os.urandom(32).hex())
        try:
            with contextlib.suppress(FileExistsError):  # another process was first: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink()
    return path.read_text().strip()
