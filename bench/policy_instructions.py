"""Instructions executed by our engine (valgrind's callgrind): a measure of a change
that the machine's load does not move, where wall-clock times swing by half.

    .venv/bin/python bench/policy_instructions.py                       # this tree
    .venv/bin/python bench/policy_instructions.py --baseline ../main    # and another, side by side
    .venv/bin/python bench/policy_instructions.py --only load --sizes 3000   # the load alone
    .venv/bin/python bench/policy_instructions.py --cache --only decisions --sizes 1,10000

Per tree (its ``policy_lang`` put first on ``PYTHONPATH``) and size, three runs
of one small script under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0``: the set compiled and warmed then no decisions, then
``--decisions`` decisions (mixed requests of ``bench/policy_model.py``, the
plan cache warm), then the same with the three-clause requests. The
difference divided by the number of decisions is the cost of one decision.
Load: the model built and the parser warmed, without and with
``compile_sources`` of all the texts.

With ``--cache``, callgrind also simulates the CPU's caches (``--cache-sim=yes``,
valgrind's model of this machine's first-level and last-level caches) and the
data reads that missed them are printed per decision: what a decision costs in
memory reach, which instructions do not show (several times slower to run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
import policy_model as pm
import policy_lang
assert policy_lang.__file__.startswith({tree!r}), policy_lang.__file__
n, what, count = {n}, {what!r}, {count}
policy_lang.loads('owner "warm-up"\\n', name="warm-up.policy")
model = pm.build_model(n)
sources = [policy_lang.Source(a, b, c) for a, b, c in pm.our_sources(model)]
if what == "load":
    if count:
        policy_lang.compile_sources(sources)
else:
    ps = policy_lang.compile_sources(sources)
    reqs = pm.build_requests(model, 500) if what == "mixed" else pm.headline_requests(model, 500)
    reqs = [pm.our_request(r) for r in reqs]
    for r in reqs:  # warm: plans cached
        ps.decide(r)
    for i in range(count):
        ps.decide(reqs[i % len(reqs)])
"""


CACHE_EVENTS = {"D1 misses": r"D1\s+misses:\s*([\d,]+)", "LLd misses": r"LLd misses:\s*([\d,]+)"}


def instructions(tree: str, n: int, what: str, count: int, cache: bool = False) -> dict[str, int]:
    """The instructions executed (and with ``cache``, the data reads and writes that
    missed the first-level and the last-level cache) by one run of the script."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        script = SCRIPT.format(bench=HERE, tree=os.path.join(os.path.abspath(tree), ""), n=n, what=what, count=count)
        env = {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"}
        # -P, and a directory without a policy_lang: with ``-c`` Python puts the current
        # directory first on sys.path, and from a checkout's root that would import the
        # checkout's policy_lang whatever PYTHONPATH says (both "trees" the same one)
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                *(["--cache-sim=yes"] if cache else []),
                f"--callgrind-out-file={out}",
                sys.executable,
                "-P",
                "-c",
                script,
            ],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        m = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
        if m is None:
            raise SystemExit(done.stderr[-3000:])
        got = {"instructions": int(m.group(1))}
        if cache:
            for name, pattern in CACHE_EVENTS.items():
                m = re.search(pattern, done.stderr)
                if m is None:
                    raise SystemExit(done.stderr[-3000:])
                got[name] = int(m.group(1).replace(",", ""))
        return got


def measure(tree: str, n: int, decisions: int, only: str | None, cache: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    if only in (None, "decisions"):
        for label, what in (("mixed", "mixed"), ("3-clause", "head")):
            none = instructions(tree, n, what, 0, cache)
            some = instructions(tree, n, what, decisions, cache)
            out[label] = (some["instructions"] - none["instructions"]) / decisions
            for event in CACHE_EVENTS if cache else ():
                out[f"{label} {event}"] = (some[event] - none[event]) / decisions
    if only in (None, "load"):
        none, some = instructions(tree, n, "load", 0), instructions(tree, n, "load", 1)
        out["load (M)"] = (some["instructions"] - none["instructions"]) / 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="DIR", help="another tree to measure beside this one")
    ap.add_argument("--sizes", default="1,1000", help="rule counts (default 1,1000)")
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--only", choices=("load", "decisions"), help="measure only the load or only the decisions")
    ap.add_argument("--cache", action="store_true", help="also count the decisions' data cache misses (slower)")
    args = ap.parse_args(argv)
    trees = {"this tree": os.path.dirname(HERE)}
    if args.baseline:
        trees = {"baseline": os.path.abspath(args.baseline), **trees}
    print("Instructions (callgrind, PYTHONHASHSEED=0): per decision, and millions per load of all the texts")
    columns = ["mixed", "3-clause", "load (M)"]
    if args.cache:
        print("Data cache misses per decision: first level (D1) and last level (LLd), valgrind's cache model")
        columns[2:2] = [f"{k} {e}" for k in ("mixed", "3-clause") for e in CACHE_EVENTS]
    print()
    print("| tree | rules | " + " | ".join(columns) + " |")
    print("|---|---:|" + "---:|" * len(columns))
    for n in (int(x) for x in args.sizes.split(",")):
        got = {label: measure(tree, n, args.decisions, args.only, args.cache) for label, tree in trees.items()}
        for label, m in got.items():
            extra = ""
            if label != "baseline" and "baseline" in got:
                b = got["baseline"]
                extra = " (" + ", ".join(f"{k} {(m[k] - b[k]) / b[k] * 100:+.1f} %" for k in m if b[k]) + ")"
            cells = " | ".join(
                "-" if k not in m else f"{m[k]:,.1f}" if " misses" in k else f"{m[k]:,.0f}" for k in columns
            )
            print(f"| {label} | {n:,} | {cells} |{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
