"""Benchmark: the policy reader's two backends side by side, in the same run.

    .venv/bin/python bench/reader.py               # 10,000 rules and the shipped files, 5 runs each
    .venv/bin/python bench/reader.py --runs 9 --rules 1000,10000

For each text set it times, per backend (``policy_lang.syntax.reader.parse(...,
backend=...)``): reading alone, and a whole load (reading, then
``policy_lang.compile_parsed``: check and compile, as ``compile_sources`` does).
A third line, "compiled, Lark's rule objects", is the compiled backend without
``_lean_tables`` (the one optimisation kept in the reader, for the figure its
comment names). Figures are medians of CPU seconds over interleaved runs, with
the ratio to the compiled backend. Before timing, every backend must give the
same files and diagnostics: timing different answers would be worthless.

The 10,000-rule set is ``bench/policy_model.py``'s (the one ``policy_engine.py``
loads: 1,000 owners, one file each). This is a benchmark, not a test: it
prints, and never fails on speed.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import policy_model as pm

import policy_lang
from policy_lang.syntax import reader as R

ROOT = Path(__file__).resolve().parents[1]


def text_sets(sizes: list[int]) -> dict[str, list[policy_lang.Source]]:
    sets = {}
    for n in sizes:
        model = pm.build_model(n)
        sets[f"{n:,} rules ({len(model.owners):,} files)"] = [
            policy_lang.Source(name, text, owner) for name, text, owner in pm.our_sources(model)
        ]
    shipped = sorted((ROOT / "policies").glob("*.policy"))
    sets[f"the shipped policies/ ({len(shipped)} files) x 100"] = [
        policy_lang.Source(f"{i}/{p.name}", p.read_text(encoding="utf-8")) for i in range(100) for p in shipped
    ]
    return sets


def readers() -> dict[str, Callable[[policy_lang.Source], Any]]:
    import lark_cython

    plain = R._FastReader(R._lark(_plugins=lark_cython.plugins))  # no _lean_tables

    def with_plain_rules(s: policy_lang.Source) -> Any:
        saved = R._fast_parser
        R._fast_parser = lambda: plain  # type: ignore[assignment]
        try:
            return R.parse(s.text, s.name, s.owner, backend="compiled")
        finally:
            R._fast_parser = saved  # type: ignore[assignment]

    return {
        "compiled": lambda s: R.parse(s.text, s.name, s.owner, backend="compiled"),
        "lark": lambda s: R.parse(s.text, s.name, s.owner, backend="lark"),
        "compiled, Lark's rule objects": with_plain_rules,
    }


def same_answers(sources: list[policy_lang.Source], read: dict[str, Callable[[policy_lang.Source], Any]]) -> None:
    answers = {name: [repr(r(s)) for s in sources] for name, r in read.items()}
    first = next(iter(answers.values()))
    for name, got in answers.items():
        if got != first:
            sys.exit(f"the {name!r} backend reads these texts differently: nothing is timed")


def time_once(sources: list[policy_lang.Source], read: Callable[[policy_lang.Source], Any]) -> tuple[float, float]:
    """(CPU seconds to read every source, CPU seconds of a whole load)."""
    gc.collect()
    t0 = time.process_time()
    for s in sources:
        read(s)
    t1 = time.process_time()
    gc.collect()
    t2 = time.process_time()
    parsed = []
    for s in sources:
        pf, diags = read(s)
        parsed.append(policy_lang.ParsedSource(s, pf, tuple(diags)))
    policy_lang.compile_parsed(parsed)
    return t1 - t0, time.process_time() - t2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="interleaved runs per backend (median reported)")
    ap.add_argument("--rules", default="10000", help="comma-separated sizes of the generated set")
    args = ap.parse_args(argv)
    read = readers()
    policy_lang.loads('owner "warm-up"\n', name="warm-up.policy")
    for name in read:  # build every parser before timing
        read[name](policy_lang.Source("warm-up.policy", 'owner "w"\npermit view on any resource\n'))
    for title, sources in text_sets([int(x) for x in args.rules.split(",")]).items():
        same_answers(sources[:200], read)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in read}
        for _ in range(args.runs):
            for name, r in read.items():
                times[name].append(time_once(sources, r))
        base_read = statistics.median(t[0] for t in times["compiled"])
        base_load = statistics.median(t[1] for t in times["compiled"])
        print(f"== {title}: median CPU seconds of {args.runs} runs")
        print(f"{'backend':32} {'read':>8} {'ratio':>6} {'whole load':>11} {'ratio':>6}")
        for name, ts in times.items():
            rd = statistics.median(t[0] for t in ts)
            ld = statistics.median(t[1] for t in ts)
            print(f"{name:32} {rd:8.3f} {rd / base_read:5.2f}x {ld:11.3f} {ld / base_load:5.2f}x")
        print()
    print(f"texts the compiled backend handed to Lark's reader in this run: {R.rereads()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
