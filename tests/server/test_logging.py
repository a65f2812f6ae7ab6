"""Logging an operator sees (app/logs.py): a stderr handler from the settings (text or one JSON
object a line) with the level, the start-up lines, and never a secret or a token."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.config import load_settings
from app.logs import REQUEST_ID, JsonFormatter, configure_logging, safe_database_url
from tests.server.test_cli_server import _free_port, _wait_for

ROOT = Path(__file__).resolve().parents[2]
UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"


@pytest.fixture(autouse=True)
def outside_any_request():
    """These tests log outside a request: an id left set in this thread by an earlier test's
    in-process request whose answer was never closed must not show on their lines."""
    token = REQUEST_ID.set(None)
    yield
    REQUEST_ID.reset(token)


@pytest.fixture()
def restore_logging():
    """configure_logging changes process-wide state: put it back afterwards."""
    root = logging.getLogger()
    saved = (
        root.level,
        list(root.handlers),
        {n: logging.getLogger(n).level for n in ("app", "policy_lang", "werkzeug")},
    )
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_safe_database_url_hides_the_password():
    assert safe_database_url("postgresql+psycopg://uma:s3cret@db.internal:5432/uma") == (
        "postgresql+psycopg://uma:***@db.internal:5432/uma"
    )
    assert safe_database_url("sqlite:////srv/uma/uma.db") == "sqlite:////srv/uma/uma.db"
    assert "s3cret" not in safe_database_url("not a url s3cret")


def test_json_lines_have_time_level_logger_message_and_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("app.x").makeRecord(
            "app.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR" and entry["logger"] == "app.x" and entry["message"] == "failed here"
    assert entry["time"].endswith("+00:00") and "ValueError: boom" in entry["exception"]


def test_lines_written_while_a_request_is_served_carry_its_id(restore_logging, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    for log_format in ("json", "text"):
        configure_logging(load_settings({"log_format": log_format}))
        logging.getLogger("app.test").warning("outside a request")
        token = REQUEST_ID.set("req-7")
        try:
            logging.getLogger("app.test").warning("inside a request")
        finally:
            REQUEST_ID.reset(token)
    json_lines, text_lines = stream.getvalue().splitlines()[:2], stream.getvalue().splitlines()[2:]
    assert "request_id" not in json.loads(json_lines[0]) and json.loads(json_lines[1])["request_id"] == "req-7"
    assert text_lines[0].endswith(" WARNING app.test: outside a request")
    assert text_lines[1].endswith(" WARNING app.test [req-7]: inside a request")


def test_the_handler_follows_the_settings(restore_logging, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging(load_settings({"log_level": "warning", "log_format": "json"}))
    configure_logging(load_settings({"log_level": "debug", "log_format": "json"}))  # replaced, not added
    logging.getLogger("app.test").debug("own debug line")
    logging.getLogger("policy_lang.test").debug("engine debug line")
    logging.getLogger("authlib.test").debug("library debug line")  # other libraries: INFO and up only
    logging.getLogger("werkzeug").info("library info line")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in lines] == ["own debug line", "engine debug line", "library info line"]

    stream.truncate(0)
    stream.seek(0)
    configure_logging(load_settings({"log_level": "ERROR", "log_format": "text"}))
    logging.getLogger("werkzeug").setLevel(logging.INFO)  # as werkzeug does on its first line
    logging.getLogger("app.test").warning("dropped")
    logging.getLogger("werkzeug").warning("dropped too")
    logging.getLogger("app.test").error("kept")
    assert stream.getvalue().count("\n") == 1 and " ERROR app.test: kept" in stream.getvalue()

    stream.truncate(0)
    stream.seek(0)
    configure_logging(load_settings({"log_format": "none"}))
    logging.getLogger("app.test").error("nobody hears this")
    assert stream.getvalue() == ""


def test_create_app_logs_its_start_up_lines(restore_logging, monkeypatch, tmp_path):
    from app import create_app

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("UMA_TIKET_LIFETIME", "30")
    create_app({"database_url": f"sqlite:///{tmp_path}/x.db", "instance_path": str(tmp_path), "log_format": "json"})
    lines = stream.getvalue().splitlines()
    # A line another app's background thread wrote before this one configured logging is not its own.
    while lines and not lines[0].startswith("{"):
        lines.pop(0)
    entries = [json.loads(line) for line in lines]
    messages = [e["message"] for e in entries]
    assert any(
        "UMA_TIKET_LIFETIME is not a setting" in m and e["level"] == "WARNING" for e, m in zip(entries, messages)
    )
    start = next(m for m in messages if m.startswith("uma-as "))
    assert f"database sqlite:///{tmp_path}/x.db" in start and f"policy folder {tmp_path / 'policies'}" in start
    assert any(m.startswith("policy set version ") and " rules from " in m for m in messages)


def test_uma_serve_logs_start_up_and_requests_and_never_a_secret(
    database_url, tmp_path, make_user, make_rs, make_client, login
):
    """The whole operator view at DEBUG: `uma serve` in JSON, a flow that sends every kind of
    secret (passwords, client secrets, PATs, refresh tokens, tickets, RPTs, the secret key, the
    database password), and none of them appears on stderr."""
    port = _free_port()
    secret_key = "sk-" + os.urandom(16).hex()
    url = database_url
    db_password = None
    if url.startswith("postgresql") and "@" in url and ":" not in url.split("//", 1)[1].split("@", 1)[0]:
        # A password the server must hide (local connections here do not check it).
        db_password = "pw-" + os.urandom(8).hex()
        scheme, rest = url.split("//", 1)
        url = f"{scheme}//{rest.split('@', 1)[0]}:{db_password}@{rest.split('@', 1)[1]}"
    env = {
        "UMA_DATABASE_URL": url,
        "UMA_INSTANCE_PATH": str(tmp_path / "instance"),
        "UMA_SECRET_KEY": secret_key,
        "UMA_LOG_LEVEL": "DEBUG",
        "UMA_LOG_FORMAT": "json",
    }
    log_path = tmp_path / "stderr.log"
    new_ticket = None
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("UMA_")}, **env},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        secrets_sent: list[str] = [secret_key] + ([db_password] if db_password else [])
        try:
            base = f"http://127.0.0.1:{port}"
            assert _wait_for(f"{base}/.well-known/uma2-configuration", proc).status_code == 200
            with httpx.Client(base_url=base, timeout=30) as http:
                owner = make_user()
                secrets_sent.append(owner.password)
                # the login form and the owner API's Basic authentication, right and wrong
                login(http, owner)
                basic = base64.b64encode(f"{owner.username}:{owner.password}".encode()).decode()
                assert http.get("/owner/policy", headers={"Authorization": f"Basic {basic}"}).status_code in (200, 404)
                wrong = base64.b64encode(f"{owner.username}:wrong-{owner.password}".encode()).decode()
                secrets_sent.append(f"wrong-{owner.password}")
                assert http.get("/owner/policy", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
                # a PAT by client credentials, a resource, a ticket, the UMA grant, introspection, revocation
                rs = make_rs(owner=owner.username)
                secrets_sent.append(rs.client_secret)
                pat_response = http.post(
                    "/token", data={"grant_type": "client_credentials", "scope": "uma_protection"}, auth=rs.basic_auth
                )
                assert pat_response.status_code == 200, pat_response.text
                pat = pat_response.json()["access_token"]
                secrets_sent.append(pat)
                bearer = {"Authorization": f"Bearer {pat}"}
                resource = http.post(
                    "/uma/resources", json={"name": "album", "resource_scopes": ["view"]}, headers=bearer
                )
                assert resource.status_code == 201, resource.text
                permission = http.post(
                    "/uma/permission",
                    json={"resource_id": resource.json()["_id"], "resource_scopes": ["view"]},
                    headers=bearer,
                )
                ticket = permission.json()["ticket"]
                secrets_sent.append(ticket)
                client = make_client(
                    grant_types=[UMA_GRANT], claims_redirect_uris=["https://client.example.com/cb"], scope="view"
                )
                secrets_sent.append(client.client_secret)
                answer = http.post("/token", data={"grant_type": UMA_GRANT, "ticket": ticket}, auth=client.basic_auth)
                assert answer.status_code in (400, 403), answer.text
                new_ticket = answer.json().get("ticket")
                if new_ticket:
                    secrets_sent.append(new_ticket)
                    # the claims interaction carries the ticket in the query string
                    http.get("/uma/claims", params={"ticket": new_ticket, "client_id": client.client_id})
                http.post("/uma/introspect", data={"token": pat}, headers=bearer)
                bogus = "bogus-" + os.urandom(12).hex()
                secrets_sent.append(bogus)
                refused = http.get(
                    "/uma/resources", headers={"Authorization": f"Bearer {bogus}", "X-Request-ID": "bogus-bearer"}
                )
                assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "bogus-bearer"
                http.post("/revoke", data={"token": pat}, auth=rs.basic_auth)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    text = log_path.read_text(encoding="utf-8")
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    messages = [e["message"] for e in entries]
    start = next(m for m in messages if m.startswith("uma-as "))
    assert f"issuer http://127.0.0.1:{port}" in start and "policy folder " in start
    if db_password:
        assert ":***@" in start
    assert any(m.startswith("policy set version ") and " rules from " in m for m in messages)
    assert any(m == f"listening on http://127.0.0.1:{port}/ (werkzeug, threaded)" for m in messages)
    requests = [m for m in messages if '"POST /token HTTP/1.1" 200' in m]
    assert requests, "request lines are logged"
    # the request line of a request carries its id (the one it came with, else a new one)
    assert any(
        e.get("request_id") == "bogus-bearer" and '"GET /uma/resources HTTP/1.1" 401' in e["message"] for e in entries
    )
    assert all(e.get("request_id") for e in entries if '"POST /token HTTP/1.1"' in e["message"])
    assert any('"GET /uma/claims HTTP/1.1"' in m for m in messages) or not new_ticket
    for secret in filter(None, secrets_sent):
        assert secret not in text, f"a secret reached the log: {secret[:6]}…"
