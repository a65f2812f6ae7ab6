"""The server on the wire: UMA grant and introspection against a floor endpoint, side by side.

One command serves the real application for real (gunicorn with 1 and 2 sync
workers, or ``uma serve``) on SQLite and PostgreSQL, and, in the same run and
served the same way, the floor endpoint of ``bench/floor_app.py`` (one SELECT,
one INSERT, one RS256 signature). For each server it measures, at 1, 4 and 8
concurrent clients:

* ``floor``      — ``POST /floor``;
* ``grant``      — ``POST /token`` with the UMA grant: a fresh permission ticket
  for a resource the policy grants → an RPT (JWT) with a refresh token;
* ``introspect`` — ``POST /uma/introspect`` of an RPT by its resource server (PAT);

latency p50/p95/p99 and throughput, and prints grant/floor and introspect/floor. With
``--endpoints floor,grant,bare`` it also serves and measures the bare grant of
``bench/bare_grant.py`` (the grant's work with the fewest layers: a lower bound).
Every answer is checked (200 and the expected body); a run with a failed
request stops with the answer instead of printing figures.

    .venv/bin/python bench/server.py                       # everything (about 4 minutes)
    .venv/bin/python bench/server.py --quick               # SQLite, 1 worker, fewer requests
    .venv/bin/python bench/server.py --db sqlite --server uma-serve --clients 8
    .venv/bin/python bench/server.py --db postgresql --workers 2 --fill 1000000
    .venv/bin/python bench/server.py --scenarios-only --rules 1000,10000   # without the 100,000-rule run

``--fill N`` measures each server on the empty database, then stores N permission
tickets, N RPTs and N OAuth tokens (bulk inserts, all live) and measures again:
the ``filled/empty`` table is the cost of a big database. See docs/benchmarks.md.

Then the scenarios of issue 11, points 1 and 2 (``--scenarios-only`` runs them alone,
``--no-scenarios`` leaves them out), on SQLite with gunicorn and the project's settings
(``app/gunicorn_conf.py``: preload, gc.freeze): cold start to ready at each ``--rules``
size (default 1,000, 10,000 and 100,000 rules in files of 100); at the largest, memory
per extra worker (USS and PSS from /proc/PID/smaps_rollup), then a one-file change: the
time until every decision uses it and the worst latency of other requests meanwhile,
against the same load just before. Each figure is printed with its target, PASS or MISS.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bare_grant  # noqa: E402
import floor_app  # noqa: E402
import policy_model as pm  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- databases -----------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path, pg_url: str, name: str) -> Iterator[str]:
    """A fresh, empty database URL (a SQLite file, or a PostgreSQL schema dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / (name + '.db')}"
        return
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# -- the application's data ----------------------------------------------------


@dataclass
class Seeded:
    """What the load needs: the UMA client, the RS's PAT, the resource, the app (for tickets)."""

    app: Any
    client_id: str
    client_secret: str
    pat: str
    owner: str
    rs_client_id: str
    resource_id: str
    rpts: list[str] = field(default_factory=list)


def app_config(url: str, workdir: Path, issuer: str) -> dict[str, str]:
    return {
        "database_url": url,
        "issuer": issuer,
        "secret_key": "bench-" + "0" * 32,
        "instance_path": str(workdir / "instance"),
        "policy_dir": str(workdir / "policies"),
        "rpt_lifetime": "3600",
        "log_level": "WARNING",
    }


def seed(url: str, workdir: Path, issuer: str) -> Seeded:
    """Migrate and create: an owner, an RS with a PAT, a resource, an UMA client, a policy
    file granting the client ``view`` on photo albums."""
    from sqlmodel import Session

    from app import create_app
    from app.db import get_engine
    from app.models import UMA_TICKET_GRANT, Resource
    from app.oauth.clients import create_client
    from app.oauth.tokens import issue_token
    from app.users import create_user

    (workdir / "policies").mkdir(parents=True, exist_ok=True)
    app = create_app(app_config(url, workdir, issuer))
    owner = "bench-owner"
    with Session(get_engine(app), expire_on_commit=False) as session:
        create_user(session, owner, "pw-" + secrets.token_hex(8), {"email": "owner@example.com"})
        rs, _ = create_client(
            session, client_name="bench-rs", grant_types=["client_credentials"], scope="uma_protection", owner=owner
        )
        client, secret = create_client(session, client_name="bench-client", grant_types=[UMA_TICKET_GRANT])
        body, _ = issue_token(
            session,
            app.config["UMA_SETTINGS"],
            client_id=rs.client_id,
            subject=owner,
            scope="uma_protection",
            grant_type="client_credentials",
            include_refresh=False,
        )
        resource = Resource(
            id=uuid.uuid4().hex,
            owner=owner,
            rs_client_id=rs.client_id,
            name="holidays",
            type="photo-album",
            resource_scopes=["view", "download"],
        )
        session.add(resource)
        session.commit()
    (workdir / "policies" / "bench.policy").write_text(
        f'owner "{owner}"\n\npermit view\n  on type "photo-album"\n  when client.id == "{client.client_id}"\n'
    )
    assert secret is not None
    return Seeded(app, client.client_id, secret, body["access_token"], owner, rs.client_id, resource.id)


def make_tickets(seeded: Seeded, count: int, scopes: list[str] | None = None) -> list[str]:
    """``count`` fresh permission tickets for ``scopes`` (default ``view``) on the resource (bulk insert)."""
    from app.db import get_engine
    from app.models import PermissionTicket
    from app.security import hash_token, new_token, now

    raw = [new_token() for _ in range(count)]
    at = now()
    rows = [
        {
            "ticket_hash": hash_token(t),
            "owner": seeded.owner,
            "rs_client_id": seeded.rs_client_id,
            "permissions": [{"resource_id": seeded.resource_id, "resource_scopes": scopes or ["view"]}],
            "claims": {},
            "claim_sources": {},
            "created_at": at,
            "expires_at": at + 3600,
            "consumed": False,
        }
        for t in raw
    ]
    with get_engine(seeded.app).begin() as conn:
        conn.execute(insert(PermissionTicket), rows)
    return raw


def fill(seeded: Seeded, count: int, chunk: int = 20_000) -> float:
    """Store ``count`` live tickets (consumed), RPTs and OAuth tokens; returns the seconds it took."""
    from app.db import get_engine
    from app.models import PermissionTicket, Rpt, Token
    from app.security import now

    started = time.perf_counter()
    at = now()
    engine = get_engine(seeded.app)
    perms = [{"resource_id": seeded.resource_id, "resource_scopes": ["view"]}]
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        hexes = [secrets.token_hex(32) for _ in range(3 * n)]
        with engine.begin() as conn:
            conn.execute(
                insert(PermissionTicket),
                [
                    {
                        "ticket_hash": hexes[i],
                        "owner": seeded.owner,
                        "rs_client_id": seeded.rs_client_id,
                        "permissions": perms,
                        "claims": {},
                        "claim_sources": {},
                        "created_at": at,
                        "expires_at": at + 86400,
                        "consumed": True,
                        "consumed_at": at,
                    }
                    for i in range(n)
                ],
            )
            conn.execute(
                insert(Rpt),
                [
                    {
                        "jti": hexes[n + i][:32],
                        "token_hash": hexes[n + i],
                        "format": "jwt",
                        "client_id": seeded.client_id,
                        "owner": seeded.owner,
                        "rs_client_id": seeded.rs_client_id,
                        "permissions": perms,
                        "issued_at": at,
                        "expires_at": at + 86400,
                        "family_id": hexes[n + i][32:],
                        "basis": {},
                    }
                    for i in range(n)
                ],
            )
            conn.execute(
                insert(Token),
                [
                    {
                        "access_token_hash": hexes[2 * n + i],
                        "client_id": seeded.client_id,
                        "scope": "",
                        "grant_type": "client_credentials",
                        "family_id": hexes[2 * n + i][:43],
                        "issued_at": at,
                        "expires_at": at + 86400,
                    }
                    for i in range(n)
                ],
            )
        if (start // chunk) % 10 == 9:
            log(f"  filled {start + n:,} of {count:,}")
    # Leave nothing for later: PostgreSQL's autovacuum would otherwise start on the new rows in the
    # middle of the measurement, and SQLite's WAL would hold them until a checkpoint.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return time.perf_counter() - started


# -- servers -------------------------------------------------------------------


@dataclass
class Served:
    name: str
    port: int
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(
    name: str, argv: list[str], env: dict[str, str], port: int, ready_path: str, workdir: Path, timeout: float = 120
) -> Served:
    logfile = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps writing to it
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
    )
    served = Served(name, port, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited at start:\n{(workdir / f'{name}.log').read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", ready_path)
            status = conn.getresponse().status
            conn.close()
            if status < 500:
                return served
        except OSError:
            pass
        time.sleep(0.05)
    served.stop()
    raise SystemExit(f"{name} not ready after {timeout:.0f} s:\n{(workdir / f'{name}.log').read_text()[-4000:]}")


def serve_both(
    server: str, workers: int, url: str, workdir: Path, key_file: Path, bare: bool = False
) -> tuple[Served, Served]:
    """The application and the floor app, served the same way; with ``bare``, the application
    with the route of ``bench/bare_grant.py`` (gunicorn only)."""
    app_port, floor_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMA_")}
    app_env = dict(env)
    for k, v in app_config(url, workdir, f"http://127.0.0.1:{app_port}").items():
        app_env["UMA_" + k.upper()] = v
    floor_env = dict(env, FLOOR_DATABASE_URL=url, FLOOR_KEY_FILE=str(key_file))
    if server == "gunicorn":
        common = [str(BIN / "gunicorn"), "-w", str(workers), "--log-level", "warning"]
        app_argv = [*common, "-b", f"127.0.0.1:{app_port}", "app:create_app()"]
        if bare:
            app_argv[-1:] = ["--pythonpath", "bench", "bare_grant:create_app()"]
        floor_argv = [*common, "-b", f"127.0.0.1:{floor_port}", "--pythonpath", "bench", "floor_app:create_app()"]
    else:  # uma serve: one process, werkzeug's threaded server; the floor the same way
        app_argv = [str(BIN / "uma"), "serve", "--host", "127.0.0.1", "--port", str(app_port)]
        floor_argv = [sys.executable, str(ROOT / "bench" / "server.py"), "--serve-floor", str(floor_port)]
    app = start("app", app_argv, app_env, app_port, "/.well-known/uma2-configuration", workdir)
    try:
        floor = start("floor", floor_argv, floor_env, floor_port, "/", workdir)
    except BaseException:
        app.stop()
        raise
    return app, floor


def write_key(path: Path) -> None:
    """A new RSA key (PEM) for the floor endpoint's signatures."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def serve_floor_werkzeug(port: int) -> None:
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, floor_app.create_app(), threaded=True)


# -- load ----------------------------------------------------------------------


@dataclass
class Request:
    path: str
    body: bytes
    headers: dict[str, str]
    check: Callable[[bytes], bool]


def cpu_seconds(served: Served) -> float:
    """CPU time (user + system) used so far by the server's processes (its process group: the
    gunicorn master and workers). Unlike latency it hardly moves with the load of other programs
    on a shared machine, so ``CPU ms/req`` compares runs made at different times."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == served.process.pid:  # process group id: start_new_session made it the leader's pid
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Level:
    endpoint: str
    clients: int
    latencies: list[float]
    seconds: float
    cpu: float = 0.0  # server CPU seconds over the level

    @property
    def cpu_ms(self) -> float:
        return self.cpu / len(self.latencies) * 1000

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


class Failed(Exception):
    pass


def one(port: int, req: Request) -> float:
    """One request on a new connection (gunicorn's sync workers close every connection)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", req.path, body=req.body, headers=req.headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    if resp.status != 200 or not req.check(data):
        raise Failed(f"POST {req.path} → {resp.status}: {data[:500]!r}")
    return elapsed


def load(port: int, requests: list[Request], clients: int) -> tuple[list[float], float]:
    """Send ``requests`` from ``clients`` threads, each one at a time; (latencies, wall seconds)."""
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = []
        while not errors:
            i = next(counter)
            if i >= len(requests):
                break
            try:
                mine.append(one(port, requests[i]))
            except BaseException as exc:  # reported below
                errors.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise Failed(str(errors[0]))
    return latencies, wall


def _json_has(key: str) -> Callable[[bytes], bool]:
    return lambda data: key in json.loads(data)


def _active(data: bytes) -> bool:
    body = json.loads(data)
    return body.get("active") is True and bool(body.get("permissions"))


def floor_requests(n: int) -> list[Request]:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "close"}
    return [Request("/floor", f"item={i}".encode(), headers, _json_has("access_token")) for i in range(n)]


def grant_requests(seeded: Seeded, n: int, path: str = "/token") -> list[Request]:
    """``n`` UMA grants, each with a fresh ticket and the client's HTTP Basic credentials; with
    ``path``, the same requests to the bare grant of ``bench/bare_grant.py`` (a lower bound)."""
    import base64

    basic = base64.b64encode(f"{seeded.client_id}:{seeded.client_secret}".encode()).decode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"Basic {basic}",
        "Connection": "close",
    }
    return [
        Request(path, urlencode({"grant_type": UMA_GRANT, "ticket": t}).encode(), headers, _json_has("access_token"))
        for t in make_tickets(seeded, n)
    ]


def introspect_requests(seeded: Seeded, n: int) -> list[Request]:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": f"Bearer {seeded.pat}",
        "Connection": "close",
    }
    return [
        Request("/uma/introspect", urlencode({"token": seeded.rpts[i % len(seeded.rpts)]}).encode(), headers, _active)
        for i in range(n)
    ]


def measure(
    endpoints: list[str], clients: list[int], n: int, app: Served, floor: Served, seeded: Seeded, slices: int = 8
) -> list[Level]:
    """Each concurrency level, after a warm-up: the endpoints in turns of ``n / slices`` requests
    each (floor, grant, introspect, floor, grant, …), each endpoint's turns summed into one
    level. On a shared machine whose speed drifts over seconds, a level measured in one block
    after another's compared two different machines; in turns, drift hits them alike."""
    makers: dict[str, tuple[Served, Callable[[int], list[Request]]]] = {
        "floor": (floor, floor_requests),
        "grant": (app, lambda k: grant_requests(seeded, k)),
        "introspect": (app, lambda k: introspect_requests(seeded, k)),
        "bare": (app, lambda k: grant_requests(seeded, k, bare_grant.PATH)),
    }
    out = []
    for c in clients:
        levels = {endpoint: Level(endpoint, c, [], 0.0) for endpoint in endpoints}
        for endpoint in endpoints:
            served, make = makers[endpoint]
            load(served.port, make(4 * c), c)  # warm-up: every worker and connection path once
        per_turn = max(c, n // slices)
        for _ in range(max(1, n // per_turn)):
            for endpoint, level in levels.items():
                served, make = makers[endpoint]
                requests = make(per_turn)
                cpu_before = cpu_seconds(served)
                latencies, wall = load(served.port, requests, c)
                level.cpu += cpu_seconds(served) - cpu_before
                level.latencies.extend(latencies)
                level.seconds += wall
        for level in levels.values():
            log(
                f"    {level.endpoint:<10} {c} clients: p50 {level.pct(50):6.2f} ms, {level.throughput:7.1f} req/s,"
                f" {level.cpu_ms:5.2f} CPU ms/req"
            )
            out.append(level)
    return out


def issue_rpts(seeded: Seeded, app: Served, count: int = 64) -> None:
    """RPTs to introspect, issued by the server under test."""
    for req in grant_requests(seeded, count):
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=60)
        conn.request("POST", req.path, body=req.body, headers=req.headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status != 200:
            raise Failed(f"grant → {resp.status}: {body[:500]!r}")
        seeded.rpts.append(json.loads(body)["access_token"])


# -- report --------------------------------------------------------------------


def table(title: str, levels: list[Level]) -> str:
    lines = [
        f"#### {title}",
        "",
        "| endpoint | clients | p50 ms | p95 ms | p99 ms | req/s | server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        lines.append(
            f"| {lv.endpoint} | {lv.clients} | {lv.pct(50):.2f} | {lv.pct(95):.2f} | {lv.pct(99):.2f} |"
            f" {lv.throughput:.0f} | {lv.cpu_ms:.2f} |"
        )
    by = {(lv.endpoint, lv.clients): lv for lv in levels}
    compared = [e for e in ("grant", "introspect", "bare") if any(lv.endpoint == e for lv in levels)]
    ratio_rows = []
    for c in sorted({lv.clients for lv in levels}):
        floor = by.get(("floor", c))
        if floor is None:
            continue
        cells = []
        for endpoint in compared:
            lv = by[endpoint, c]
            cpu = f"{lv.cpu_ms / floor.cpu_ms:.2f}" if floor.cpu_ms else "—"
            cells += [f"{lv.pct(50) / floor.pct(50):.2f}", f"{lv.throughput / floor.throughput:.2f}", cpu]
        ratio_rows.append(f"| {c} | " + " | ".join(cells) + " |")
    if ratio_rows and compared:
        header = [f"{e}/floor {what}" for e in compared for what in ("p50", "req/s", "CPU")]
        lines += ["", "| clients | " + " | ".join(header) + " |", "|---:|" + "---:|" * len(header), *ratio_rows]
    return "\n".join(lines)


def fill_table(title: str, empty: list[Level], filled: list[Level]) -> str:
    lines = [
        f"#### {title}: filled / empty",
        "",
        "| endpoint | clients | p50 empty | p50 filled | p50 filled/empty | req/s filled/empty | p50 filled/empty, floor = 1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    before = {(lv.endpoint, lv.clients): lv for lv in empty}
    after = {(lv.endpoint, lv.clients): lv for lv in filled}
    for lv in filled:
        e = before[(lv.endpoint, lv.clients)]
        # The same ratio divided by the floor's: the drift of a shared machine between the two
        # measurements hits the floor too, while only the server's tables were filled.
        floor_e, floor_f = before.get(("floor", lv.clients)), after.get(("floor", lv.clients))
        relative = "—"
        if floor_e and floor_f and lv.endpoint != "floor":
            relative = f"{(lv.pct(50) / e.pct(50)) / (floor_f.pct(50) / floor_e.pct(50)):.2f}"
        lines.append(
            f"| {lv.endpoint} | {lv.clients} | {e.pct(50):.2f} | {lv.pct(50):.2f} | "
            f"{lv.pct(50) / e.pct(50):.2f} | {lv.throughput / e.throughput:.2f} | {relative} |"
        )
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------


def run_one(args: argparse.Namespace, server: str, kind: str, workers: int, workdir: Path, key_file: Path) -> str:
    title = f"{server}, {kind}, {workers} worker{'s' if workers > 1 else ''}"
    log(f"== {title}")
    sub = workdir / f"{server}-{kind}-{workers}"
    sub.mkdir()
    with database(kind, sub, args.pg_url, f"{kind}{workers}") as url:
        seeded = seed(url, sub, "http://127.0.0.1:0")
        floor_app.create_tables(url)
        app, floor = serve_both(server, workers, url, sub, key_file, bare="bare" in args.endpoints)
        try:
            issue_rpts(seeded, app)
            levels = measure(args.endpoints, args.clients, args.requests, app, floor, seeded, args.turns)
            report = table(title, levels)
            if args.fill:
                log(f"  filling: {args.fill:,} tickets, RPTs and tokens")
                took = fill(seeded, args.fill)
                log(f"  filled in {took:.0f} s")
                filled = measure(args.endpoints, args.clients, args.requests, app, floor, seeded, args.turns)
                report += "\n\n" + table(f"{title}, {args.fill:,} rows each", filled)
                report += "\n\n" + fill_table(title, levels, filled)
        finally:
            app.stop()
            floor.stop()
            seeded.app.extensions["uma_db"].dispose()
    return report


# -- scenarios: cold start, a one-file change, memory per worker (issue 11, points 1 and 2) --------

READY_TARGET_S = 10.0  # ready within 10 s at 100,000 rules
CHANGE_TARGET_S = 1.0  # a one-file change in use within 1 s
STALL_TARGET_MS = 50.0  # no other request slower than 50 ms meanwhile
WORKER_TARGET_MIB = 100.0  # memory per extra gunicorn worker at 100,000 rules
OTHER_OWNER = "bench-other"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def owner_file(owner: str, client_id: str, scopes: str) -> str:
    """An owner's file of 100 rules: the one the measurement reads (``scopes`` on the photo
    album for the bench client) and 99 others on names the bench never asks about."""
    lines = [f'owner "{owner}"', "", 'group family = ["a@example.com", "b@example.com"]', ""]
    lines.append(f'permit {scopes} on type "photo-album" when client.id == "{client_id}"')
    for i in range(99):
        lines.append(
            f'permit view on name "filler-{i}" when claims.email in family and client.id == "photo-app"'
            if i % 2
            else f'forbid print on name "filler-{i}" unless client.id in ["owner-phone", "owner-laptop"]'
        )
    return "\n".join(lines) + "\n"


def write_policies(folder: Path, rules: int, seeded: Seeded, other: Seeded) -> int:
    """``rules`` rules in files of 100 (``bench/policy_model.py``'s model, one file per owner),
    the two bench owners' files among them, and the global file of ``bench/policy_units.py``;
    returns the number of files."""
    from policy_units import GLOBAL_TEXT

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.policy"):
        old.unlink()
    (folder / "global.policy").write_text(GLOBAL_TEXT)
    (folder / "bench.policy").write_text(owner_file(seeded.owner, seeded.client_id, "view, download"))
    (folder / "other.policy").write_text(owner_file(other.owner, other.client_id, "view, download"))
    rest = max(0, rules - 200)
    model = pm.build_model(rest, n_owners=max(1, rest // 100)) if rest else None
    for owner in model.owners if model else []:
        (folder / f"{owner.id}.policy").write_text(pm.ours_text(owner))
    return 3 + (len(model.owners) if model else 0)


def other_owner(seeded: Seeded) -> Seeded:
    """A second owner at the same RS (its own PAT and photo album): requests that no policy
    change of the bench owner touches."""
    from sqlmodel import Session

    from app.db import get_engine
    from app.models import Resource
    from app.oauth.tokens import issue_token
    from app.users import create_user

    with Session(get_engine(seeded.app), expire_on_commit=False) as session:
        create_user(session, OTHER_OWNER, "pw-" + secrets.token_hex(8))
        body, _ = issue_token(
            session,
            seeded.app.config["UMA_SETTINGS"],
            client_id=seeded.rs_client_id,
            subject=OTHER_OWNER,
            scope="uma_protection",
            grant_type="client_credentials",
            include_refresh=False,
        )
        resource = Resource(
            id=uuid.uuid4().hex,
            owner=OTHER_OWNER,
            rs_client_id=seeded.rs_client_id,
            name="other",
            type="photo-album",
            resource_scopes=["view", "download"],
        )
        session.add(resource)
        session.commit()
    return Seeded(
        seeded.app,
        seeded.client_id,
        seeded.client_secret,
        body["access_token"],
        OTHER_OWNER,
        seeded.rs_client_id,
        resource.id,
    )


def serve_app(workdir: Path, url: str, workers: int, timeout: float) -> tuple[Served, float]:
    """The app under gunicorn with the project's settings (``app/gunicorn_conf.py``: preload,
    gc.freeze, a catch-up per worker); (server, seconds from the start of the process to the
    first 200 of ``/readyz``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMA_")}
    for k, v in app_config(url, workdir, f"http://127.0.0.1:{port}").items():
        env["UMA_" + k.upper()] = v
    env["UMA_LOG_LEVEL"] = "INFO"  # the compile's line ("compiled in … s")
    argv = [str(BIN / "gunicorn"), "-c", "python:app.gunicorn_conf", "-w", str(workers)]
    argv += ["--log-level", "warning", "--timeout", "120", "-b", f"127.0.0.1:{port}", "app:create_app()"]
    started = time.perf_counter()
    served = start("app", argv, env, port, "/readyz", workdir, timeout=timeout)
    return served, time.perf_counter() - started


def cache_hits(workdir: Path) -> str:
    """How many texts the start read from the policy cache, of how many, from the master's log."""
    import re

    found = re.findall(
        r"policy cache .*: (\d+) texts read from it, (\d+) read afresh", (workdir / "app.log").read_text()
    )
    return f"{found[0][0]} / {int(found[0][0]) + int(found[0][1])}" if found else "-"


def compile_seconds(workdir: Path) -> float:
    """The start-up compile's own time, from the master's log line."""
    import re

    found = re.findall(r"in use: .*\(compiled in ([\d.]+) s\)", (workdir / "app.log").read_text())
    return float(found[0]) if found else float("nan")


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU time of one process so far, seconds (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_of(served: Served) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                if int(fields[1]) == served.process.pid:
                    out.append(int(pid))
    return sorted(out)


def memory_kib(pid: int) -> dict[str, int]:
    """Rss, Pss, and USS (Private_Clean + Private_Dirty) of one process, KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0])
    return {"rss": values["Rss"], "pss": values["Pss"], "uss": values["Private_Clean"] + values["Private_Dirty"]}


def memory_table(served: Served, when: str) -> tuple[str, float]:
    master = memory_kib(served.process.pid)
    rows = [
        f"| master (compiled the set before forking) | {master['rss'] / 1024:.0f} | {master['pss'] / 1024:.0f} | {master['uss'] / 1024:.0f} |"
    ]
    uss = []
    for pid in workers_of(served):
        m = memory_kib(pid)
        uss.append(m["uss"] / 1024)
        rows.append(f"| worker {pid} | {m['rss'] / 1024:.0f} | {m['pss'] / 1024:.0f} | {m['uss'] / 1024:.0f} |")
    worst = max(uss)
    lines = [
        f"Memory, {when} (MiB, /proc/PID/smaps_rollup; USS = private pages, what one more worker adds):",
        "",
        "| process | RSS | PSS | USS |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Per extra worker (the largest worker USS): {worst:.0f} MiB, {worst / (master['rss'] / 1024):.2f} of the"
        f" master's RSS; target < {WORKER_TARGET_MIB:.0f} MiB: {_verdict(worst < WORKER_TARGET_MIB)}",
    ]
    return "\n".join(lines), worst


def _introspect(port: int, pat: str, rpt: str) -> tuple[float, list[str]]:
    """(seconds, scopes granted again) of one introspection."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            "/uma/introspect",
            body=urlencode({"token": rpt}).encode(),
            headers={"Authorization": f"Bearer {pat}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    if resp.status != 200:
        raise Failed(f"introspection → {resp.status}: {data[:300]!r}")
    body = json.loads(data)
    return elapsed, sorted(body["permissions"][0]["resource_scopes"]) if body.get("active") else []


def _rpt_for(port: int, seeded: Seeded, scopes: list[str]) -> str:
    import base64

    [ticket] = make_tickets(seeded, 1, scopes)
    basic = base64.b64encode(f"{seeded.client_id}:{seeded.client_secret}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(
        "POST",
        "/token",
        body=urlencode({"grant_type": UMA_GRANT, "ticket": ticket}).encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status != 200:
        raise Failed(f"grant → {resp.status}: {data[:300]!r}")
    return json.loads(data)["access_token"]


def one_file_change(served: Served, folder: Path, seeded: Seeded, other: Seeded) -> str:
    """The bench owner's file (100 rules) changes from granting view and download to view only,
    while one client keeps asking about it and another keeps sending other requests (the other
    owner's introspection): how long until every answer uses the change, and the other
    requests' worst latency meanwhile, against the same load just before."""
    port = served.port
    mine = _rpt_for(port, seeded, ["view", "download"])
    theirs = _rpt_for(port, other, ["view", "download"])
    for _ in range(20):  # every worker warm
        _introspect(port, seeded.pat, mine)
        _introspect(port, other.pat, theirs)

    stop = threading.Event()
    others: list[tuple[float, float]] = []  # (sent at, seconds)
    answers: list[tuple[float, list[str]]] = []  # (answered at, scopes)

    failures: list[BaseException] = []

    def other_load() -> None:
        while not stop.is_set():
            at = time.perf_counter()
            took, scopes = _introspect(port, other.pat, theirs)
            if scopes != ["download", "view"]:
                raise Failed(f"the other owner's decision moved: {scopes}")
            others.append((at, took))

    def poll() -> None:
        while not stop.is_set():
            _, scopes = _introspect(port, seeded.pat, mine)
            answers.append((time.perf_counter(), scopes))

    def run(body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:  # raised below, after the threads ended
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(other_load,)), threading.Thread(target=run, args=(poll,))]
    for t in threads:
        t.start()
    try:
        time.sleep(5)  # the baseline: the same load before the change
        changed_at = time.perf_counter()
        tmp = folder / ".bench.policy.new"
        tmp.write_text(owner_file(seeded.owner, seeded.client_id, "view"))
        os.replace(tmp, folder / "bench.policy")
        deadline = changed_at + 60
        while time.perf_counter() < deadline and not stop.is_set():
            time.sleep(0.05)
            recent = [a for a in answers if a[0] > changed_at]
            new = [a[0] for a in recent if a[1] == ["view"]]
            old = [a[0] for a in recent if a[1] != ["view"]]
            # done when 3 s of answers after the last old one (and a new one) all used the change
            if new and time.perf_counter() - max([new[0], *old]) > 3:
                break
    finally:
        stop.set()
        for t in threads:
            t.join()
    if failures:
        raise failures[0]
    after = [a for a in answers if a[0] > changed_at]
    first_new = next((a[0] for a in after if a[1] == ["view"]), None)
    if first_new is None:
        raise Failed("the change was not in use within 60 s")
    stale = [a[0] for a in after if a[1] != ["view"]]
    in_use = (max(stale) if stale and max(stale) > first_new else first_new) - changed_at
    before = [took for at, took in others if at < changed_at]
    during = [took for at, took in others if changed_at <= at <= changed_at + max(in_use, 1.0) + 0.5]
    worst_before, worst_during = max(before) * 1000, max(during) * 1000
    return "\n".join(
        [
            f"One file of {len(list(folder.glob('*.policy')))} changed ({seeded.owner}'s 100 rules: view and download →"
            f" view), {len(after)} answers about it and {len(during)} other requests during the change:",
            "",
            "| figure | value | target | |",
            "|---|---:|---:|---|",
            f"| first answer using the change | {(first_new - changed_at) * 1000:.0f} ms | | |",
            f"| every answer using it (after the last old one) | {in_use * 1000:.0f} ms | ≤ {CHANGE_TARGET_S * 1000:.0f} ms"
            f" | {_verdict(in_use <= CHANGE_TARGET_S)} |",
            f"| other requests, worst latency during the change | {worst_during:.1f} ms | ≤ {STALL_TARGET_MS:.0f} ms"
            f" | {_verdict(worst_during <= STALL_TARGET_MS)} |",
            f"| other requests, worst latency in the 5 s before | {worst_before:.1f} ms | (baseline) | |",
            f"| ratio during / before | {worst_during / worst_before:.2f} | | |",
        ]
    )


def scenarios(args: argparse.Namespace, workdir: Path) -> str:
    """Cold start to ready at each ``--rules`` size; at the largest, memory per worker and the
    one-file change (then memory again). gunicorn with ``--scenario-workers`` workers, SQLite."""
    out = []
    sizes = sorted(args.rules)
    rows: list[str] = []
    latency: list[str] = []
    started_load = load_average()
    for n in sizes:
        sub = workdir / f"rules-{n}"
        sub.mkdir()
        url = f"sqlite:///{sub / 'uma.db'}"
        seeded = seed(url, sub, "http://127.0.0.1:0")
        other = other_owner(seeded)
        files = write_policies(sub / "policies", n, seeded, other)
        seeded.app.extensions["uma_db"].dispose()
        log(f"== cold start at {n:,} rules ({files} files)")
        served, ready = serve_app(sub, url, args.scenario_workers, timeout=3600)
        try:
            took, cpu = compile_seconds(sub), process_cpu_seconds(served.process.pid)
            log(f"   ready in {ready:.1f} s (compile {took:.1f} s)")
            latency.append(latency_at_size(n, served, seeded))
            if n == sizes[-1]:
                for _ in range(50):  # decisions in every worker before measuring memory
                    issue_rpts(seeded, served, 4)
                table, _ = memory_table(served, f"{n:,} rules, {args.scenario_workers} workers, after 200 grants")
                out.append(table)
                log("== one file changed")
                out.append(one_file_change(served, sub / "policies", seeded, other))
                table, _ = memory_table(served, "after the change")
                out.append(table)
        finally:
            served.stop()
        # A restart: the same files (but the one changed above), the policy cache of the first start.
        log(f"== restart at {n:,} rules")
        served, again = serve_app(sub, url, args.scenario_workers, timeout=3600)
        cpu_again = process_cpu_seconds(served.process.pid)
        served.stop()
        took_again, hits = compile_seconds(sub), cache_hits(sub)
        log(f"   ready in {again:.1f} s (compile {took_again:.1f} s)")
        rows.append(
            f"| {n:,} | {files} | {ready:.1f} | {cpu:.1f} | {took:.1f} | {ready - took:.1f} | {again:.1f} |"
            f" {cpu_again:.1f} | {took_again:.1f} | {hits} |"
            + (
                f" {_verdict(ready <= READY_TARGET_S)} / {_verdict(again <= READY_TARGET_S)} |"
                if n == 100_000
                else " |"
            )
        )
    head = [
        f"Cold start to ready (gunicorn -c python:app.gunicorn_conf -w {args.scenario_workers}, SQLite; process"
        " start to the first 200 of /readyz; compile: the master's start-up compile; first start: an empty"
        " instance folder, restart: the same server started again, with the policy cache of the first;"
        f" CPU: the master's, at ready; load average {started_load} before, {load_average()} after):",
        "",
        "| rules | files | ready (s) | CPU (s) | compile (s) | the rest (s) | restart: ready (s) | restart: CPU (s) |"
        " restart: compile (s) | restart: texts from the cache | ≤ 10 s at 100,000 (first / restart) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    curve = [
        "Latency against the number of rules (the same servers, once ready; one client, requests one at a"
        " time, each on a new connection; the grant decides the bench owner's resource among all the owners'"
        " rules, introspection decides its RPT again):",
        "",
        "| rules | grant p50 ms | grant p99 ms | introspect p50 ms | introspect p99 ms |",
        "|---:|---:|---:|---:|---:|",
        *latency,
    ]
    return "\n\n".join(["\n".join(head), "\n".join(curve), *out])


def latency_at_size(rules: int, served: Served, seeded: Seeded, count: int = 200) -> str:
    """A row of the latency-against-rules table: ``count`` grants, then ``count`` introspections,
    after 20 grants (every worker's first requests)."""
    load(served.port, grant_requests(seeded, 20), 2)
    grants, _ = load(served.port, grant_requests(seeded, count), 1)
    issue_rpts(seeded, served, 8)
    looks, _ = load(served.port, introspect_requests(seeded, count), 1)
    g, i = Level("grant", 1, grants, 1.0), Level("introspect", 1, looks, 1.0)
    log(f"   grant p50 {g.pct(50):.2f} ms, introspect p50 {i.pct(50):.2f} ms")
    return f"| {rules:,} | {g.pct(50):.2f} | {g.pct(99):.2f} | {i.pct(50):.2f} | {i.pct(99):.2f} |"


def machine_speed_ms() -> float:
    """CPU ms of a fixed pure-Python loop: the same tree on the team's shared machine ran 1.5x
    slower in one hour than in another (CPU time, nothing else running), so runs of different
    days compare only with this figure beside them."""
    started = time.process_time()
    total = 0
    for i in range(5_000_000):
        total += i
    return (time.process_time() - started) * 1000


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


#: Scenarios beyond the per-request tables, printed after them (``--scenarios``).
SCENARIOS: dict[str, Callable[[argparse.Namespace, Path], str]] = {
    "Cold start, one file changed, memory per worker (issue 11, points 1 and 2)": scenarios
}


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda value: [kind(v) for v in value.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--server", type=_csv(str), default=["gunicorn"], help="gunicorn,uma-serve (default gunicorn)")
    p.add_argument("--db", type=_csv(str), default=["sqlite", "postgresql"], help="sqlite,postgresql")
    p.add_argument("--workers", type=_csv(int), default=[1, 2], help="gunicorn worker counts (default 1,2)")
    p.add_argument("--clients", type=_csv(int), default=[1, 4, 8], help="concurrent clients (default 1,4,8)")
    p.add_argument(
        "--endpoints", type=_csv(str), default=["floor", "grant", "introspect"], help="floor,grant,introspect[,bare]"
    )
    p.add_argument("--requests", type=int, default=400, help="measured requests per endpoint and level")
    p.add_argument("--turns", type=int, default=8, help="turns per endpoint and level, taken in rotation (default 8)")
    p.add_argument("--quick", action="store_true", help="SQLite, 1 worker, 1 and 8 clients, 150 requests")
    p.add_argument("--fill", type=int, default=0, metavar="N", help="measure again with N rows in each token table")
    p.add_argument("--pg-url", default=os.environ.get("UMA_TEST_DATABASE_URL", DEFAULT_PG))
    p.add_argument(
        "--rules", type=_csv(int), default=[1000, 10000, 100000], help="cold start sizes (default 1000,10000,100000)"
    )
    p.add_argument("--scenario-workers", type=int, default=2, help="gunicorn workers of the scenarios (default 2)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--scenarios-only", action="store_true", help="only cold start, change and memory")
    which.add_argument("--no-scenarios", action="store_true", help="only the per-request tables")
    p.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_floor:
        serve_floor_werkzeug(args.serve_floor)
        return 0
    if args.quick:
        args.db, args.workers, args.clients, args.requests = ["sqlite"], [1], [1, 8], 150
        args.rules = [1000]
    for name in args.server:
        if name not in ("gunicorn", "uma-serve"):
            p.error(f"unknown server {name!r}")
    for name in args.db:
        if name not in ("sqlite", "postgresql"):
            p.error(f"unknown database {name!r}")
    for name in args.endpoints:
        if name not in ("floor", "grant", "introspect", "bare"):
            p.error(f"unknown endpoint {name!r}")
    if "bare" in args.endpoints and "uma-serve" in args.server:
        p.error("the bare grant is served by gunicorn only (--server gunicorn)")

    print(
        f"bench/server.py on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {args.requests} requests a level;"
        f" machine speed: {machine_speed_ms():.0f} ms of CPU for 5,000,000 Python additions"
    )
    with tempfile.TemporaryDirectory(prefix="uma-bench-") as tmp:
        workdir = Path(tmp)
        key_file = workdir / "floor-key.pem"
        write_key(key_file)
        for server in [] if args.scenarios_only else args.server:
            for kind in args.db:
                for workers in args.workers if server == "gunicorn" else [1]:
                    try:
                        print("\n" + run_one(args, server, kind, workers, workdir, key_file), flush=True)
                    except Failed as exc:
                        print(f"\nFAILED ({server}, {kind}, {workers} workers): {exc}", flush=True)
                        return 1
        for name, scenario in {} if args.no_scenarios else SCENARIOS.items():
            print(f"\n### {name}\n\n{scenario(args, workdir)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
