"""The ``uma`` command: db upgrade, user add, client add, keys rotate, policy delegation,
bad usage; ``uma serve`` and gunicorn serving the app over real HTTP."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from app.cli import main
from app.db import make_engine, schema_is_current
from app.models import OAuthClient, User
from app.security import verify_password
from tests.support.server import unique

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_upgrade_creates_the_schema(capsys, monkeypatch, tmp_path):
    url = f"sqlite:///{tmp_path}/fresh.db"
    monkeypatch.setenv("UMA_DATABASE_URL", url)
    monkeypatch.setenv("UMA_INSTANCE_PATH", str(tmp_path))
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0 and "up to date" in out
    assert schema_is_current(make_engine(url))


def test_user_add_with_claims(capsys, cli_env, engine, monkeypatch):
    name = unique("carol")
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    code, out, err = run(
        capsys,
        "user",
        "add",
        name,
        "--password-stdin",
        "--claim",
        "email=carol@example.com",
        "--claim",
        "email_verified=true",
        "--claim",
        "age=42",
        "--claim",
        "nick=not json",
    )
    assert code == 0, err
    assert json.loads(out) == {
        "username": name,
        "claims": {"email": "carol@example.com", "email_verified": True, "age": 42, "nick": "not json"},
    }
    with Session(engine) as session:
        stored = session.exec(select(User).where(User.username == name)).one().password_hash
    assert stored.startswith("$argon2id$") and verify_password("s3cret", stored)
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\n"))
    code, _, err = run(capsys, "user", "add", name, "--password-stdin")
    assert code == 2 and "already exists" in err and "Traceback" not in err and err.count("\n") == 1


def test_user_add_refuses_a_password_on_the_command_line(capsys, cli_env, engine):
    name = unique("mallory")
    code, _, err = run(capsys, "user", "add", name, "--password", "visible-in-ps")
    assert code == 2 and "--password is refused" in err and "--password-stdin" in err
    assert "visible-in-ps" not in err and err.count("\n") == 1
    with Session(engine) as session:
        assert session.exec(select(User).where(User.username == name)).first() is None


def test_user_add_asks_twice_at_the_terminal(capsys, cli_env, engine, monkeypatch):
    import getpass

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers: list[str] = []
    prompts: list[str] = []
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or answers.pop(0))

    name = unique("dora")
    answers[:] = ["typed-pw", "typed-pw"]
    code, out, err = run(capsys, "user", "add", name)
    assert code == 0, err
    assert prompts == [f"Password for {name}: ", "The same password again: "]
    with Session(engine) as session:
        assert verify_password("typed-pw", session.exec(select(User).where(User.username == name)).one().password_hash)

    answers[:] = ["one", "two"]
    code, _, err = run(capsys, "user", "add", unique("dora"))
    assert code == 2 and "the two passwords differ" in err


def test_user_add_without_a_terminal_needs_password_stdin(capsys, cli_env, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "user", "add", unique("erin"))
    assert code == 2 and "no terminal" in err and "--password-stdin" in err
    code, _, err = run(capsys, "user", "add", unique("erin"), "--password-stdin")
    assert code == 2 and "no password on the first line" in err


def test_client_add_prints_the_client_once_with_its_secret(capsys, cli_env, engine, make_user):
    owner = make_user()
    code, out, err = run(
        capsys,
        "client",
        "add",
        "--name",
        "Photo RS",
        "--grant-type",
        "client_credentials",
        "--grant-type",
        "authorization_code",
        "--redirect-uri",
        "https://rs.example.net/cb",
        "--claims-redirect-uri",
        "https://rs.example.net/claims",
        "--owner",
        owner.username,
        "--scope",
        "uma_protection",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["client_name"] == "Photo RS" and data["owner"] == owner.username and data["client_secret"]
    assert data["grant_types"] == ["client_credentials", "authorization_code"]
    assert data["claims_redirect_uris"] == ["https://rs.example.net/claims"]
    with Session(engine) as session:
        row = session.exec(select(OAuthClient).where(OAuthClient.client_id == data["client_id"])).one()
        assert row.check_client_secret(data["client_secret"]) and data["client_secret"] not in row.client_secret_hash


def test_client_add_public(capsys, cli_env):
    code, out, _ = run(capsys, "client", "add", "--name", "SPA", "--public", "--redirect-uri", "http://127.0.0.1:5/cb")
    assert code == 0
    data = json.loads(out)
    assert "client_secret" not in data and data["token_endpoint_auth_method"] == "none"


@pytest.mark.parametrize(
    "argv, needle",
    [
        ([], "required"),
        (["bogus"], "invalid choice"),
        (["client", "add"], "--name"),
        (["client", "add", "--name", "x", "--owner", "nobody-here"], "no user"),
        (["client", "add", "--name", "x", "--grant-type", "password"], "unsupported grant_types"),
        (
            ["client", "add", "--name", "x", "--grant-type", "authorization_code", "--redirect-uri", "http://evil/cb"],
            "https",
        ),
        (["user", "add", "bad name!"], "invalid user name"),
        (["user", "add", "dave", "--password-stdin", "--claim", "novalue"], "K=V"),
        (["serve", "--port", "abc"], "invalid int"),
        (["serve", "--port", "0"], "between"),
        (["keys"], "required"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(capsys, cli_env, argv, needle):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err and err.count("\n") == 1


def test_bad_configuration_is_exit_2(capsys, monkeypatch):
    monkeypatch.setenv("UMA_RPT_FORMAT", "xml")
    code, _, err = run(capsys, "keys", "rotate")
    assert code == 2 and "rpt_format" in err and "Traceback" not in err


def test_keys_rotate(capsys, cli_env, http):
    code, out, _ = run(capsys, "keys", "rotate")
    assert code == 0
    kid = json.loads(out)["kid"]
    assert kid in [k["kid"] for k in http.get("/jwks").json()["keys"]]


def test_demo_seed_is_idempotent(tmp_path):
    from app import create_app
    from app.demo import seed_demo

    app = create_app(
        {"database_url": f"sqlite:///{tmp_path}/demo.db", "instance_path": str(tmp_path), "secret_key": "k"}
    )
    with app.app_context():
        first = seed_demo(app)
        second = seed_demo(app)
    secret = re.search(r"RS_SECRET=(\S+)", first).group(1)
    assert f"RS_SECRET={secret}" in second  # kept in the instance folder, printed on every start
    assert "demo-summer-2026" in second


def test_policy_arguments_go_to_policy_lang(capsys):
    code, out, err = run(capsys, "policy", "check", str(ROOT / "policies"))
    assert code == 0, err
    code, _, err = run(capsys, "policy", "check", str(ROOT / "no-such-dir"))
    assert code != 0 and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, deadline: float = 60) -> httpx.Response:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "server exited")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def _serve(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_uma_serve_serves_discovery_with_its_own_issuer(cli_env):
    port = _free_port()
    proc = _serve([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cli_env)
    try:
        response = _wait_for(f"http://127.0.0.1:{port}/.well-known/uma2-configuration", proc)
        assert response.status_code == 200 and response.json()["issuer"] == f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_gunicorn_with_several_workers(cli_env, tmp_path):
    port = _free_port()
    env = {**cli_env, "UMA_ISSUER": f"http://127.0.0.1:{port}"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = _serve([gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "app:create_app()"], env)
    try:
        first = _wait_for(f"http://127.0.0.1:{port}/.well-known/uma2-configuration", proc)
        assert first.status_code == 200
        for _ in range(6):
            response = httpx.get(f"http://127.0.0.1:{port}/uma/resources", timeout=5)
            assert response.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=15)
