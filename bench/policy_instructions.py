"""Instructions executed by our engine (valgrind's callgrind): a measure of a change
that the machine's load does not move, where wall-clock times swing by half.

    .venv/bin/python bench/policy_instructions.py                       # this tree
    .venv/bin/python bench/policy_instructions.py --baseline ../main    # and another, side by side
    .venv/bin/python bench/policy_instructions.py --only load --sizes 3000   # the load alone

Per tree (its ``policy_lang`` put first on ``PYTHONPATH``) and size, three runs
of one small script under ``valgrind --tool=callgrind`` with
``PYTHONHASHSEED=0``: the set compiled and warmed then no decisions, then
``--decisions`` decisions (mixed requests of ``bench/policy_model.py``, the
plan cache warm), then the same with the three-clause requests. The
difference divided by the number of decisions is the cost of one decision.
Load: the model built and the parser warmed, without and with
``compile_sources`` of all the texts.
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


def instructions(tree: str, n: int, what: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        script = SCRIPT.format(bench=HERE, tree=os.path.join(os.path.abspath(tree), ""), n=n, what=what, count=count)
        env = {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"}
        # -P, and a directory without a policy_lang: with ``-c`` Python puts the current
        # directory first on sys.path, and from a checkout's root that would import the
        # checkout's policy_lang whatever PYTHONPATH says (both "trees" the same one)
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-P", "-c", script],
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
        return int(m.group(1))


def measure(tree: str, n: int, decisions: int, only: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if only in (None, "decisions"):
        base = instructions(tree, n, "mixed", 0)
        out["mixed"] = (instructions(tree, n, "mixed", decisions) - base) / decisions
        out["3-clause"] = (instructions(tree, n, "head", decisions) - instructions(tree, n, "head", 0)) / decisions
    if only in (None, "load"):
        out["load (M)"] = (instructions(tree, n, "load", 1) - instructions(tree, n, "load", 0)) / 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", metavar="DIR", help="another tree to measure beside this one")
    ap.add_argument("--sizes", default="1,1000", help="rule counts (default 1,1000)")
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--only", choices=("load", "decisions"), help="measure only the load or only the decisions")
    args = ap.parse_args(argv)
    trees = {"this tree": os.path.dirname(HERE)}
    if args.baseline:
        trees = {"baseline": os.path.abspath(args.baseline), **trees}
    print("Instructions (callgrind, PYTHONHASHSEED=0): per decision, and millions per load of all the texts")
    print()
    print("| tree | rules | mixed decision | 3-clause decision | load (M) |")
    print("|---|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        got = {label: measure(tree, n, args.decisions, args.only) for label, tree in trees.items()}
        for label, m in got.items():
            extra = ""
            if label != "baseline" and "baseline" in got:
                b = got["baseline"]
                extra = " (" + ", ".join(f"{k} {(m[k] - b[k]) / b[k] * 100:+.1f} %" for k in m) + ")"
            cells = " | ".join(f"{m[k]:,.0f}" if k in m else "-" for k in ("mixed", "3-clause", "load (M)"))
            print(f"| {label} | {n:,} | {cells} |{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
