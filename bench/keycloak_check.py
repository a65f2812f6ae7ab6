"""A Keycloak permission check (``response_mode=decision``) against an RPT grant, side by side.

Both at the realm's token endpoint of one app (``keycloak_compat``), through Flask's test
client, in turns, on SQLite: the grant issues an RPT (the baseline); the check decides the
same ticket's permissions and issues nothing (issue 16: no RPT row, no revocation). Each round
prints the first quartile of its batches, in ms per request, as process CPU and as wall time
(the wall time includes SQLite's writes), and the ratios check/grant.

    .venv/bin/python bench/keycloak_check.py              # 4 rounds
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import server

TOKEN = "/realms/uma/protocol/openid-connect/token"


def per_request_ms(call: Callable[[], None], batch: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(batch):
        call()
    return (time.process_time() - cpu) / batch * 1000, (time.perf_counter() - wall) / batch * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=4, help="batches per round and kind")
    parser.add_argument("--batch", type=int, default=50, help="requests per batch")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="keycloak-check-"))
    url = f"sqlite:///{work}/app.db"
    seeded = server.seed(url, work, "http://localhost")
    from app import create_app

    seeded.app = create_app({**server.app_config(url, work, "http://localhost"), "keycloak_compat": "true"})
    client = seeded.app.test_client()
    auth = "Basic " + base64.b64encode(f"{seeded.client_id}:{seeded.client_secret}".encode()).decode()
    tickets = iter(server.make_tickets(seeded, 2 * (30 + args.rounds * args.batches * args.batch)))

    def ask(**extra: str) -> Callable[[], None]:
        def call() -> None:
            data = {"grant_type": server.UMA_GRANT, "ticket": next(tickets), **extra}
            answer = client.post(TOKEN, data=data, headers={"Authorization": auth})
            if answer.status_code != 200:
                raise SystemExit(f"request failed: {answer.status_code} {answer.get_data(as_text=True)}")

        return call

    grant, check = ask(), ask(response_mode="decision")
    for _ in range(30):  # warm: caches, compiled statements, the policy set
        grant()
        check()
    print(f"bench/keycloak_check.py: ms per request, first quartile of {args.batches} batches of {args.batch}")
    for number in range(1, args.rounds + 1):
        g = sorted(per_request_ms(grant, args.batch) for _ in range(args.batches))[args.batches // 4]
        c = sorted(per_request_ms(check, args.batch) for _ in range(args.batches))[args.batches // 4]
        print(
            f"round {number}: CPU grant {g[0]:.2f} check {c[0]:.2f} (check/grant {c[0] / g[0]:.2f})  "
            f"wall grant {g[1]:.2f} check {c[1]:.2f} (check/grant {c[1] / g[1]:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
