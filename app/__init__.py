"""The UMA 2.0 authorization server.

``create_app(config)`` (in :mod:`app.factory`) builds the Flask app with no
import-time side effects::

    app = create_app({"database_url": "postgresql+psycopg://...", "issuer": "https://as.example.org"})

Production: ``gunicorn -c python:app.gunicorn_conf -w 4 'app:create_app()'`` (see docs/operations.md).

This module stays light on purpose: ``uma policy …`` imports ``app.cli`` and
must not pay for Flask, SQLAlchemy and alembic; the factory is imported on
first use of ``app.create_app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from flask import Flask

    from .config import Settings


def get_settings(app: Flask | None = None) -> Settings:
    """The settings of ``app`` (default: the current app)."""
    from flask import current_app

    return (app or current_app).config["UMA_SETTINGS"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .factory import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
