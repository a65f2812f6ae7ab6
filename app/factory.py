"""The Flask application factory (imported lazily by ``app``).

``create_app(config)`` builds an app with no import-time side effects::

    app = create_app({"database_url": "postgresql+psycopg://...", "issuer": "https://as.example.org"})

Production: ``gunicorn -w 4 'app:create_app()'`` (settings from ``UMA_*``
variables or the TOML file named by ``UMA_CONFIG``; see docs/operations.md).

Extension point for the UMA grant: if the package ``app.grant`` exists, its
``init_app(app, server)`` is called last, with the authlib
``AuthorizationServer`` already holding the OAuth grants, so it can
``server.register_grant(UmaTicketGrant)``, add blueprints (claims interaction,
owner pages) and metadata members (:func:`app.oauth.metadata.register_metadata`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response

from . import db, get_settings
from .config import flask_overrides, load_settings, unknown_environment_variables
from .errors import register_error_handlers
from .logs import configure_logging, safe_database_url

__all__ = ["create_app", "get_settings"]

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
    app = Flask(__package__, instance_path=settings.instance_path or None, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)

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
        os.path.abspath(settings.policy_dir),
    )
    engine = db.init_app(app, database_url)
    schema_current = db.schema_is_current(engine)
    if settings.auto_migrate and not schema_current:
        db.upgrade_database(engine)
        schema_current = True

    register_error_handlers(app)
    app.after_request(_security_headers)

    from .oauth import init_oauth
    from .protection import init_protection
    from .web import init_web

    init_web(app)
    server = init_oauth(app)
    init_protection(app, server)

    # The UMA grant (app/grant/) plugs in here; see the module docstring.
    if importlib.util.find_spec(f"{__package__}.grant") is not None:
        grant_init = getattr(importlib.import_module(f"{__package__}.grant"), "init_app", None)
        if grant_init is not None:
            grant_init(app, server)
    if schema_current:
        load_policies(app)
    return app


def load_policies(app: Flask) -> None:
    """Compile the policy set now, once per app, so that the log says what is in use (and a
    broken policy file shows at start-up, not at the first request)."""
    store = app.extensions.get("uma_policies")
    if store is None or app.extensions.get("uma_policies_loaded"):
        return
    app.extensions["uma_policies_loaded"] = True
    store.current()
    store.invalidate()  # the first request checks the version again, as it would have without this


def _version() -> str:
    try:
        return importlib.metadata.version("uma-as")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _security_headers(response: Response) -> Response:
    """Clickjacking and referrer hygiene on every answer (O-55, O-58)."""
    response.headers.setdefault("X-Frame-Options", "DENY")
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
