"""How long a request waits behind its process's background compile of a policy change
(issue 11, point 2: "no other request slower than 50 ms during it"), in one process, apart
from the load of the machine.

    .venv/bin/python bench/policy_swap_stall.py                 # 100,000 rules, 3 rounds of 6 changes
    .venv/bin/python bench/policy_swap_stall.py --rules 10000 --rounds 2 --changes 4

The app is built on a fresh SQLite database with ``--rules`` rules in files of 100 (the files of
``bench/server.py``'s scenarios) and frozen as gunicorn's master freezes it. A thread stands for
a request of the same process: ten short waits (``time.sleep(0.0002)``, the interpreter's lock
released as for a socket or a database call) with 0.1 ms of work after each, over and over. Then
one owner's file changes and the store compiles it as its background thread does when inotify
names the file (:meth:`app.policies.PolicyStore.sync`, with :func:`app.policies.switching_often`): the worst latency of the
"requests" under way at some time during the sync, against the same in the 0.1 s before. Each round alternates the switch
interval of the sync (CPython's default 5 ms, and the store's 1 ms), so the two see the same load.
Printed: per interval, the median and the largest of the worst latencies of its changes, the
baseline, and the sync's CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--changes", type=int, default=6, help="changes per interval and round")
    args = p.parse_args(argv)

    import server as bench_server  # bench/server.py: the scenarios' files

    import app.policies as policies
    from app import create_app

    with tempfile.TemporaryDirectory(prefix="uma-stall-") as tmp:
        folder = Path(tmp) / "policies"
        owner = SimpleNamespace(owner="bench-owner", client_id="bench-client")
        other = SimpleNamespace(owner="bench-other", client_id="other-client")
        files = bench_server.write_policies(folder, args.rules, owner, other)
        os.environ["UMA_LOG_LEVEL"] = "WARNING"
        app = create_app(
            {
                "database_url": f"sqlite:///{tmp}/uma.db",
                "instance_path": f"{tmp}/instance",
                "secret_key": "stall-" + "k" * 32,
                "policy_dir": str(folder),
                "purge_interval": 0,
            }
        )
        store = app.extensions["uma_policies"]
        policies.freeze_after_start()
        print(f"{args.rules:,} rules in {files} files; load average {_load()}", flush=True)

        done: list[tuple[float, float]] = []  # (began, ended) of each "request"
        stop = threading.Event()

        def request() -> None:
            while not stop.is_set():
                began = time.perf_counter()
                for _ in range(10):
                    time.sleep(0.0002)
                    sum(range(3000))  # about 0.1 ms of Python
                done.append((began, time.perf_counter()))
                time.sleep(0.002)

        def worst(since: float, until: float) -> float:
            """The longest of the requests under way at some time in [since, until], once one that
            began after ``until`` has ended."""
            deadline = time.perf_counter() + 5
            while not any(b > until for b, _ in done) and time.perf_counter() < deadline:
                time.sleep(0.005)
            return max(e - b for b, e in done if e >= since and b <= until)

        thread = threading.Thread(target=request, daemon=True)
        thread.start()
        target = folder / "bench.policy"
        results: dict[float, dict[str, list[float]]] = {}
        try:
            for _ in range(args.rounds):
                for interval in (0.005, policies.SWITCH_INTERVAL_WHILE_SYNCING):
                    got = results.setdefault(interval, {"worst": [], "before": [], "cpu": []})
                    for _ in range(args.changes):
                        quiet = time.perf_counter()
                        time.sleep(0.1)
                        got["before"].append(worst(quiet, time.perf_counter()))
                        text = target.read_text()
                        swapped = (
                            text.replace("view, download on", "view on")
                            if "view, download on" in text
                            else text.replace("permit view on", "permit view, download on", 1)
                        )
                        (folder / ".next").write_text(swapped)
                        os.replace(folder / ".next", target)
                        began, cpu = time.perf_counter(), time.thread_time()
                        saved, policies.SWITCH_INTERVAL_WHILE_SYNCING = policies.SWITCH_INTERVAL_WHILE_SYNCING, interval
                        try:
                            with policies.switching_often():
                                store.noticed(str(target))  # as inotify tells the background thread
                                assert store.sync(named=True), "the change did not go into use"
                        finally:
                            policies.SWITCH_INTERVAL_WHILE_SYNCING = saved
                        got["cpu"].append(time.thread_time() - cpu)
                        got["worst"].append(worst(began, time.perf_counter()))
                        done.clear()
        finally:
            stop.set()
            thread.join()
        print(
            "\n| switch interval during the sync | changes | worst latency during it: median / max (ms)"
            " | the same before: median / max (ms) | sync CPU, median (ms) |"
        )
        print("|---:|---:|---:|---:|---:|")
        for interval, got in results.items():
            print(
                f"| {interval * 1000:.0f} ms | {len(got['worst'])} | {_ms(statistics.median(got['worst']))} /"
                f" {_ms(max(got['worst']))} | {_ms(statistics.median(got['before']))} / {_ms(max(got['before']))}"
                f" | {_ms(statistics.median(got['cpu']))} |"
            )
        print(f"\nload average after: {_load()}")
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
