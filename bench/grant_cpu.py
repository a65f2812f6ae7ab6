"""The CPU of one UMA grant in one process, against the floor endpoint, side by side.

No network and no other process: the application and the floor endpoint
(``bench/floor_app.py``) are called through Flask's test client, and
``time.process_time`` is read around batches of requests, the kinds in turns
(a grant batch, a floor batch, …). This is the figure a change to the grant path
moves; on a shared machine it still drifts by 10 to 20 % between runs, so compare
trees with ``--against`` (both measured in the same minutes) rather than across
runs. Each round prints the first quartile of its batches (the least disturbed), in
ms per request, and the ratio.

    .venv/bin/python bench/grant_cpu.py                   # 4 rounds
    .venv/bin/python bench/grant_cpu.py --bare            # and the bare grant (bench/bare_grant.py)
    .venv/bin/python bench/grant_cpu.py --against ../main # this tree against another, in turns
    .venv/bin/python bench/grant_cpu.py --profile 500     # then a cProfile of 500 grants
    .venv/bin/python bench/grant_cpu.py --parts 1500      # then the CPU of the grant's parts

``--bare`` adds the grant's work with the fewest layers (``bench/bare_grant.py``): how
far trimming layers could take the grant. ``--against DIR`` runs one process per
checkout (this file, with ``DIR``'s application) and measures them batch by batch in
turns, in ``--pairs`` pairs of fresh processes. ``--parts`` times the grant's own steps
(CPU, without a profiler's distortion: a profile inflates Python calls against the C
work of signing and committing) by wrapping each named function; the parts nest
(``issue_rpt`` holds ``jwt.encode``).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_grant
import floor_app
import server


def per_request_ms(call: Callable[[], None], batch: int) -> float:
    started = time.process_time()
    for _ in range(batch):
        call()
    return (time.process_time() - started) / batch * 1000


def setup(needed: int) -> tuple[Callable[[], None], Callable[[], None], Callable[[], None]]:
    """The seeded application and the floor endpoint, each behind Flask's test client:
    ``(grant, floor, bare)``, each making one request and checking its answer (``bare``: the
    lower bound of ``bench/bare_grant.py``, in the same application); ``needed`` tickets each
    for the grant and the bare grant."""
    work = Path(tempfile.mkdtemp(prefix="grant-cpu-"))
    url = f"sqlite:///{work}/app.db"
    seeded = server.seed(url, work, "http://localhost")
    from app import create_app

    # A second app over the same database: it compiles the policy file written by the seed.
    seeded.app = create_app(server.app_config(url, work, "http://localhost"))
    bare_grant.install(seeded.app)
    client = seeded.app.test_client()
    auth = "Basic " + base64.b64encode(f"{seeded.client_id}:{seeded.client_secret}".encode()).decode()
    tickets = iter(server.make_tickets(seeded, 2 * needed))

    def grant() -> None:
        answer = client.post(
            "/token", data={"grant_type": server.UMA_GRANT, "ticket": next(tickets)}, headers={"Authorization": auth}
        )
        if answer.status_code != 200:
            raise SystemExit(f"grant failed: {answer.status_code} {answer.get_data(as_text=True)}")

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = work / "floor-key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.environ["FLOOR_DATABASE_URL"] = f"sqlite:///{work}/floor.db"
    os.environ["FLOOR_KEY_FILE"] = str(key_file)
    floor_app.create_tables(os.environ["FLOOR_DATABASE_URL"])
    floor_client = floor_app.create_app().test_client()

    def floor() -> None:
        answer = floor_client.post("/floor", data={"item": "5"})
        if answer.status_code != 200:
            raise SystemExit(f"floor failed: {answer.status_code}")

    def bare() -> None:
        answer = client.post(bare_grant.PATH, data={"ticket": next(tickets)}, headers={"Authorization": auth})
        if answer.status_code != 200:
            raise SystemExit(f"bare grant failed: {answer.status_code} {answer.get_data(as_text=True)}")

    for _ in range(30):  # warm them: caches, compiled statements, the policy set
        grant()
        floor()
        bare()
    return grant, floor, bare


def serve(grant: Callable[[], None], floor: Callable[[], None]) -> int:
    """``--serve``: answer ``grant N`` / ``floor N`` lines on stdin with the CPU ms per request."""
    import app

    print(f"grant_cpu --serve: the application of {Path(app.__file__).parents[1]}", file=sys.stderr)
    print("ready", flush=True)
    for line in sys.stdin:
        what, count = line.split()
        print(f"{per_request_ms(grant if what == 'grant' else floor, int(count)):.4f}", flush=True)
    return 0


def compare(args: argparse.Namespace) -> int:
    """``--against DIR``: this tree and the checkout at DIR, each in its own process, measured
    batch by batch in turns (grant, floor of one tree, then of the other), so that a machine
    whose speed drifts slows both alike; ``--pairs`` pairs of fresh processes one after the
    other (a process's memory layout alone moves a figure by a few per cent). Prints each
    pair's medians, then the median of all batches and the change."""
    trees = {"this tree": Path(__file__).resolve().parents[1], "against": Path(args.against).resolve()}
    figures: dict[tuple[str, str], list[float]] = {(n, w): [] for n in trees for w in ("grant", "floor")}
    print(
        f"bench/grant_cpu.py --against: CPU ms per request, batches of {args.batch} in turns,"
        f" {args.pairs} pairs of processes of {args.rounds * args.batches} batches each"
    )
    for pair in range(1, args.pairs + 1):
        measured = measure_pair(trees, args)
        for key, values in measured.items():
            figures[key].extend(values)
        print(f"pair {pair}: " + "  ".join(_summary(name, measured) for name in trees))
    print("all:    " + "  ".join(_summary(name, figures) for name in trees))
    change = statistics.median(figures["this tree", "grant"]) / statistics.median(figures["against", "grant"]) - 1
    print(f"grant, this tree against the other: {change:+.1%} (median CPU of all batches)")
    # Each process's floor measures that process's speed: grant/floor per pair removes it.
    ratios = [statistics.median(g) / statistics.median(f) for g, f in _per_pair(figures, args, "this tree")]
    against = [statistics.median(g) / statistics.median(f) for g, f in _per_pair(figures, args, "against")]
    per_pair = [mine / theirs - 1 for mine, theirs in zip(ratios, against, strict=True)]
    print(
        f"grant/floor, this tree against the other: {statistics.median(per_pair):+.1%} (median of the pairs:"
        f" {', '.join(f'{c:+.1%}' for c in per_pair)})"
    )
    return 0


def _per_pair(
    figures: dict[tuple[str, str], list[float]], args: argparse.Namespace, name: str
) -> list[tuple[list[float], list[float]]]:
    size = args.rounds * args.batches
    grants, floors = figures[name, "grant"], figures[name, "floor"]
    return [(grants[i : i + size], floors[i : i + size]) for i in range(0, len(grants), size)]


def _summary(name: str, figures: dict[tuple[str, str], list[float]]) -> str:
    grant_ms, floor_ms = statistics.median(figures[name, "grant"]), statistics.median(figures[name, "floor"])
    return f"{name}: grant {grant_ms:.3f} floor {floor_ms:.3f} ratio {grant_ms / floor_ms:.3f}"


def measure_pair(trees: dict[str, Path], args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    """One process per tree (``--serve``), driven batch by batch in turns."""
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", "--rounds", str(args.rounds)]
    command += ["--batches", str(args.batches), "--batch", str(args.batch)]
    workers = {
        name: subprocess.Popen(
            [*command, "--root", str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for name, root in trees.items()
    }
    figures: dict[tuple[str, str], list[float]] = {(n, w): [] for n in workers for w in ("grant", "floor")}
    try:
        for name, worker in workers.items():
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit(f"{name}: the measuring process did not start")
        for _ in range(args.rounds * args.batches):
            for name, worker in workers.items():
                for what in ("grant", "floor"):
                    assert worker.stdin is not None and worker.stdout is not None
                    worker.stdin.write(f"{what} {args.batch}\n")
                    worker.stdin.flush()
                    figures[name, what].append(float(worker.stdout.readline()))
    finally:
        for worker in workers.values():
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=4, help="batches per round and endpoint")
    parser.add_argument("--batch", type=int, default=50, help="requests per batch")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="then profile N grants (cProfile)")
    parser.add_argument("--parts", type=int, default=0, metavar="N", help="then time the parts of N grants")
    parser.add_argument("--bare", action="store_true", help="also the bare grant (bench/bare_grant.py)")
    parser.add_argument("--against", metavar="DIR", help="compare with the checkout at DIR, batch by batch in turns")
    parser.add_argument("--pairs", type=int, default=3, help="with --against: pairs of processes, one after the other")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)  # --serve: import the application from this checkout
    args = parser.parse_args(argv)

    needed = 30 + args.rounds * args.batches * args.batch + args.profile + args.parts
    if args.against:
        return compare(args)
    if args.root:
        sys.path.insert(0, args.root)
    grant, floor, bare = setup(needed)
    if args.serve:
        return serve(grant, floor)
    print(f"bench/grant_cpu.py: CPU ms per request, first quartile of {args.batches} batches of {args.batch} in turns")
    kinds = {"grant": grant, "floor": floor} | ({"bare": bare} if args.bare else {})
    for number in range(1, args.rounds + 1):
        batches: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.batches):
            for kind, call in kinds.items():
                batches[kind].append(per_request_ms(call, args.batch))
        ms = {kind: sorted(values)[args.batches // 4] for kind, values in batches.items()}
        line = f"round {number}: grant {ms['grant']:.2f} ms  floor {ms['floor']:.2f} ms"
        line += f"  grant/floor {ms['grant'] / ms['floor']:.2f}"
        if args.bare:
            line += f"  bare {ms['bare']:.2f} ms  bare/floor {ms['bare'] / ms['floor']:.2f}"
        print(line)
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.profile):
            grant()
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    if args.parts:
        print_parts(grant, args.parts)
    return 0


def timed_parts() -> list[tuple[object, str, str]]:
    """(owner, attribute, label) of the grant's steps, outermost first."""
    from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskServer
    from authlib.oauth2.rfc6749.authorization_server import AuthorizationServer
    from sqlalchemy.engine import Connection
    from sqlmodel import Session

    from app.grant import bridge, token_grant
    from app.oauth import server as oauth_server
    from app.protection import rpt

    return [
        (AuthorizationServer, "create_token_response", "authlib create_token_response (all below)"),
        (oauth_server.UmaAuthorizationServer, "create_oauth2_request", "  our request object (2 calls)"),
        (FlaskServer, "handle_response", "  the JSON answer"),
        (token_grant.UmaTicketGrant, "validate_token_request", "  validate_token_request"),
        (oauth_server.UmaAuthorizationServer, "authenticate_client", "    client authentication"),
        (oauth_server, "guard", "      lockout guard"),
        (token_grant, "redeem_ticket", "    redeem_ticket (UPDATE … RETURNING)"),
        (token_grant.UmaTicketGrant, "_validate_redeemed", "    the checks after redemption"),
        (token_grant.UmaTicketGrant, "create_token_response", "  the grant's answer (assess)"),
        (bridge, "decide", "    decide (policy)"),
        (bridge.audit, "record_decision", "    audit INSERT"),
        (bridge, "issue_rpt", "    issue_rpt"),
        (rpt.jwt, "encode", "      jwt.encode (RS256)"),
        (Session, "commit", "    session commit"),
        (Connection, "execute", "(every statement, Core execute)"),
    ]


def print_parts(grant: Callable[[], None], count: int) -> None:
    spent: dict[str, float] = {}
    undo = []
    for owner, name, label in timed_parts():
        original = getattr(owner, name)

        def timed(*args: object, _original: Callable[..., object] = original, _label: str = label, **kw: object):
            started = time.process_time()
            try:
                return _original(*args, **kw)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.process_time() - started

        setattr(owner, name, timed)
        undo.append((owner, name, original))
    started = time.process_time()
    try:
        for _ in range(count):
            grant()
    finally:
        for owner, name, original in undo:
            setattr(owner, name, original)
    print(f"\nCPU ms per grant, {count} grants, parts timed by wrappers (they nest):")
    print(
        f"  {'the whole request (test client and Flask included)':60s} {(time.process_time() - started) / count * 1000:.3f}"
    )
    for _owner, _name, label in timed_parts():
        print(f"  {label:60s} {spent.get(label, 0.0) / count * 1000:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
