"""What the observability and the lockout add to each request, in server CPU (issue 13, points 3, 4).

In one process, on a fresh SQLite database, through Flask's test client (no network, so
the figures are the server's own work), CPU time per request (``time.process_time``), the
least of rounds that alternate the variants (the least disturbed by other work on the machine,
as ``timeit`` advises; medians moved by ±100 µs between runs on the shared machine):

* ``request id + histogram`` — ``GET /jwks`` with the WSGI wrapper of :mod:`app.observability`
  against the same app without it (the baseline): the cost of every request;
* ``lockout check`` — the check before a client authentication (two indexed SELECTs: the
  client id's and the address's counts, :mod:`app.identity.lockout`);
* ``token request`` — a whole ``POST /token`` (client credentials: client authentication with
  that check, a token row written): the scale the check is a share of.

    .venv/bin/python bench/request_overhead.py            # about 30 s
    .venv/bin/python bench/request_overhead.py --rounds 3 --requests 200
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.db import session_scope
from app.oauth.clients import create_client


def cpu_us(call: Callable[[], object], n: int) -> float:
    for _ in range(max(10, n // 10)):  # warm up
        call()
    started = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - started) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="uma-bench-")
    app = create_app({"instance_path": folder, "log_level": "WARNING", "purge_interval": 0})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with session_scope(app.extensions["uma_db"]) as session:
        client, secret = create_client(
            session, client_name="bench-rs", grant_types=["client_credentials"], scope="uma_protection"
        )
        client_id = client.client_id
    http = app.test_client()
    observed = app.wsgi_app
    bare = observed.wsgi_app  # type: ignore[attr-defined]
    lockout = app.extensions["uma_lockout"]

    def jwks() -> None:
        assert http.get("/jwks").status_code == 200

    def token() -> None:
        answer = http.post(
            "/token", data={"grant_type": "client_credentials", "scope": "uma_protection"}, auth=(client_id, secret)
        )
        assert answer.status_code == 200, answer.text

    def check() -> None:
        lockout.attempt("client", client_id, "127.0.0.1")

    figures: dict[str, list[float]] = {k: [] for k in ("bare", "observed", "check", "token")}
    for round_ in range(args.rounds):
        order = [("bare", bare), ("observed", observed)]
        for name, wsgi in order if round_ % 2 == 0 else order[::-1]:  # neither always goes first
            app.wsgi_app = wsgi  # type: ignore[method-assign]
            figures[name].append(cpu_us(jwks, args.requests))
        figures["check"].append(cpu_us(check, args.requests))
        figures["token"].append(cpu_us(token, max(50, args.requests // 4)))
    med = {k: min(v) for k, v in figures.items()}

    print(f"bench/request_overhead.py: CPU µs per request, least of {args.rounds} rounds ({args.requests} a round)")
    print()
    print("| what | µs | against |")
    print("|---|---:|---|")
    print(f"| GET /jwks without the wrapper (baseline) | {med['bare']:.0f} | |")
    print(
        f"| GET /jwks with request id + histogram | {med['observed']:.0f} | "
        f"+{med['observed'] - med['bare']:.0f} µs, ×{med['observed'] / med['bare']:.3f} |"
    )
    print(f"| POST /token, client credentials (whole request) | {med['token']:.0f} | |")
    print(f"| lockout check (in the token request) | {med['check']:.0f} | {med['check'] / med['token']:.1%} of it |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
