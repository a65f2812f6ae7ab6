"""What expires goes away (issue 11, point 5): :func:`app.purge.purge`, ``uma db purge`` and the
background purge delete expired tickets, codes, tokens, RPTs, PCTs and old audit records, and
nothing else — on SQLite and PostgreSQL (the suite runs on both)."""

from __future__ import annotations

import json
import secrets
import threading
import time

import httpx
from sqlmodel import Session
from werkzeug.serving import make_server

from app import create_app
from app.cli import main
from app.models import (
    AuditRecord,
    AuthorizationCode,
    BrowserSession,
    NotificationDelivery,
    OwnerAction,
    Pct,
    PermissionTicket,
    Rpt,
    Token,
)
from app.purge import purge
from app.security import now
from tests.support.server import close_app, unique

DAY = 86400


def _hex() -> str:
    return secrets.token_hex(32)


def _ticket(at: int, expires: int, consumed: bool = False) -> PermissionTicket:
    return PermissionTicket(
        ticket_hash=_hex(), owner=unique("o"), rs_client_id="rs", expires_at=at + expires, consumed=consumed
    )


def _rpt(at: int, expires: int, refresh: int | None, ticket_id: int | None = None, rotated: bool = False) -> Rpt:
    return Rpt(
        jti=_hex()[:40],
        token_hash=_hex(),
        format="opaque",
        client_id="c",
        owner=unique("o"),
        rs_client_id="rs",
        expires_at=at + expires,
        refresh_token_hash=_hex() if refresh is not None else None,
        refresh_expires_at=at + refresh if refresh is not None else None,
        ticket_id=ticket_id,
        family_id=_hex()[:43],
        rotated=rotated,
        revoked=rotated,
    )


def _delivery(created: int, status: str) -> NotificationDelivery:
    return NotificationDelivery(
        target_id=0, owner=unique("o"), kind="webhook", event="e", body="{}", status=status, created_at=created
    )


def _token(at: int, expires: int, refresh: int | None, rotated: bool = False) -> Token:
    return Token(
        access_token_hash=_hex(),
        refresh_token_hash=_hex() if refresh is not None else None,
        client_id="c",
        family_id=_hex()[:43],
        expires_at=at + expires,
        refresh_expires_at=at + refresh if refresh is not None else None,
        rotated=rotated,
        revoked=rotated,
    )


def _store(engine, rows: dict[str, object]) -> dict[str, tuple[type, int]]:
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(rows.values())
        session.commit()
        return {name: (type(row), row.id) for name, row in rows.items()}


def _left(engine, ids: dict[str, tuple[type, int]]) -> set[str]:
    with Session(engine) as session:
        return {name for name, (model, row_id) in ids.items() if session.get(model, row_id) is not None}


def test_purge_removes_only_what_expired(engine, settings):
    at = now()
    with Session(engine, expire_on_commit=False) as session:
        used_ticket_with_live_rpt = _ticket(at, -60, consumed=True)
        session.add(used_ticket_with_live_rpt)
        session.commit()
    rows = {
        "ticket expired": _ticket(at, -60),
        "ticket used, expired, no RPT left": _ticket(at, -60, consumed=True),
        "ticket live": _ticket(at, 60),
        "rpt of the used ticket, refreshable": _rpt(at, -60, DAY, ticket_id=used_ticket_with_live_rpt.id),
        "code expired": AuthorizationCode(code_hash=_hex(), client_id="c", username="u", expires_at=at - 1),
        "code used, live": AuthorizationCode(
            code_hash=_hex(), client_id="c", username="u", expires_at=at + 60, used=True
        ),
        "token expired, no refresh": _token(at, -60, None),
        "token expired, refresh live": _token(at, -60, DAY),
        "token spent refresh, live": _token(at, -60, DAY, rotated=True),
        "token spent refresh, expired": _token(at, -120, -60, rotated=True),
        "token live": _token(at, 60, None),
        "rpt expired, no refresh": _rpt(at, -60, None),
        "rpt spent refresh, expired": _rpt(at, -120, -60, rotated=True),
        "rpt spent refresh, live": _rpt(at, -60, DAY, rotated=True),
        "rpt live": _rpt(at, 60, DAY),
        "pct expired": Pct(pct_hash=_hex(), client_id="c", expires_at=at - 1),
        "pct live": Pct(pct_hash=_hex(), client_id="c", expires_at=at + 60),
        "session expired": BrowserSession(sid_hash=_hex(), user_id=1, credential=_hex(), expires_at=at - 1),
        "session live": BrowserSession(sid_hash=_hex(), user_id=1, credential=_hex(), expires_at=at + 60),
        "audit older than the retention": AuditRecord(owner=unique("o"), outcome="permit", created_at=at - 8 * DAY),
        "audit within the retention": AuditRecord(owner=unique("o"), outcome="permit", created_at=at - 6 * DAY),
        "action older than the retention": OwnerAction(owner=unique("o"), kind="revoke_grant", at=at - 8 * DAY),
        "action within the retention": OwnerAction(owner=unique("o"), kind="revoke_grant", at=at - 6 * DAY),
        "notification delivered, old": _delivery(at - 8 * DAY, "delivered"),
        "notification failed, old": _delivery(at - 8 * DAY, "failed"),
        "notification still pending, old": _delivery(at - 8 * DAY, "pending"),
        "notification delivered, recent": _delivery(at - 6 * DAY, "delivered"),
    }
    ids = _store(engine, rows)
    ids["ticket used, expired, RPT live"] = (PermissionTicket, used_ticket_with_live_rpt.id)

    counts = purge(engine, settings.model_copy(update={"audit_retention": 7 * DAY}), batch=2, at=at)

    assert _left(engine, ids) == {
        "ticket live",
        "ticket used, expired, RPT live",  # presenting it again still revokes that RPT (G-61)
        "rpt of the used ticket, refreshable",
        "code used, live",
        "token expired, refresh live",
        "token spent refresh, live",  # presenting it again is still seen as reuse (O-47)
        "token live",
        "rpt spent refresh, live",
        "rpt live",
        "pct live",
        "session live",
        "audit within the retention",
        "action within the retention",
        "notification still pending, old",  # it waits for its attempts
        "notification delivered, recent",
    }
    assert counts["permission_tickets"] >= 2 and counts["tokens"] >= 2 and counts["rpts"] >= 2
    assert counts["authorization_codes"] >= 1 and counts["pcts"] >= 1 and counts["audit_records"] >= 1
    assert counts["browser_sessions"] >= 1
    assert counts["owner_actions"] >= 1 and counts["notification_deliveries"] >= 2

    # Once its RPT is gone too, the used ticket goes.
    purge(engine, settings, at=at + 2 * DAY)
    assert "ticket used, expired, RPT live" not in _left(engine, ids)


def test_audit_records_are_kept_for_ever_with_retention_zero(engine, settings):
    at = now()
    ids = _store(engine, {"old": AuditRecord(owner=unique("o"), outcome="deny", created_at=at - 3650 * DAY)})
    counts = purge(engine, settings.model_copy(update={"audit_retention": 0}), at=at)
    assert "audit_records" not in counts
    assert _left(engine, ids) == {"old"}


def test_uma_db_purge_for_cron(capsys, monkeypatch, database_url, engine, tmp_path):
    monkeypatch.setenv("UMA_DATABASE_URL", database_url)
    monkeypatch.setenv("UMA_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("UMA_SECRET_KEY", "purge-test")
    monkeypatch.delenv("UMA_CONFIG", raising=False)
    at = now()
    ids = _store(engine, {"expired": _ticket(at, -60), "live": _ticket(at, 600)})
    code = main(["db", "purge"])
    out = capsys.readouterr().out
    assert code == 0
    counts = json.loads(out)
    assert counts["permission_tickets"] >= 1 and set(counts) >= {"tokens", "rpts", "pcts", "authorization_codes"}
    assert _left(engine, ids) == {"live"}


def test_each_process_purges_in_the_background(engine, database_url, tmp_path):
    """The first request starts the purge thread; the expired ticket goes, the live one stays."""
    at = now()
    ids = _store(engine, {"expired": _ticket(at, -60), "live": _ticket(at, 600)})
    server = make_server("127.0.0.1", 0, None, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    server.app = create_app(
        {
            "database_url": database_url,
            "issuer": url,
            "secret_key": secrets.token_hex(32),
            "instance_path": str(tmp_path / "instance"),
            "purge_interval": 1,
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert httpx.get(url + "/.well-known/uma2-configuration").status_code == 200
        deadline = time.monotonic() + 60  # a bound on waiting, not a speed being measured
        while "expired" in _left(engine, ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _left(engine, ids) == {"live"}
    finally:
        server.shutdown()
        thread.join(timeout=10)
        close_app(server.app)  # its purge and policy threads too, before the schema goes


def test_every_table_that_expires_is_purged(settings):
    """A table with an ``expires_at`` column added later must join app.purge."""
    from sqlmodel import SQLModel

    from app.purge import expired_conditions

    expiring = {name for name, table in SQLModel.metadata.tables.items() if "expires_at" in table.c}
    assert expiring and expiring <= set(expired_conditions(settings, now()))
