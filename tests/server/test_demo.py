"""``uma serve --demo`` (issue 13 point 6): restartable — the same secrets printed again and
still working after a restart, ``uma demo reset`` starts over — and its printed walk-through
runs to the end: the shell steps as printed (bash, curl, python3), the claims interaction as a
browser would do it (sign in as bob, agree; G-44…G-47), the redirect back to the demo client's
page, the RPT and its introspection (G-20, F-40)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.server import consent_form, csrf_from

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DemoServer:
    """``uma serve --demo`` in a subprocess, on SQLite in its own instance folder."""

    def __init__(self, instance: Path):
        self.instance = instance
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("UMA_")}
        env["UMA_INSTANCE_PATH"] = str(instance)
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(self.port)],
            cwd=instance.parent,  # not the checkout: nothing may depend on the working directory
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.walkthrough = self._read_walkthrough()
        self._wait_ready()

    def _read_walkthrough(self) -> str:
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Owner pages:"):
                return "\n".join(lines)
        raise AssertionError("the demo printed no walk-through:\n" + "\n".join(lines) + self._stderr())

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read() if self.proc.stderr else ""

    def _wait_ready(self, deadline: float = 60) -> None:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError("uma serve --demo exited:\n" + self._stderr())
            try:
                httpx.get(self.base + "/.well-known/uma2-configuration", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("uma serve --demo did not answer")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)

    def commands(self, step: int) -> list[str]:
        """The command lines (indented by five spaces) printed under step ``step``."""
        found = re.search(rf"^{step}\. .*?(?=^\d\. |^Owner pages:)", self.walkthrough, re.S | re.M)
        assert found, f"no step {step} in:\n{self.walkthrough}"
        return [line[5:] for line in found.group(0).splitlines() if line.startswith("     ")]

    def secrets(self) -> dict[str, str]:
        return dict(re.findall(r"\b(RS_ID|RS_SECRET|APP_ID|APP_SECRET)=(\S+)", self.walkthrough))


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


def _bash(script: str, cwd: Path) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def _claims_interaction_as_bob(address: str) -> str:
    """What a browser does at the printed address: the login page, bob's password, the consent
    page, "agree"; returns where the AS sends it back."""
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        r = browser.get(address)
        assert r.status_code == 303, r.text
        r = browser.get(httpx.URL(address).join(r.headers["Location"]))  # the consent page: not signed in yet
        assert r.status_code == 303 and "/login" in r.headers["Location"]
        login_url = httpx.URL(address).join(r.headers["Location"])
        login = browser.get(login_url)
        nxt = re.search(r'name="next" value="([^"]*)"', login.text)
        r = browser.post(
            login_url.copy_with(query=None),
            data={
                "csrf_token": csrf_from(login.text),
                "username": "bob",
                "password": "demo-password",
                "next": nxt.group(1).replace("&amp;", "&") if nxt else "",
            },
        )
        assert r.status_code == 303, r.text
        consent_url = httpx.URL(address).join(r.headers["Location"])
        consent = browser.get(consent_url)
        assert consent.status_code == 200 and "bob@example.com" in consent.text
        form = re.search(r'<form[^>]*action="([^"]*)"', consent.text)
        r = browser.post(consent_url.join(form.group(1).replace("&amp;", "&")), data=consent_form(consent.text))
        assert r.status_code == 303, r.text
        return r.headers["Location"]


def test_the_printed_walk_through_runs_to_the_end(instance):
    assert shutil.which("curl"), "the walk-through uses curl"
    server = DemoServer(instance)
    try:
        work = instance.parent
        setup = "\n".join(server.commands(1))
        _bash(setup + "\n" + "\n".join(server.commands(2)), work)
        need_info = httpx.Response(200, content=(work / "need_info.json").read_bytes()).json()
        assert need_info["error"] == "need_info" and need_info["redirect_user"] == server.base + "/uma/claims"

        address = _bash(setup + "\n" + "\n".join(server.commands(3)), work)
        back = _claims_interaction_as_bob(address.strip())
        assert urlsplit(back).path == "/demo/claims-callback"
        page = httpx.get(back, timeout=10)
        assert page.status_code == 200
        new_ticket = re.search(r'<code id="ticket">([^<]+)</code>', page.text).group(1)

        step4 = [line for line in server.commands(4) if not line.startswith("NEW_TICKET=")]
        answer = _bash(setup + f"\nNEW_TICKET={new_ticket}\n" + "\n".join(step4), work)
        introspection = httpx.Response(200, content=answer.encode()).json()
        assert introspection["active"] is True
        assert introspection["permissions"][0]["resource_id"] == "demo-summer-2026"
        assert introspection["permissions"][0]["resource_scopes"] == ["view"]
    finally:
        server.stop()


def test_a_restart_prints_the_same_secrets_and_they_still_work(instance):
    first = DemoServer(instance)
    first.stop()
    again = DemoServer(instance)
    try:
        assert again.secrets() == first.secrets() and len(first.secrets()) == 4
        secrets = again.secrets()
        for client, secret in ((secrets["RS_ID"], secrets["RS_SECRET"]), (secrets["APP_ID"], secrets["APP_SECRET"])):
            r = httpx.post(
                again.base + "/token",
                auth=(client, secret),
                data={"grant_type": "client_credentials"} if client == secrets["RS_ID"] else {"grant_type": "x"},
                timeout=10,
            )
            assert r.status_code != 401 and r.json().get("error") != "invalid_client", r.text
        assert (instance / "demo-secrets.json").stat().st_mode & 0o077 == 0
    finally:
        again.stop()


def test_lost_secrets_are_rotated_and_the_old_ones_stop_working(instance):
    first = DemoServer(instance)
    first.stop()
    (instance / "demo-secrets.json").unlink()
    again = DemoServer(instance)
    try:
        old, new = first.secrets(), again.secrets()
        assert new["RS_ID"] == old["RS_ID"] and new["RS_SECRET"] != old["RS_SECRET"]
        stale = httpx.post(
            again.base + "/token", auth=(old["RS_ID"], old["RS_SECRET"]), data={"grant_type": "client_credentials"}
        )
        fresh = httpx.post(
            again.base + "/token", auth=(new["RS_ID"], new["RS_SECRET"]), data={"grant_type": "client_credentials"}
        )
        assert stale.status_code == 401 and fresh.status_code == 200
    finally:
        again.stop()


def test_demo_reset_starts_over(instance):
    first = DemoServer(instance)
    first.stop()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "reset"],
        cwd=instance.parent,
        env=first.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "photo-app" in done.stdout and "alice" in done.stdout
    assert not (instance / "demo-secrets.json").exists()
    again = DemoServer(instance)
    try:
        assert again.secrets()["RS_ID"] != first.secrets()["RS_ID"]
        r = httpx.post(
            again.base + "/token",
            auth=(first.secrets()["RS_ID"], first.secrets()["RS_SECRET"]),
            data={"grant_type": "client_credentials"},
        )
        assert r.status_code == 401
    finally:
        again.stop()
