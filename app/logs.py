"""Log lines an operator sees: one handler on stderr, configured from the settings.

* ``log_format``: ``text`` (``2026-11-27 10:00:00,123 INFO app.factory: …``),
  ``json`` (one object a line: ``time``, ``level``, ``logger``, ``message``, and
  ``request_id`` and ``exception`` when there are), or ``none`` (configure nothing: the host
  program's logging, e.g. gunicorn's ``--log-config``, decides).
* ``log_level``: the level of the server's own loggers (``app``,
  ``policy_lang``); other libraries (werkzeug's request lines, alembic) log from
  INFO up, or from the chosen level when it is higher — their DEBUG lines may
  carry request data, so they are never turned on from here.

Every line written while a request is served carries that request's id (``request_id`` in
JSON, ``[id]`` after the logger's name in text): the ``X-Request-ID`` the request came with
when it is well-formed (1 to 128 letters, digits and ``. _ : -``), else a new random one; the
answer carries it back in ``X-Request-ID`` (:mod:`app.observability` sets it for each request,
:data:`REQUEST_ID` holds it while the request is served).

Python's warnings (``warnings.warn``, e.g. a library's deprecation notice) go
through the same handler (logger ``py.warnings``), so a JSON log stays one
object a line. The handler is installed on the root logger once per process and replaced when
another app is created (tests create many), and it writes to the ``sys.stderr``
of the moment (so a replaced stderr is followed).

Nothing secret is logged: the database URL is shown with its password hidden
(:func:`safe_database_url`), and no log call of the server names a token, a
secret or a password (``tests/server/test_logging.py`` checks a whole flow at
DEBUG).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from .config import Settings

#: The server's own loggers, which follow ``log_level``.
OWN_LOGGERS = ("app", "policy_lang")
#: The id of the request being served in this context (None outside requests).
REQUEST_ID: ContextVar[str | None] = ContextVar("uma_request_id", default=None)
_REQUEST_ID_FORM = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_for(incoming: str | None) -> str:
    """The id of a request: the one it came with (``X-Request-ID``) when well-formed, else a new one."""
    if incoming and _REQUEST_ID_FORM.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()


class _WithRequestId(logging.Filter):
    """Puts the id of the request being served (if any) on each record, as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id]: message`` (the id only while a request is served)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request = f" [{request_id}]" if request_id else ""
        return super().format(record)


class _StderrHandler(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a line is written."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _OthersFromLevel(logging.Filter):
    """Lets every line of the server's own loggers through, others' from ``level`` up
    (a library may have set its logger's level itself, as werkzeug does)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.partition(".")[0] in OWN_LOGGERS or record.levelno >= self.level


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message[, request_id][, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    """Install (or replace) the stderr handler and set the levels from the settings."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    logging.captureWarnings(settings.log_format != "none")  # Python's warnings as log lines too
    if settings.log_format == "none":
        return
    handler = _StderrHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    level = logging.getLevelName(settings.log_level)
    others = max(level, logging.INFO)
    handler.addFilter(_OthersFromLevel(others))
    handler.addFilter(_WithRequestId())
    root.addHandler(handler)
    root.setLevel(others)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def safe_database_url(url: str) -> str:
    """The database URL with its password hidden (``postgresql+psycopg://uma:***@db/uma``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a valid URL)"
