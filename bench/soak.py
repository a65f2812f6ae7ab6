"""Soak and red-team run: gunicorn with several workers on PostgreSQL, concurrent traffic full
of replays and races, workers and the master killed with SIGKILL mid-load (issue 10, point 9).

    python bench/soak.py                      # 180 s, 4 workers, 6 client threads
    python bench/soak.py --seconds 10         # the short form CI runs (.ci/run)

Needs the ``test`` extra (gunicorn, psycopg, httpx) and a PostgreSQL database
(``--database-url``, default the test database of docs/operations.md); the run
works in a schema of its own, dropped at the end.

What the client threads do, over and over, each scenario on its own fresh state:

* **ticket**: one permission ticket sent to the token endpoint by 4 requests at once;
* **code**: sign in, consent, one authorization code exchanged by 4 requests at once;
* **PAT refresh**: a fresh PAT's refresh token used by 4 requests at once;
* **RPT refresh**: a fresh RPT's refresh token used by 4 requests at once;
* **PCT**: a PCT (from a pushed ID token) used with new tickets while it is revoked:
  a request started after the revocation was acknowledged must not be granted;
* **approval**: an ``ask`` rule makes a pending request; the owner approves and denies
  it at once (2 + 2 requests); the client then polls with its ticket 3 times at once:
  at most one RPT, none if the decision that stayed is a denial;
* **writes**: resources registered and deleted, one owner's policy text replaced, RPTs
  revoked; every acknowledged one is remembered.

Meanwhile a killer SIGKILLs a gunicorn worker now and then (the master starts another)
and, half-way, the master and all its workers at once (a crashed machine); the run
starts gunicorn again. After the load, gunicorn is killed and started once more and
every acknowledged write is checked against the restarted server.

Printed: requests, 5xx answers, acknowledged writes lost, races won twice (a single-use
thing accepted twice, a revoked PCT accepted after its revocation was acknowledged,
or an RPT got against a denial), connection errors (requests cut by the kills: none
of them acknowledged, so none counted as lost), kills. The exit status is 1 when any
of the three targets is not zero, or when the run raced nothing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, text
from sqlmodel import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import load_settings  # noqa: E402
from app.db import make_engine, upgrade_database  # noqa: E402
from app.oauth.clients import create_client  # noqa: E402
from app.oauth.tokens import issue_token  # noqa: E402
from app.users import create_user  # noqa: E402

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
IDP = "https://idp.soak.example"
AUDIENCE = "uma-soak"
REDIRECT = "https://rs.soak.example/cb"
BOB = "bob@example.com"
RACERS = 4


class Down(Exception):
    """The server did not answer (killed, restarting): the step is dropped, nothing was acknowledged."""


@dataclass
class Tally:
    """Everything counted, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    cut: int = 0
    races: Counter = field(default_factory=Counter)
    doubled: list[str] = field(default_factory=list)
    kills: Counter = field(default_factory=Counter)

    def answered(self, response: httpx.Response) -> None:
        with self.lock:
            self.requests += 1
            if response.status_code >= 500:
                self.server_errors.append(
                    f"{response.request.method} {response.request.url.path}: {response.text[:200]}"
                )

    def cut_off(self) -> None:
        with self.lock:
            self.requests += 1
            self.cut += 1

    def race(self, kind: str, winners: int, allowed: int = 1, detail: str = "") -> None:
        with self.lock:
            self.races[kind] += 1
            if winners > allowed:
                self.doubled.append(f"{kind}: {winners} winners {detail}")

    def violation(self, kind: str, detail: str) -> None:
        with self.lock:
            self.doubled.append(f"{kind}: {detail}")


@dataclass
class Acked:
    """Acknowledged writes, to be found again after the last restart."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: resource id -> (kind of owner, still registered; False once its deletion was acknowledged)
    resources: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: The policy texts the writer owner may have now: the last acknowledged one, and any sent
    #: after it whose answer a kill cut off (applied or not: nobody was told).
    policy: list[str] = field(default_factory=list)
    revoked_rpts: list[str] = field(default_factory=list)
    revoked_pcts: list[str] = field(default_factory=list)
    decided: list[int] = field(default_factory=list)
    #: Writes acknowledged (each registration, deletion, revocation, policy text, decision).
    count: int = 0


@dataclass
class Party:
    """A seeded owner with an RS, the RS's PAT, and what the scenarios need."""

    owner: str
    password: str
    pat: str
    rs_id: str
    rs_secret: str
    resource: str = ""


class Server:
    """gunicorn, started and killed by this run."""

    def __init__(self, workers: int, env: dict[str, str], log: Path) -> None:
        self.workers = workers
        self.env = env
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env["UMA_ISSUER"] = self.url
        self.log = log.open("ab")
        self.proc: subprocess.Popen[bytes] | None = None
        #: Seconds from each start to every worker serving.
        self.start_times: list[float] = []

    def start(self) -> None:
        began = time.monotonic()
        command = [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}"]
        command += ["--graceful-timeout", "5", *_no_control_socket(), "app:create_app()"]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"soak: gunicorn exited at start ({self.proc.returncode}); see {self.log.name}")
            try:
                if httpx.get(self.url + "/.well-known/uma2-configuration", timeout=2).status_code == 200:
                    if len(self.worker_pids()) == self.workers:
                        self.start_times.append(time.monotonic() - began)
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"soak: gunicorn did not come up; see {self.log.name}")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            return [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        except OSError:
            return []

    def kill_worker(self) -> bool:
        pids = self.worker_pids()
        if not pids:
            return False
        _kill(random.choice(pids))
        return True

    def crash(self) -> None:
        """SIGKILL the master and every worker at once, as a crashed machine would stop."""
        if self.proc is None:
            return
        workers = self.worker_pids()
        _kill(self.proc.pid)
        for pid in workers:
            _kill(pid)
        self.proc.wait()
        for pid in workers:  # gone before the port is bound again
            while Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid):
                time.sleep(0.05)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.crash()
        self.log.close()


def _no_control_socket() -> list[str]:
    """Newer gunicorn opens a control socket at one fixed path under the home directory, which
    two servers on one machine would share: this run's gunicorn opens none."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return "zombie"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """One thread's HTTP client: counts every answer; a cut connection raises :class:`Down`."""

    def __init__(self, server: Server, tally: Tally) -> None:
        self.server = server
        self.tally = tally
        self.http = httpx.Client(timeout=60, follow_redirects=False)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self.http.request(method, self.server.url + path, **kw)
        except httpx.HTTPError:
            self.tally.cut_off()
            raise Down() from None
        self.tally.answered(response)
        return response

    def close(self) -> None:
        self.http.close()


def at_once(c: Client, calls: list[Callable[[Client], Any]]) -> list[Any]:
    """Run the calls concurrently, each with a client of its own (own connection, no cookies),
    released together; a call that hit a kill gives None."""
    gate = threading.Barrier(len(calls))

    def run(call: Callable[[Client], Any]) -> Any:
        own = Client(c.server, c.tally)
        try:
            gate.wait()
            return call(own)
        except Down:
            return None
        finally:
            own.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


# -- scenarios ---------------------------------------------------------------------------------


class Soak:
    def __init__(self, server: Server, parties: dict[str, Party], uma_client: tuple[str, str], idp_key: Any) -> None:
        self.server = server
        self.parties = parties
        self.client_id, self.client_secret = uma_client
        self.idp_key = idp_key
        self.tally = Tally()
        self.acked = Acked()
        self.policy_rev = 0
        self.policy_lock = threading.Lock()

    # helpers

    def bearer(self, party: Party) -> dict[str, str]:
        return {"Authorization": f"Bearer {party.pat}"}

    def ticket(self, c: Client, party: Party, resource: str | None = None, scopes=("view",)) -> str:
        r = c.request(
            "POST",
            "/uma/permission",
            json={"resource_id": resource or party.resource, "resource_scopes": list(scopes)},
            headers=self.bearer(party),
        )
        if r.status_code != 201:
            raise Down()  # e.g. a resource registered by a request the kill cut off
        return r.json()["ticket"]

    def uma_token(self, c: Client, **data: Any) -> httpx.Response:
        return c.request(
            "POST", "/token", data={"grant_type": UMA_GRANT, **data}, auth=(self.client_id, self.client_secret)
        )

    def refresh(self, c: Client, token: str, auth: tuple[str, str]) -> httpx.Response:
        return c.request("POST", "/token", data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth)

    def id_token(self) -> str:
        at = int(time.time())
        claims = {"iss": IDP, "aud": AUDIENCE, "sub": "bob-1", "email": BOB, "iat": at, "exp": at + 300}
        return jwt.encode(claims, self.idp_key, algorithm="RS256", headers={"kid": "soak"})

    # races

    def ticket_race(self, c: Client) -> None:
        party = self.parties["permit"]
        ticket = self.ticket(c, party)
        answers = at_once(c, [lambda x: self.uma_token(x, ticket=ticket)] * RACERS)
        self.tally.race("ticket", sum(1 for r in answers if r is not None and r.status_code == 200))

    def rpt_refresh_race(self, c: Client) -> None:
        party = self.parties["permit"]
        r = self.uma_token(c, ticket=self.ticket(c, party))
        if r.status_code != 200:
            return
        refresh = r.json()["refresh_token"]
        auth = (self.client_id, self.client_secret)
        answers = at_once(c, [lambda x: self.refresh(x, refresh, auth)] * RACERS)
        self.tally.race("RPT refresh", sum(1 for a in answers if a is not None and a.status_code == 200))

    def code(self, c: Client, party: Party) -> tuple[str, str]:
        """Sign in as the owner, consent, and return (code, PKCE verifier)."""
        page = c.request("GET", "/login")
        c.request(
            "POST",
            "/login",
            data={"username": party.owner, "password": party.password, "csrf_token": _csrf(page.text), "next": "/"},
        )
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": party.rs_id,
            "redirect_uri": REDIRECT,
            "scope": "uma_protection",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        url = "/authorize?" + urlencode(query)
        page = c.request("GET", url)
        if page.status_code != 200:
            raise Down()
        answer = c.request("POST", url, data={"csrf_token": _csrf(page.text), "decision": "approve"})
        if answer.status_code != 302:
            raise Down()
        return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0], verifier

    def exchange(self, c: Client, party: Party, code: str, verifier: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
        return c.request("POST", "/token", data=data, auth=(party.rs_id, party.rs_secret))

    def code_race(self, c: Client) -> None:
        party = self.parties["permit"]
        code, verifier = self.code(c, party)
        answers = at_once(c, [lambda x: self.exchange(x, party, code, verifier)] * RACERS)
        self.tally.race("code", sum(1 for a in answers if a is not None and a.status_code == 200))

    def pat_refresh_race(self, c: Client) -> None:
        party = self.parties["permit"]
        r = self.exchange(c, party, *self.code(c, party))
        if r.status_code != 200:
            return
        refresh = r.json()["refresh_token"]
        auth = (party.rs_id, party.rs_secret)
        answers = at_once(c, [lambda x: self.refresh(x, refresh, auth)] * RACERS)
        self.tally.race("PAT refresh", sum(1 for a in answers if a is not None and a.status_code == 200))

    def pct_race(self, c: Client) -> None:
        """Uses of a PCT racing its revocation: none started after the acknowledgment may win."""
        party = self.parties["claims"]
        first = self.uma_token(
            c, ticket=self.ticket(c, party), claim_token=self.id_token(), claim_token_format=ID_TOKEN
        )
        if first.status_code != 200 or "pct" not in first.json():
            return
        pct = first.json()["pct"]
        acked_at: list[float] = []
        tickets = [self.ticket(c, party) for _ in range(RACERS)]

        def revoke(x: Client) -> None:
            r = x.request(
                "POST",
                "/revoke",
                data={"token": pct, "token_type_hint": "pct"},
                auth=(self.client_id, self.client_secret),
            )
            if r.status_code == 200:
                acked_at.append(time.monotonic())
                with self.acked.lock:
                    self.acked.revoked_pcts.append(pct)
                    self.acked.count += 1

        def use(x: Client, ticket: str) -> tuple[float, int]:
            time.sleep(random.random() * 0.05)
            started = time.monotonic()
            return started, self.uma_token(x, ticket=ticket, pct=pct).status_code

        answers = at_once(c, [revoke] + [lambda x, t=t: use(x, t) for t in tickets])
        late_wins = sum(1 for a in answers[1:] if a is not None and acked_at and a[0] > acked_at[0] and a[1] == 200)
        self.tally.race(
            "PCT revocation", late_wins, allowed=0, detail="(granted after the revocation was acknowledged)"
        )

    def approval_race(self, c: Client) -> None:
        party = self.parties["ask"]
        resource = self.register(c, "ask")
        r = self.uma_token(c, ticket=self.ticket(c, party, resource))
        if r.status_code != 403 or r.json().get("error") != "request_submitted":
            return
        polling_ticket = r.json()["ticket"]
        owner = (party.owner, party.password)
        listed = c.request("GET", "/owner/requests", auth=owner).json()["requests"]
        [row] = [q for q in listed if q["resource_id"] == resource] or [None]
        if row is None:
            return
        path = f"/owner/requests/{row['id']}"
        answers = at_once(
            c,
            [lambda x: x.request("POST", path + "/approve", auth=owner)] * 2
            + [lambda x: x.request("POST", path + "/deny", auth=owner)] * 2,
        )
        if any(a is not None and a.status_code == 200 for a in answers):
            with self.acked.lock:
                self.acked.decided.append(row["id"])
                self.acked.count += 1
        final = [
            q
            for q in c.request("GET", "/owner/requests?status=all", auth=owner).json()["requests"]
            if q["id"] == row["id"]
        ]
        if not final or final[0]["status"] == "pending":
            return  # no decision was acknowledged (cut by a kill); the lost-write check covers the rest
        status = final[0]["status"]
        polls = at_once(c, [lambda x: self.uma_token(x, ticket=polling_ticket)] * 3)
        won = [p for p in polls if p is not None and p.status_code == 200]
        self.tally.race("approval", len(won))
        if won and status == "denied":
            self.tally.violation("approval", f"an RPT for request {row['id']}, which stayed denied")

    # writes

    def register(self, c: Client, kind: str) -> str:
        party = self.parties[kind]
        body = {"name": f"soak-{uuid.uuid4().hex[:8]}", "type": "photo-album", "resource_scopes": ["view"]}
        r = c.request("POST", "/uma/resources", json=body, headers=self.bearer(party))
        if r.status_code != 201:
            raise Down()
        rid = r.json()["_id"]
        with self.acked.lock:
            self.acked.resources[rid] = (kind, True)
            self.acked.count += 1
        return rid

    def writes(self, c: Client) -> None:
        party = self.parties["permit"]
        rid = self.register(c, "permit")
        if random.random() < 0.3:
            try:
                deleted = c.request("DELETE", f"/uma/resources/{rid}", headers=self.bearer(party))
            except Down:
                with self.acked.lock:  # deleted or not: nobody was told, so nothing to check
                    del self.acked.resources[rid]
                raise
            if deleted.status_code == 204:
                with self.acked.lock:
                    self.acked.resources[rid] = ("permit", False)
                    self.acked.count += 1
        r = self.uma_token(c, ticket=self.ticket(c, party))
        if r.status_code == 200:
            rpt = r.json()["access_token"]
            revoked = c.request("POST", "/revoke", data={"token": rpt}, auth=(self.client_id, self.client_secret))
            if revoked.status_code == 200:
                with self.acked.lock:
                    self.acked.revoked_rpts.append(rpt)
                    self.acked.count += 1
        writer = self.parties["writes"]
        with self.policy_lock:  # one writer at a time, so "the last acknowledged text" is well defined
            self.policy_rev += 1
            text = f'# revision {self.policy_rev}\npermit view on type "photo-album"\n'
            try:
                r = c.request(
                    "PUT",
                    "/owner/policy",
                    content=text.encode(),
                    auth=(writer.owner, writer.password),
                    headers={"Content-Type": "text/plain"},
                )
            except Down:
                self.acked.policy.append(text)
                raise
            if r.status_code == 200:
                with self.acked.lock:
                    self.acked.policy = [text]
                    self.acked.count += 1

    # the run

    SCENARIOS = (
        "ticket_race",
        "rpt_refresh_race",
        "code_race",
        "pat_refresh_race",
        "pct_race",
        "approval_race",
        "writes",
    )

    def load(self, deadline: float) -> None:
        c = Client(self.server, self.tally)
        try:
            while time.monotonic() < deadline:
                try:
                    c.http.cookies.clear()
                    getattr(self, random.choice(self.SCENARIOS))(c)
                except Down:
                    time.sleep(0.1)
        finally:
            c.close()

    def check(self) -> list[str]:
        """Every acknowledged write, read back from the restarted server."""
        c = Client(self.server, self.tally)
        lost = []
        party = self.parties["permit"]
        for rid, (kind, registered) in self.acked.resources.items():
            r = c.request("GET", f"/uma/resources/{rid}", headers=self.bearer(self.parties[kind]))
            if (r.status_code == 200) != registered:
                lost.append(f"resource {rid} of {kind}-owner: {'gone' if registered else 'back after its deletion'}")
        writer = self.parties["writes"]
        if self.acked.policy:
            got = c.request("GET", "/owner/policy", auth=(writer.owner, writer.password)).json().get("text")
            if got not in self.acked.policy:
                lost.append(f"policy text: {got!r} instead of {self.acked.policy[0]!r}")
        for rpt in self.acked.revoked_rpts:
            if c.request("POST", "/uma/introspect", data={"token": rpt}, headers=self.bearer(party)).json() != {
                "active": False
            }:
                lost.append("a revoked RPT is active again")
        claims = self.parties["claims"]
        for pct in self.acked.revoked_pcts:
            r = self.uma_token(c, ticket=self.ticket(c, claims), pct=pct)
            if r.status_code == 200:
                lost.append("a revoked PCT is accepted again")
        ask = self.parties["ask"]
        rows = c.request("GET", "/owner/requests?status=pending", auth=(ask.owner, ask.password)).json()["requests"]
        pending = {q["id"] for q in rows}
        lost += [f"request {i}: the acknowledged decision is lost" for i in self.acked.decided if i in pending]
        c.close()
        return lost


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    if not match:
        raise Down()
    return match.group(1)


# -- set-up --------------------------------------------------------------------------------------


@contextmanager
def own_schema(base_url: str) -> Iterator[str]:
    """A fresh schema in the database for this run, dropped afterwards."""
    schema = f"uma_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


POLICIES = {
    "permit": 'permit view, download on type "photo-album"',
    "claims": f'claims email from "{IDP}" as id_token\npermit view on type "photo-album" when claims.email == "{BOB}"',
    "ask": 'ask view on type "photo-album"',
    "writes": 'permit view on type "photo-album"',
}


def seed(database_url: str) -> tuple[dict[str, Party], tuple[str, str]]:
    """Owners (one per kind of scenario), their RS and PAT, and the UMA client, straight into the database."""
    engine = make_engine(database_url)
    upgrade_database(engine)
    settings = load_settings({"database_url": database_url})
    parties = {}
    with Session(engine, expire_on_commit=False) as db:
        for kind in POLICIES:
            owner, password = f"{kind}-owner", secrets.token_urlsafe(12)
            create_user(db, owner, password)
            rs, secret = create_client(
                db,
                client_name=f"{kind}-rs",
                grant_types=["authorization_code", "refresh_token", "client_credentials"],
                redirect_uris=[REDIRECT],
                scope="uma_protection",
            )
            body, _ = issue_token(
                db,
                settings,
                client_id=rs.client_id,
                subject=owner,
                scope="uma_protection",
                grant_type="authorization_code",
                include_refresh=False,
            )
            parties[kind] = Party(owner, password, body["access_token"], rs.client_id, secret or "")
        client, client_secret = create_client(
            db, client_name="soak-client", grant_types=[UMA_GRANT, "refresh_token"], redirect_uris=[]
        )
        db.commit()
    engine.dispose()
    return parties, (client.client_id, client_secret or "")


def prepare(soak: Soak) -> None:
    """Policies uploaded and one resource per owner registered, over HTTP."""
    c = Client(soak.server, soak.tally)
    for kind, party in soak.parties.items():
        r = c.request(
            "PUT",
            "/owner/policy",
            content=POLICIES[kind].encode(),
            auth=(party.owner, party.password),
            headers={"Content-Type": "text/plain"},
        )
        if r.status_code != 200:
            raise SystemExit(f"soak: policy upload for {kind} failed: {r.status_code} {r.text}")
        party.resource = soak.register(c, kind)
    c.close()


def killer(soak: Soak, deadline: float, worker_kills: int, stop: threading.Event) -> None:
    """SIGKILL a worker ``worker_kills`` times spread over the run, and crash the whole server
    (master and workers) once, half-way; start it again at once."""
    start = time.monotonic()
    span = deadline - start
    moments = sorted([start + span * (i + 1) / (worker_kills + 2) for i in range(worker_kills)] + [start + span / 2])
    crash_at = start + span / 2
    for moment in moments:
        while time.monotonic() < moment:
            if stop.wait(0.05):
                return
        if moment == crash_at:
            soak.server.crash()
            soak.tally.kills["master"] += 1
            soak.server.start()
            soak.tally.kills["restart"] += 1
        elif soak.server.kill_worker():
            soak.tally.kills["worker"] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180, help="how long the load runs (default 180)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--threads", type=int, default=6, help="client threads, each racing 4 requests (default 6)")
    parser.add_argument("--worker-kills", type=int, help="SIGKILLed workers (default: one per 20 s, at least 1)")
    parser.add_argument("--database-url", default=os.environ.get("UMA_SOAK_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args(argv)
    worker_kills = args.worker_kills if args.worker_kills is not None else max(1, int(args.seconds // 20))
    if not args.database_url.startswith("postgresql"):
        parser.error("the soak runs on PostgreSQL (--database-url postgresql+psycopg://...)")

    with tempfile.TemporaryDirectory(prefix="uma-soak-") as tmp, own_schema(args.database_url) as database_url:
        tmpdir = Path(tmp)
        idp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp_key.public_key()))
        jwk.update(kid="soak", use="sig", alg="RS256")
        (tmpdir / "idp-jwks.json").write_text(json.dumps({"keys": [jwk]}))
        (tmpdir / "policies").mkdir()
        parties, uma_client = seed(database_url)
        env = {
            **os.environ,
            "UMA_DATABASE_URL": database_url,
            "UMA_SECRET_KEY": secrets.token_hex(32),
            "UMA_INSTANCE_PATH": str(tmpdir / "instance"),
            "UMA_POLICY_DIR": str(tmpdir / "policies"),
            "UMA_LOG_LEVEL": "WARNING",
            "UMA_TRUSTED_ISSUERS": json.dumps(
                [{"issuer": IDP, "jwks_file": str(tmpdir / "idp-jwks.json"), "audience": AUDIENCE}]
            ),
        }
        log = tmpdir / "gunicorn.log"
        server = Server(args.workers, env, log)
        server.start()
        soak = Soak(server, parties, uma_client, idp_key)
        try:
            prepare(soak)
            started = time.monotonic()
            deadline = started + args.seconds
            stop = threading.Event()
            kill_thread = threading.Thread(target=killer, args=(soak, deadline, worker_kills, stop), daemon=True)
            kill_thread.start()
            with ThreadPoolExecutor(max_workers=args.threads) as pool:
                list(pool.map(lambda _: soak.load(deadline), range(args.threads)))
            stop.set()
            kill_thread.join()
            elapsed = time.monotonic() - started
            load_requests = soak.tally.requests
            # A last crash right after the load, then every acknowledged write is read back.
            server.crash()
            soak.tally.kills["master"] += 1
            server.start()
            soak.tally.kills["restart"] += 1
            lost = soak.check()
        finally:
            server.stop()
            gunicorn_log = log.read_text(errors="replace")

    t = soak.tally
    acked = soak.acked
    writes = acked.count
    tracebacks = gunicorn_log.count("Traceback")
    print(f"soak: gunicorn -w {args.workers} on PostgreSQL, {args.seconds:g} s of load, {args.threads} client threads")
    print(f"  requests                {load_requests}  ({load_requests / elapsed:.1f}/s during the load)")
    print(f"  5xx answers             {len(t.server_errors)}")
    print(f"  acknowledged writes     {writes} checked after the last restart, lost {len(lost)}")
    races = ", ".join(f"{kind} {n}" for kind, n in sorted(t.races.items()))
    print(f"  races                   {sum(t.races.values())} ({races}), won twice {len(t.doubled)}")
    print(f"  connection errors       {t.cut}  (requests cut by the kills; none acknowledged)")
    print(
        f"  kills (SIGKILL)         {t.kills['worker']} workers, {t.kills['master']} masters with all their workers;"
        f" restarts {t.kills['restart']}"
    )
    starts = ", ".join(f"{s:.1f}" for s in server.start_times)
    print(f"  seconds to serve        {starts}  (first start, then each restart)")
    print(f"  tracebacks in the log   {tracebacks}")
    for line in t.server_errors[:5] + lost[:5] + t.doubled[:5]:
        print("  !", line)
    failed = bool(t.server_errors or lost or t.doubled or tracebacks) or not t.races
    if not t.races:
        print("  ! no race completed: the run proved nothing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
