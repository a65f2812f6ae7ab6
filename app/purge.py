"""What expires goes away (issue 11, point 5): expired credentials and old audit records are deleted.

Without this every table grew for ever. :func:`purge` deletes, table by table, in small batches
(``DELETE … WHERE id IN (SELECT id … LIMIT n)``, each batch its own short transaction, so no
lock is held for long and requests go on meanwhile):

==========================  ==========================================================
``permission_tickets``      expired, and no RPT issued from it left (a used ticket
                            presented again revokes its RPTs while they live, G-61)
``authorization_codes``     expired (used or not)
``tokens``, ``rpts``        the access token expired and the refresh token too (or
                            none): a spent refresh token stays until its own expiry,
                            so presenting it again is still seen as reuse (O-47)
``pcts``                    expired
``browser_sessions``        expired (app/identity/sessions.py)
``rate_limit_counters``,    failure counts of the lockout past their window
``rate_limit_entries``      (app/identity/limits_storage.py)
``upstream_sign_ins``       expired: sign-ins at identity providers never finished, and
                            the claims of a claims interaction never answered
``audit_records``,          older than ``audit_retention`` seconds (0: kept for ever); for
``owner_actions``,          notifications, those delivered or failed (a pending one waits
``notification_deliveries`` for its attempts)
==========================  ==========================================================

Every process runs it in the background every ``purge_interval`` seconds (a daemon thread
started by the first request, with some jitter); several processes and machines may purge at
once (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, each batch takes rows no other holds; SQLite: one
writer at a time). ``purge_interval = 0`` turns the background purge off, for operators who run
``uma db purge`` from cron instead. The indexes of migration 0005 make each batch a range scan.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import Any

from flask import Flask
from sqlalchemy import Engine, and_, delete, exists, or_, select
from sqlmodel import SQLModel

from .config import Settings
from .models import (
    AuditRecord,
    AuthorizationCode,
    BrowserSession,
    NotificationDelivery,
    OwnerAction,
    Pct,
    PermissionTicket,
    RateLimitCounter,
    RateLimitEntry,
    Rpt,
    Token,
    UpstreamSignIn,
)
from .security import now

log = logging.getLogger(__name__)

#: Rows deleted per statement: a batch takes a few milliseconds, short enough for SQLite's one writer.
BATCH = 500


def expired_conditions(settings: Settings, at: int) -> dict[str, tuple[type[SQLModel], Any]]:
    """Table name → (model, condition of the rows to delete), in the order they are purged."""

    def access_and_refresh_expired(model: Any) -> Any:
        return and_(
            model.expires_at < at,
            or_(model.refresh_expires_at.is_(None), model.refresh_expires_at < at),
        )

    conditions: dict[str, tuple[type[SQLModel], Any]] = {
        "rpts": (Rpt, access_and_refresh_expired(Rpt)),
        "permission_tickets": (
            PermissionTicket,
            and_(PermissionTicket.expires_at < at, ~exists().where(Rpt.ticket_id == PermissionTicket.id)),
        ),
        "authorization_codes": (AuthorizationCode, AuthorizationCode.expires_at < at),
        "tokens": (Token, access_and_refresh_expired(Token)),
        "pcts": (Pct, Pct.expires_at < at),
        "browser_sessions": (BrowserSession, BrowserSession.expires_at < at),
        "rate_limit_counters": (RateLimitCounter, RateLimitCounter.expires_at < at),
        "rate_limit_entries": (RateLimitEntry, RateLimitEntry.expires_at < at),
        "upstream_sign_ins": (UpstreamSignIn, UpstreamSignIn.expires_at < at),
    }
    if settings.audit_retention > 0:
        old = at - settings.audit_retention
        conditions["audit_records"] = (AuditRecord, AuditRecord.created_at < old)
        conditions["owner_actions"] = (OwnerAction, OwnerAction.at < old)
        conditions["notification_deliveries"] = (
            NotificationDelivery,
            and_(NotificationDelivery.created_at < old, NotificationDelivery.status != "pending"),
        )
    return conditions


def purge(engine: Engine, settings: Settings, *, batch: int = BATCH, at: int | None = None) -> dict[str, int]:
    """Delete what expired before ``at`` (default now); returns the rows deleted per table."""
    at = now() if at is None else at
    counts: dict[str, int] = {}
    for name, (model, condition) in expired_conditions(settings, at).items():
        table: Any = model.__table__
        chosen = select(table.c.id).where(condition).limit(batch).with_for_update(skip_locked=True, of=table)
        total = 0
        while True:
            with engine.begin() as conn:
                deleted = conn.execute(delete(table).where(table.c.id.in_(chosen))).rowcount
            total += deleted
            if deleted < batch:
                break
        counts[name] = total
    return counts


class Purger:
    """The background purge of one process (see the module docstring)."""

    def __init__(self, app: Flask):
        self.app = app
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread in this process, once (a worker forked from a preloaded app starts its own)."""
        settings = self.app.config["UMA_SETTINGS"]
        if settings.purge_interval <= 0 or self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid() or self._stopped.is_set():  # stopped: never again (a closed app)
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, args=(settings,), name="uma-purge", daemon=True)
            self._thread.start()

    def _run(self, settings: Settings) -> None:
        engine = self.app.extensions["uma_db"]
        # Jitter, so the workers of a pool do not all purge at the same moment.
        while not self._stopped.wait(settings.purge_interval * random.uniform(0.75, 1.25)):
            try:
                counts = purge(engine, settings)
            except Exception:
                log.exception("background purge failed; trying again in %s s", settings.purge_interval)
                continue
            if any(counts.values()):
                log.info("purged: %s", ", ".join(f"{n} {table}" for table, n in counts.items() if n))

    def stop(self, wait: float = 0.0) -> None:
        """End this process's purge thread (after the batch it may be running); ``wait``: seconds
        to wait for it to end."""
        self._stopped.set()
        thread = self._thread
        if wait > 0 and thread is not None and thread is not threading.current_thread():
            thread.join(wait)


def init_app(app: Flask) -> Purger:
    purger = Purger(app)
    app.extensions["uma_purger"] = purger
    app.before_request(purger.start)
    return purger
