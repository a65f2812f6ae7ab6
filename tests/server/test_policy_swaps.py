"""Policies compiled before traffic and changed without stalls (issue 11, points 1, 2 and 7), over
real HTTP: readiness and liveness, a change of two files seen entirely or not at all while
requests hammer the server, gunicorn worker processes converging on one version, and a broken
change that keeps the last good set and says why. No timing assertion: every wait is a deadline
for a condition (``wait_for``)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session
from werkzeug.serving import make_server

from app import create_app
from app.db import get_engine, upgrade_database
from app.factory import load_policies
from tests.support.server import close_app, wait_for

ROOT = Path(__file__).resolve().parents[2]
UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
SCOPES = ["download", "edit", "print", "view"]


# -- set-up ----------------------------------------------------------------------------------


def _config(database_url: str, tmp_path: Path, policy_dir: Path, **more: Any) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "instance_path": str(tmp_path / "instance"),
        "secret_key": "swap-" + "k" * 32,
        "policy_dir": str(policy_dir),
        "policy_reload_interval": 1,
        "purge_interval": 0,
        **more,
    }


class _Dispatch:
    app: Any = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@contextmanager
def _served(config: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``create_app(config)`` served over HTTP in this process (issuer: its own URL); (URL, app)."""
    dispatch = _Dispatch()
    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    dispatch.app = create_app({"issuer": url, **config})
    thread = threading.Thread(target=server.serve_forever, name="swap-server", daemon=True)
    thread.start()
    try:
        yield url, dispatch.app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        close_app(dispatch.app)


@dataclass
class Owner:
    name: str
    password: str
    pat: str
    token: str  # an owner API token (scope uma_owner)
    client_id: str
    client_secret: str
    resource_id: str


def _seed(app: Any) -> Owner:
    """An owner with a resource server (and its PAT), a photo album with four scopes, a client."""
    from app.models import UMA_TICKET_GRANT, Resource
    from app.oauth.clients import create_client
    from app.oauth.tokens import issue_token
    from app.users import create_user

    name, password = "swap-owner", "pw-" + secrets.token_hex(8)
    with Session(get_engine(app), expire_on_commit=False) as session:
        create_user(session, name, password)
        rs, _ = create_client(
            session, client_name="swap-rs", grant_types=["client_credentials"], scope="uma_protection", owner=name
        )
        client, secret = create_client(session, client_name="swap-client", grant_types=[UMA_TICKET_GRANT])
        body, _ = issue_token(
            session,
            app.config["UMA_SETTINGS"],
            client_id=rs.client_id,
            subject=name,
            scope="uma_protection",
            grant_type="client_credentials",
            include_refresh=False,
        )
        mine, _ = issue_token(
            session,
            app.config["UMA_SETTINGS"],
            client_id=rs.client_id,
            subject=name,
            scope="uma_owner",
            grant_type="authorization_code",
            include_refresh=False,
        )
        resource = Resource(
            id=uuid.uuid4().hex,
            owner=name,
            rs_client_id=rs.client_id,
            name="album",
            type="photo-album",
            resource_scopes=SCOPES,
        )
        session.add(resource)
        session.commit()
    assert secret is not None
    return Owner(name, password, body["access_token"], mine["access_token"], client.client_id, secret, resource.id)


def _rpt(http: httpx.Client, owner: Owner) -> str:
    """An RPT for every scope of the album (the policy in use must grant them all)."""
    pat = {"Authorization": f"Bearer {owner.pat}"}
    r = http.post("/uma/permission", json={"resource_id": owner.resource_id, "resource_scopes": SCOPES}, headers=pat)
    assert r.status_code == 201, r.text
    r = http.post(
        "/token",
        data={"grant_type": UMA_GRANT, "ticket": r.json()["ticket"]},
        auth=(owner.client_id, owner.client_secret),
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _scopes(http: httpx.Client, owner: Owner, rpt: str) -> tuple[str, ...]:
    """The scopes the policy in use grants again at introspection (empty: inactive)."""
    r = http.post("/uma/introspect", data={"token": rpt}, headers={"Authorization": f"Bearer {owner.pat}"})
    assert r.status_code == 200, r.text
    body = r.json()
    return tuple(sorted(body["permissions"][0]["resource_scopes"])) if body["active"] else ()


def _policy(owner: str, scopes: list[str]) -> str:
    return f'owner "{owner}"\npermit {", ".join(scopes)} on type "photo-album"\n'


def _write(path: Path, text: str) -> None:
    """Replace a file atomically (a new inode, as a deployment tool or editor would)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- readiness (point 1) -----------------------------------------------------------------------


def test_readyz_is_503_until_the_policies_are_compiled_and_200_after(fresh_database_url, tmp_path):
    """An app built on a database not migrated yet has compiled nothing: live, not ready. After
    the migration and the start-up compile (what ``uma serve`` does before it serves) it is."""
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "a.policy").write_text(_policy("someone", ["view"]))
    with _served(_config(fresh_database_url, tmp_path, policy_dir, auto_migrate=False)) as (url, app):
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        before = httpx.get(f"{url}/readyz")
        assert before.status_code == 503 and before.headers["Cache-Control"] == "no-store"
        assert before.json() == {
            "status": "not ready",
            "database": "not migrated",
            "policies": "not compiled",
            "policy_set_version": None,
        }
        upgrade_database(get_engine(app))
        load_policies(app)
        after = httpx.get(f"{url}/readyz")
        assert after.status_code == 200
        assert after.json() == {
            "status": "ready",
            "database": "reachable",
            "policies": "compiled",
            "policy_set_version": 1,
        }


def test_readyz_is_503_while_the_database_is_unreachable_and_healthz_stays_200(tmp_path):
    """A private SQLite file whose folder goes away and comes back (the readiness logic is the
    same on PostgreSQL: one small query, unreachable on any connection error)."""
    folder = tmp_path / "db"
    folder.mkdir()
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    with _served(_config(f"sqlite:///{folder / 'uma.db'}", tmp_path, policy_dir)) as (url, app):
        assert httpx.get(f"{url}/readyz").status_code == 200
        get_engine(app).dispose()
        folder.rename(tmp_path / "away")
        try:
            gone = httpx.get(f"{url}/readyz")
            assert gone.status_code == 503
            assert gone.json()["database"] == "unreachable" and gone.json()["policies"] == "compiled"
            assert httpx.get(f"{url}/healthz").status_code == 200
        finally:
            (tmp_path / "away").rename(folder)
        assert httpx.get(f"{url}/readyz").status_code == 200


# -- atomic swaps (point 2) --------------------------------------------------------------------


def test_a_change_of_two_files_is_seen_entirely_or_not_at_all_while_requests_hammer_G_61(fresh_database_url, tmp_path):
    """Two files of one owner each grant half of what one introspection shows. The folder is a
    symlink swapped between two versions of both files (one atomic change of two units); while
    three clients introspect without pause, every answer must come from one whole version:
    never one file's new text with the other's old one."""
    versions = {
        "all": (["view", "print"], ["download", "edit"]),
        "a": (["view"], ["download"]),
        "b": (["print"], ["edit"]),
    }
    for name, (one, two) in versions.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "one.policy").write_text(_policy("swap-owner", one))
        (folder / "two.policy").write_text(_policy("swap-owner", two))
    link = tmp_path / "policies"
    link.symlink_to(tmp_path / "all", target_is_directory=True)
    expected = {name: tuple(sorted(one + two)) for name, (one, two) in versions.items()}

    def point_to(name: str) -> None:
        tmp = tmp_path / f".link-{name}"
        tmp.symlink_to(tmp_path / name, target_is_directory=True)
        os.replace(tmp, link)

    with _served(_config(fresh_database_url, tmp_path, link)) as (url, app):
        owner = _seed(app)
        http = httpx.Client(base_url=url, timeout=30)
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, "the server to be ready")
        rpt = _rpt(http, owner)
        seen: list[tuple[str, ...]] = []
        stop = threading.Event()
        failures: list[BaseException] = []

        def hammer() -> None:
            with httpx.Client(base_url=url, timeout=30) as mine:
                while not stop.is_set():
                    try:
                        seen.append(_scopes(mine, owner, rpt))
                    except BaseException as exc:  # reported below
                        failures.append(exc)
                        return

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for name in ["a", "b"] * 4:
                point_to(name)
                wait_for(lambda name=name: seen and seen[-1] == expected[name], f"version {name!r} in use")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        http.close()
    assert not failures, failures[0]
    assert set(seen) <= set(expected.values()), set(seen) - set(expected.values())
    assert {expected["a"], expected["b"]} <= set(seen)


# -- several processes on one database, a broken change (points 2 and 7) -------------------------


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.add(int(entry))
    return out


@contextmanager
def _gunicorn(config: dict[str, Any], workers: int, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """The app under gunicorn with this project's settings (preload, gc.freeze, a catch-up per
    worker: app/gunicorn_conf.py), configured by ``UMA_*`` variables as in production."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMA_")}
    env.update({f"UMA_{k.upper()}": str(v) for k, v in {"issuer": url, **config}.items()})
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    argv = [gunicorn, "-c", "python:app.gunicorn_conf", "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*argv, "app:create_app()"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gunicorn_workers_converge_on_every_change_and_a_broken_file_keeps_the_last_good_set_G_61(
    fresh_database_url, tmp_path
):
    """gunicorn with two preloaded workers on one database. An owner's upload (stored by one
    worker), then an operator's file changed, then that file broken, then fixed: after each,
    every worker decides with the new version within the bounded delay (waited for, per worker
    process, through ``/policies/status``), and introspection shows the decision of that version.
    The broken file keeps the last good file in use (with the owner's upload) in every worker,
    and the status reports the error with its location until the fix."""
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "one.policy").write_text(_policy("swap-owner", ["view", "print"]))
    (policy_dir / "two.policy").write_text(_policy("swap-owner", ["download", "edit"]))
    config = _config(fresh_database_url, tmp_path, policy_dir, log_level="INFO")
    seeding = create_app(config)
    owner = _seed(seeding)
    close_app(seeding)
    log = tmp_path / "gunicorn.log"
    with _gunicorn(config, 2, log) as (url, proc):
        http = httpx.Client(base_url=url, timeout=30)
        wait_for(lambda: _ready(http), f"gunicorn to serve (log: {log})", timeout=90)
        workers = wait_for(lambda: len(kids := _children(proc.pid)) == 2 and kids, "two gunicorn workers")
        latest: dict[int, dict[str, Any]] = {}

        def status() -> dict[str, Any]:
            r = http.get("/policies/status", headers={"Authorization": f"Bearer {owner.token}"})
            assert r.status_code == 200, r.text
            latest[r.json()["process"]] = r.json()
            return r.json()

        def every_worker(check: Any, what: str) -> dict[str, Any]:
            """Wait until the last status answered by each worker process passes ``check``."""
            wait_for(lambda: status() and all(pid in latest and check(latest[pid]) for pid in workers), what)
            return latest[min(workers)]

        rpt = _rpt(http, owner)
        assert _scopes(http, owner, rpt) == ("download", "edit", "print", "view")

        # 1. An owner's upload, stored by whichever worker takes the PUT.
        r = http.put(
            "/owner/policy",
            content=b"forbid edit on any resource",
            headers={"Content-Type": "text/plain", "Authorization": f"Bearer {owner.token}"},
        )
        assert r.status_code == 200, r.text
        uploaded = r.json()["policy_set_version"]
        every_worker(lambda s: s["serving_version"] == uploaded, "every worker to serve the upload")
        for _ in range(6):  # whichever worker answers
            assert _scopes(http, owner, rpt) == ("download", "print", "view")

        # 2. An operator's file changes: the first worker to see it bumps the version.
        _write(policy_dir / "one.policy", _policy("swap-owner", ["view"]))
        changed = every_worker(
            lambda s: s["version"] > uploaded and s["serving_version"] == s["version"] and s["error"] is None,
            "every worker to serve the changed file",
        )
        for _ in range(6):
            assert _scopes(http, owner, rpt) == ("download", "view")

        # 3. The other file broken: the last good files (with the upload) keep deciding everywhere,
        # and the status says what is wrong, where.
        _write(policy_dir / "two.policy", 'owner "swap-owner"\npermit download on type "photo-album" when claims.x = 1')
        broken = every_worker(
            lambda s: (
                s["version"] > changed["version"] and s["error"] is not None and s["error"]["version"] == s["version"]
            ),
            "every worker to report the broken file",
        )
        [error] = broken["error"]["diagnostics"]
        assert (error["file"], error["line"], error["code"]) == ("policies/two.policy", 2, "E114")
        for _ in range(6):
            assert _scopes(http, owner, rpt) == ("download", "view")

        # 4. Fixed: in use everywhere, the error gone.
        _write(policy_dir / "two.policy", _policy("swap-owner", ["download"]))
        every_worker(
            lambda s: s["version"] > broken["version"] and s["serving_version"] == s["version"] and s["error"] is None,
            "every worker to serve the fixed file",
        )
        for _ in range(6):
            assert _scopes(http, owner, rpt) == ("download", "view")
        assert _children(proc.pid) == workers  # the same two processes all along
        http.close()
    text = log.read_text()
    assert "Traceback" not in text
    # Compiled once at start, in the master before it forked (preload): the workers took it over.
    assert text.count("policy set version 1 in use") == 1, text


def _ready(http: httpx.Client) -> bool:
    try:
        return http.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


# -- uma serve says what it loaded (issue 13, point 6) ------------------------------------------


def test_uma_serve_logs_its_policy_folder_files_and_rules_and_warns_when_there_are_none(fresh_database_url, tmp_path):
    def serve(policy_dir: Path) -> str:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("UMA_")}
        env.update(
            UMA_DATABASE_URL=fresh_database_url,
            UMA_INSTANCE_PATH=str(tmp_path / "instance"),
            UMA_SECRET_KEY="serve-test",
            UMA_POLICY_DIR=str(policy_dir),
        )
        log = tmp_path / f"serve-{policy_dir.name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: "listening on" in log.read_text() or proc.poll() is not None, "uma serve to listen")
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        return log.read_text()

    empty = tmp_path / "empty"
    empty.mkdir()
    text = serve(empty)
    assert f"policies: 0 rules from 0 policy files in {empty} and 0 owner uploads" in text
    assert f"WARNING app.cli: no policy files in {empty}" in text

    full = tmp_path / "full"
    full.mkdir()
    (full / "one.policy").write_text(_policy("someone", ["view"]) + 'permit print on name "x"\n')
    (full / "two.policy").write_text(_policy("another", ["view"]) + 'permit print on name "x"\n')
    text = serve(full)
    assert f"policies: 4 rules from 2 policy files in {full} and 0 owner uploads" in text
    assert "WARNING app." not in text


# -- the files inotify names: the scan looks at them alone -------------------------------------


def _owner_text(owner: str, rules: int = 1) -> str:
    return f'owner "{owner}"\n' + "".join(f'permit view on resource "{owner}-{i}"\n' for i in range(rules))


def test_a_scan_of_the_named_files_sees_what_a_full_scan_sees(tmp_path):
    """``PolicyFiles.scan(only=paths)`` (the paths inotify named) ends where a full scan of the
    folder ends: files written, created, renamed, removed; names the full scan skips (dot files
    and folders, other suffixes, folders) skipped alike."""
    from app.policies import PolicyFiles

    folder = tmp_path / "policies"
    (folder / "sub").mkdir(parents=True)
    for name in ["a.policy", "b.policy", "sub/c.policy", "d.policy"]:
        (folder / name).write_text(_owner_text(name.split("/")[-1][0]))
    files = PolicyFiles(folder)
    files.scan()
    touched = []
    (folder / "a.policy").write_text(_owner_text("a", 2))  # written
    (folder / "b.policy").unlink()  # removed
    (folder / "d.policy").rename(folder / "sub" / "e.policy")  # moved
    (folder / "sub" / "f.policy").write_text(_owner_text("f"))  # created
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "g.policy").write_text(_owner_text("g"))  # skipped: a dot folder
    (folder / "notes.txt").write_text("not a policy")  # skipped: another suffix
    (folder / ".h.policy").write_text(_owner_text("h"))  # skipped: a dot file
    touched = ["a.policy", "b.policy", "d.policy", "sub/e.policy", "sub/f.policy", ".hidden/g.policy"]
    touched += ["notes.txt", ".h.policy", "sub", "gone/x.policy"]
    assert files.scan(only=[str(folder / t) for t in touched])
    full = PolicyFiles(folder)
    full.scan()
    assert [(s.name, s.text) for s in files.sources()] == [(s.name, s.text) for s in full.sources()]
    assert files.digest == full.digest
    assert [s.name for s in files.sources()] == [
        "policies/a.policy",
        "policies/sub/c.policy",
        "policies/sub/e.policy",
        "policies/sub/f.policy",
    ]


def test_files_written_moved_and_removed_are_in_use_in_a_served_app_G_61(fresh_database_url, tmp_path):
    """The background thread takes in files written, renamed over, removed, and a new folder of
    files (a folder's event: every file scanned), whichever events inotify sends."""
    folder = tmp_path / "policies"
    folder.mkdir()
    for owner in ["ann", "ben", "cat"]:
        (folder / f"{owner}.policy").write_text(_owner_text(owner))
    config = _config(fresh_database_url, tmp_path, folder)
    with _served(config) as (_url, app):
        store = app.extensions["uma_policies"]
        store.start()

        def names() -> list[str]:
            return [s.name for s in store.current().file_sources]

        assert store.current().rules == 3
        _write(folder / "ann.policy", _owner_text("ann", 3))  # written atomically
        wait_for(lambda: store.current().rules == 5, "ann's new rules in use")
        (folder / "ben.policy").unlink()
        wait_for(lambda: "policies/ben.policy" not in names(), "ben's file gone")
        (folder / "new").mkdir()
        (folder / "new" / "dan.policy").write_text(_owner_text("dan", 2))
        wait_for(lambda: "policies/new/dan.policy" in names(), "a file in a new folder")
        (folder / "cat.policy").rename(folder / "new" / "cat.policy")
        wait_for(
            lambda: "policies/new/cat.policy" in names() and "policies/cat.policy" not in names(), "cat's file moved"
        )
        assert store.current().rules == 3 + 2 + 1
