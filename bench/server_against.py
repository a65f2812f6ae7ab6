"""Two checkouts on the wire, side by side: is a change to the server worth keeping?

``bench/server.py`` compares the grant with the floor endpoint in one run; run again on
another checkout, minutes later, the machine is not the same machine (on the team's shared
2-core machine the same tree's grant/floor ratio moved by 20 % from run to run). Here both
checkouts are served at once, each with its own floor endpoint and database, by one driver
process each (``--drive``, this file with the other checkout's application), and measured in
turns of ``--turn`` requests: floor and grant of this tree, then of the other, again and again,
so that the machine's drift hits both alike. Printed per level: each tree's grant/floor (p50,
req/s, server CPU) and its grant's own figures, then the change of this tree's grant against
the other's (measured in the same minutes, the figure to read; each tree's floor is its own
server, and two servers of the same floor differ by a few per cent).

    .venv/bin/python bench/server_against.py ../main                       # SQLite, 1 worker, 1 and 8 clients
    .venv/bin/python bench/server_against.py ../main --db postgresql --workers 2 --clients 1,4,8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()
ENDPOINTS = ("floor", "grant")


def drive(root: Path, db: str, workers: int, pg_url: str) -> int:
    """``--drive``: seed and serve the application of ``root`` and the floor endpoint (as
    ``bench/server.py`` does), then answer lines ``ENDPOINT REQUESTS CLIENTS`` with one JSON line:
    the latencies (s), the wall time and the server's CPU seconds of that turn."""
    sys.path.insert(0, str(HERE.parent))
    import server  # this tree's bench; the application below is imported from ``root``

    sys.path.insert(0, str(root))
    server.ROOT = root  # gunicorn serves app:create_app() from root
    with tempfile.TemporaryDirectory(prefix="uma-against-") as tmp:
        workdir = Path(tmp)
        key_file = workdir / "floor-key.pem"
        server.write_key(key_file)
        with server.database(db, workdir, pg_url, "against") as url:
            seeded = server.seed(url, workdir, "http://127.0.0.1:0")
            server.floor_app.create_tables(url)
            app, floor = server.serve_both("gunicorn", workers, url, workdir, key_file)
            try:
                import app as application

                print(json.dumps({"ready": str(Path(application.__file__).parents[1])}), flush=True)
                makers = {
                    "floor": (floor, server.floor_requests),
                    "grant": (app, lambda n: server.grant_requests(seeded, n)),
                }
                for line in sys.stdin:
                    endpoint, count, clients = line.split()
                    served, make = makers[endpoint]
                    requests = make(int(count))
                    before = server.cpu_seconds(served)
                    latencies, wall = server.load(served.port, requests, int(clients))
                    cpu = server.cpu_seconds(served) - before
                    print(json.dumps({"latencies": latencies, "seconds": wall, "cpu": cpu}), flush=True)
            finally:
                app.stop()
                floor.stop()
                seeded.app.extensions["uma_db"].dispose()
    return 0


class Driver:
    def __init__(self, name: str, root: Path, args: argparse.Namespace):
        self.name, self.root = name, root
        command = [sys.executable, str(HERE), "--drive", str(root), "--db", args.db, "--workers", str(args.workers)]
        command += ["--pg-url", args.pg_url]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.ask_line(None))
        if Path(ready["ready"]).resolve() != root.resolve():
            raise SystemExit(f"{name}: served the application of {ready['ready']}, not {root}")

    def ask_line(self, line: str | None) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise SystemExit(f"{self.name}: the driver stopped (its output is above)")
        return answer

    def turn(self, endpoint: str, requests: int, clients: int) -> dict:
        return json.loads(self.ask_line(f"{endpoint} {requests} {clients}"))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


def figures(turns: list[dict]) -> dict[str, float]:
    latencies = sorted(x for t in turns for x in t["latencies"])
    seconds = sum(t["seconds"] for t in turns)
    return {
        "p50": statistics.median(latencies) * 1000,
        "rps": len(latencies) / seconds,
        "cpu": sum(t["cpu"] for t in turns) / len(latencies) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("against", nargs="?", help="the other checkout")
    parser.add_argument("--db", default="sqlite", help="sqlite or postgresql (default sqlite)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (default 1)")
    parser.add_argument("--clients", default="1,8", help="concurrent clients (default 1,8)")
    parser.add_argument("--turns", type=int, default=10, help="turns per endpoint, tree and level (default 10)")
    parser.add_argument("--turn", type=int, default=50, help="requests per turn (default 50)")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--drive", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        return drive(Path(args.drive), args.db, args.workers, args.pg_url)
    if not args.against:
        parser.error("name the other checkout")
    trees = {"this tree": HERE.parents[1], "against": Path(args.against).resolve()}
    drivers = [Driver(name, root, args) for name, root in trees.items()]
    print(
        f"bench/server_against.py: {args.db}, gunicorn with {args.workers} worker(s); turns of {args.turn} requests,"
        f" {args.turns} per endpoint, tree and level\n"
    )
    print(
        "| clients | tree | grant/floor p50 | grant/floor req/s | grant/floor CPU | grant p50 ms | grant req/s"
        " | grant CPU ms |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    try:
        for clients in [int(c) for c in args.clients.split(",")]:
            for driver in drivers:  # warm-up: every worker and connection path once
                for endpoint in ENDPOINTS:
                    driver.turn(endpoint, 4 * clients, clients)
            turns: dict[tuple[str, str], list[dict]] = {(d.name, e): [] for d in drivers for e in ENDPOINTS}
            for _ in range(args.turns):
                for driver in drivers:
                    for endpoint in ENDPOINTS:
                        turns[driver.name, endpoint].append(driver.turn(endpoint, max(args.turn, clients), clients))
            ratios, grants = {}, {}
            for driver in drivers:
                grant, floor = figures(turns[driver.name, "grant"]), figures(turns[driver.name, "floor"])
                grants[driver.name] = grant
                ratios[driver.name] = {k: grant[k] / floor[k] for k in grant}
                r = ratios[driver.name]
                print(
                    f"| {clients} | {driver.name} | {r['p50']:.2f} | {r['rps']:.2f} | {r['cpu']:.2f} |"
                    f" {grant['p50']:.2f} | {grant['rps']:.0f} | {grant['cpu']:.2f} |",
                    flush=True,
                )
            mine, theirs = grants["this tree"], grants["against"]
            print(
                f"| {clients} | grant, this tree against the other | | | |"
                f" {mine['p50'] / theirs['p50'] - 1:+.1%} | {mine['rps'] / theirs['rps'] - 1:+.1%} |"
                f" {mine['cpu'] / theirs['cpu'] - 1:+.1%} |",
                flush=True,
            )
    finally:
        for driver in drivers:
            driver.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
