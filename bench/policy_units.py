"""Benchmark: replacing one policy file in a large set, against rebuilding the set.

    .venv/bin/python bench/policy_units.py                      # 100,000 rules in 1,000 files
    .venv/bin/python bench/policy_units.py --rules 10000 --files 100 --edits 10

The model of ``bench/policy_model.py`` (the one ``bench/policy_engine.py``
uses), with the rules spread over ``--files`` owner files, plus one small
global file of the operator's. Timed in the same run:

* a full build: ``policy_lang.compile_sources`` of every text (parse, check,
  compile, index);
* per edit, one owner's file changed (a rule added, one dropped, the family
  group changed): ``compile_unit`` (reading the new text) and
  ``PolicySet.replace`` (checking it with the global file, compiling it,
  re-indexing that owner), each edit applied to the set the previous one made;
* adding a new owner's file, removing one, and replacing the global file
  (which re-checks every owner: printed for scale, not a target).

Each operation is printed with its wall time and, beside it, its CPU time
(``time.process_time``): the machine may be shared, and a wall time well above
the CPU time says that other processes had the CPU meanwhile.

Correct before fast: after the edits, a set built from scratch from the
edited texts must give the same decision (``to_json()``, byte for byte) and
the same warnings as the set built by replacements, on requests over the
edited owners and random others; otherwise the run aborts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time

import policy_model as pm

from policy_lang import Source, compile_sources, compile_unit

GLOBAL_TEXT = """global
claims email, email_verified from "https://idp.example.com" as id_token

forbid any scope on name like "private/keys" unless client.id in ["owner-phone", "owner-laptop"]
"""


def edited(text: str, rng: random.Random) -> str:
    """One owner's text with a rule added, one dropped, or the family group changed."""
    lines = text.split("\n")
    rule_lines = [i for i, line in enumerate(lines) if line.startswith(("permit", "forbid", "ask"))]
    what = rng.randrange(3)
    if what == 0:
        lines.append(f'permit print on name "edit-{rng.randrange(10**6)}" when client.id == "photo-app"')
    elif what == 1 and len(rule_lines) > 1:
        del lines[rng.choice(rule_lines[1:])]
    else:
        group = next(i for i, line in enumerate(lines) if line.startswith("group family"))
        lines[group] = lines[group].replace("]", f', "new-{rng.randrange(10**6)}@example.com"]')
    return "\n".join(lines).rstrip("\n") + "\n"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


class Collector:
    """The cyclic garbage collector's pauses (observed through ``gc.callbacks``), so
    that a slow operation can be told apart from a collection that fell inside it."""

    def __init__(self) -> None:
        self.seconds = 0.0  # spent collecting since the last reset
        self.full = 0  # full (generation 2) collections since the last reset
        self._start = 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.full += info["generation"] == 2

    def reset(self) -> None:
        self.seconds, self.full = 0.0, 0


COLLECTOR = Collector()


def timed(fn, *args):
    """``fn(*args)`` and its wall time; ``timed.collector`` holds the collector's share
    of it (seconds, full collections) and ``timed.cpu`` the process's CPU time (less
    than the wall time when other processes had the CPU)."""
    gc.collect()
    COLLECTOR.reset()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    elapsed = time.perf_counter() - t0
    timed.cpu = time.process_time() - c0
    timed.collector = (COLLECTOR.seconds, COLLECTOR.full)
    return out, elapsed


timed.collector = (0.0, 0)
timed.cpu = 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=1_000)
    ap.add_argument("--edits", type=int, default=30)
    ap.add_argument("--requests", type=int, default=3_000)
    args = ap.parse_args(argv)

    print(
        f"Machine: {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    model = pm.build_model(args.rules, n_owners=args.files)
    texts = {f"{o.id}.policy": (pm.ours_text(o), o.id) for o in model.owners}
    sources = {name: Source(name, text, owner) for name, (text, owner) in texts.items()}
    sources["operator/global.policy"] = Source("operator/global.policy", GLOBAL_TEXT)
    print(f"Set: {model.n_rules:,} rules in {len(model.owners):,} owner files and 1 global file")
    compile_sources([Source("warm.policy", 'owner "w"\npermit view on any resource\n')])  # the parser built once

    print("building from scratch ...", file=sys.stderr)
    ps, full_s = timed(compile_sources, list(sources.values()))
    cpu_of = {"full": timed.cpu}  # CPU time of the operations timed once

    rng = random.Random(5)
    owners = rng.sample(model.owners, min(args.edits, len(model.owners)))
    read_s: list[float] = []
    replace_s: list[float] = []
    read_cpu: list[float] = []  # per edit: CPU time of compile_unit
    replace_cpu: list[float] = []  # per edit: CPU time of replace
    collector: list[tuple[float, int]] = []  # per edit: seconds collecting, full collections
    print(f"{len(owners)} edits ...", file=sys.stderr)
    for owner in owners:
        name = f"{owner.id}.policy"
        src = Source(name, edited(sources[name].text, rng), owner.id)
        sources[name] = src
        unit, t_read = timed(compile_unit, src)
        gc_read = timed.collector
        read_cpu.append(timed.cpu)
        ps, t_replace = timed(ps.replace, unit)
        gc_replace = timed.collector
        replace_cpu.append(timed.cpu)
        read_s.append(t_read)
        replace_s.append(t_replace)
        collector.append((gc_read[0] + gc_replace[0], gc_read[1] + gc_replace[1]))
    total_s = [a + b for a, b in zip(read_s, replace_s)]
    cpu_s = [a + b for a, b in zip(read_cpu, replace_cpu)]
    full_cpu = cpu_of["full"]

    extra = Source("zz-new.policy", pm.ours_text(model.owners[0]).replace('owner "o0"', 'owner "new-owner"'))
    sources[extra.name] = extra
    ps, add_s = timed(lambda: ps.replace(compile_unit(extra)))
    cpu_of["add"] = timed.cpu
    gone = f"{model.owners[-1].id}.policy"
    del sources[gone]
    ps, remove_s = timed(ps.remove, gone)
    cpu_of["remove"] = timed.cpu
    new_global = Source("operator/global.policy", GLOBAL_TEXT + 'forbid share on name like "private/*"\n')
    sources[new_global.name] = new_global
    ps, global_s = timed(lambda: ps.replace(compile_unit(new_global)))
    cpu_of["global"] = timed.cpu

    print("building the edited texts from scratch, to compare ...", file=sys.stderr)
    scratch, full2_s = timed(compile_sources, list(sources.values()))
    cpu_of["full2"] = timed.cpu
    edited_ids = {o.id for o in owners}
    reqs = [r for r in pm.build_requests(model, args.requests * 4) if r.resource.owner in edited_ids][: args.requests]
    reqs += pm.build_requests(model, args.requests, seed=8)
    for r in reqs:
        request = pm.our_request(r)
        a = json.dumps(ps.decide(request).to_json())
        b = json.dumps(scratch.decide(request).to_json())
        if a != b:
            raise SystemExit(f"the replaced set and the set built from scratch differ on {request}: {a} != {b}")
    if [d.render() for d in ps.diagnostics] != [d.render() for d in scratch.diagnostics]:
        raise SystemExit("the replaced set and the set built from scratch warn differently")
    print(f"Checked: {len(reqs):,} requests decided identically by the edited set and the set built from scratch")
    print()
    med = statistics.median
    print("| operation | wall time (ms) | CPU time (ms) |")
    print("|---|---:|---:|")
    print(f"| full build from scratch ({model.n_rules:,} rules) | {ms(full_s)} | {ms(full_cpu)} |")
    print(f"| the same, edited texts (second build) | {ms(full2_s)} | {ms(cpu_of['full2'])} |")
    print(
        f"| replace one owner's file: read + replace, median of {len(owners)} (range) "
        f"| {ms(med(total_s))} ({ms(min(total_s))}–{ms(max(total_s))}) "
        f"| {ms(med(cpu_s))} ({ms(min(cpu_s))}–{ms(max(cpu_s))}) |"
    )
    print(f"| … of which reading the text (`compile_unit`), median | {ms(med(read_s))} | {ms(med(read_cpu))} |")
    print(f"| … of which `PolicySet.replace`, median | {ms(med(replace_s))} | {ms(med(replace_cpu))} |")
    slowest = max(range(len(total_s)), key=total_s.__getitem__)
    gc_s, gc_full = collector[slowest]
    print(
        f"| the slowest replacement: read + replace (of which the cyclic collector; its full collections) "
        f"| {ms(total_s[slowest])} ({ms(gc_s)}; {gc_full}) | {ms(cpu_s[slowest])} |"
    )
    print(f"| the cyclic collector in all {len(total_s)} replacements | {ms(sum(c for c, _ in collector))} | |")
    print(f"| add a new owner's file | {ms(add_s)} | {ms(cpu_of['add'])} |")
    print(f"| remove an owner's file | {ms(remove_s)} | {ms(cpu_of['remove'])} |")
    print(f"| replace the global file (every owner re-checked; for scale) | {ms(global_s)} | {ms(cpu_of['global'])} |")
    print()
    print(
        "CPU time: time.process_time() of this process (the collector included); below the wall time "
        "when other processes had the CPU: the machine may be shared."
    )
    print()
    worst = max(total_s)
    verdict = "PASS" if worst <= 0.050 else "MISS"
    print(
        f"Target: replacing one file in a set of {model.n_rules:,} rules <= 50 ms: {verdict} "
        f"(slowest of {len(owners)} edits {ms(worst)} ms; full rebuild {ms(full_s)} ms, "
        f"{full_s / statistics.median(total_s):,.0f}x the median replacement; slowest edit's CPU time "
        f"{ms(max(cpu_s))} ms)"
    )
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
