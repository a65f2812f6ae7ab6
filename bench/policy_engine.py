"""Benchmark: our policy engine (policy_lang) against Cedar (cedarpy).

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/policy_engine.py
    .venv/bin/python bench/policy_engine.py --quick            # sizes 1, 100, 10000; fewer requests
    .venv/bin/python bench/policy_engine.py --sizes 1,10000    # chosen sizes
    .venv/bin/python bench/policy_engine.py --profile 10000    # cProfile of our compile and decide()
    .venv/bin/python bench/policy_engine.py --baseline ../main-checkout   # + before/after, same run

For each size N the same model of N rules (``bench/policy_model.py``: N/10
owners, one policy file per owner, rules by id, type, name and name glob,
permit and forbid, conditions on claims and client) is written as our
language and as Cedar. Before anything is timed, the script checks that our
engine and cedarpy give the same permit/deny answer as a plain-Python
oracle on a sample of requests, and aborts if any of the three disagree:
timing wrong answers would be worthless.

Cedar runs in its fastest public form: policies parsed once into a
``cedarpy.PolicySet``, entities parsed once into a ``cedarpy.Entities``,
the request context passed as a pre-serialised JSON string; both
``is_authorized`` (one call per decision) and ``is_authorized_batch`` are
timed and the faster is compared. For scale only, cedarpy is also timed with
one PolicySet per owner, picked by the caller from the resource's owner.

Times are medians of per-decision times measured with
``time.perf_counter_ns`` after a warm-up pass. This is a benchmark, not a
test: it prints PASS/MISS against the targets and never fails on speed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import policy_model as pm

DEFAULT_SIZES = (1, 100, 10_000, 100_000)
QUICK_SIZES = (1, 100, 10_000)
HEADLINE_SIZE = 1  # the three-clause target is judged on a policy set of exactly that rule


class EquivalenceError(SystemExit):
    """The engines (or an engine and the oracle) disagree: nothing is timed."""


@dataclass
class Settings:
    requests: int  # mixed requests per size (ours is timed on all of them)
    headline: int  # three-clause requests per size
    check: int  # requests checked against cedarpy and the oracle (ours: all)
    ours_budget_s: float  # time spent timing ours per size and request kind
    cedar_budget_s: float  # time spent timing cedarpy per size, request kind and call form
    max_passes: int


FULL = Settings(requests=2000, headline=500, check=400, ours_budget_s=3.0, cedar_budget_s=6.0, max_passes=5)
QUICK = Settings(requests=500, headline=200, check=150, ours_budget_s=1.0, cedar_budget_s=2.0, max_passes=3)


@dataclass
class SizeResult:
    size: int
    owners: int
    ours_compile_s: float = 0.0
    ours_compile_cpu_s: float = 0.0
    ours_compile_range: tuple[float, float] = (0.0, 0.0)
    cedar_parse_s: float = 0.0
    cedar_entities_s: float = 0.0
    checked: int = 0
    permits: int = 0
    ours_mixed_us: float = 0.0
    ours_cold_us: float = 0.0
    ours_head_us: float = 0.0
    cedar_mixed_us: float = 0.0
    cedar_mixed_form: str = ""
    cedar_head_us: float = 0.0
    cedar_head_form: str = ""
    cedar_core_us: float = 0.0
    sharded_us: float = 0.0
    sharded_build_s: float = 0.0
    cedar_samples: int = 0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Timing


def _median_us(samples_ns: Sequence[float]) -> float:
    return statistics.median(samples_ns) / 1000.0


def per_call_samples(
    call: Callable[[Any], Any],
    items: Sequence[Any],
    budget_s: float,
    max_passes: int,
    per: Callable[[Any], int] = lambda _: 1,
) -> list[float]:
    """Per-decision ns of ``call(item)`` over repeated passes, until the budget is spent.

    ``per(item)`` is how many decisions one call makes (a batch's length).
    """
    samples: list[float] = []
    clock = time.perf_counter_ns
    gc.collect()  # before the clock starts: a full collection of a large heap takes seconds
    deadline = clock() + int(budget_s * 1e9)
    for _ in range(max_passes):
        for item in items:
            t0 = clock()
            call(item)
            samples.append((clock() - t0) / per(item))
            if clock() > deadline and samples:
                return samples
    return samples


def reference_loop_ns() -> float:
    """A fixed pure-Python workload (two calls, two dict look-ups), median of 7 runs, in ns.

    It changes with the machine's state, not with either engine: compare it
    between runs before comparing their figures.
    """
    table = {"email": "a@example.com", "role": "friend"}

    def look(name: str) -> Any:
        return table.get(name)

    runs = []
    for _ in range(7):
        t0 = time.perf_counter_ns()
        for _ in range(100_000):
            look("email")
            look("missing")
        runs.append((time.perf_counter_ns() - t0) / 100_000)
    return statistics.median(runs)


def timer_overhead_ns() -> float:
    clock = time.perf_counter_ns
    s = []
    for _ in range(20_000):
        t0 = clock()
        s.append(clock() - t0)
    return statistics.median(s)


# ---------------------------------------------------------------------------
# The engines


def compile_ours(model: pm.Model, loads: int = 1) -> tuple[Any, list[float], float]:
    """The compiled PolicySet; the wall seconds of each of ``loads`` loads (each
    ``compile_sources`` from the texts, nothing kept between them: not even the
    code the compiler generates once per shape of ``and`` and keeps for the
    process, so each load pays what a fresh process pays); the CPU seconds of
    the median one."""
    import importlib

    import policy_lang

    try:
        compiler = importlib.import_module("policy_lang.compile.conditions")
    except ImportError:  # a tree from before the layers (policy_lang/compile.py), for --baseline
        compiler = importlib.import_module("policy_lang.compile")
    sources = [policy_lang.Source(name, text, owner) for name, text, owner in pm.our_sources(model)]
    runs: list[tuple[float, float]] = []
    ps = None
    for _ in range(loads):
        ps = None  # the previous set is freed before the next load
        fused = getattr(compiler, "_FUSED", None)  # generated `and` code, in trees that have it
        if fused is not None:
            fused.clear()
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        ps = policy_lang.compile_sources(sources)
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    return ps, [w for w, _ in runs], sorted(runs)[len(runs) // 2][1]


def prepare_cedar(model: pm.Model) -> tuple[Any, Any, float, float]:
    import cedarpy

    text, ents = pm.cedar_policies(model), pm.cedar_entities(model)
    gc.collect()
    t0 = time.perf_counter()
    policies = cedarpy.PolicySet.from_str(text)
    t1 = time.perf_counter()
    entities = cedarpy.Entities.from_json_str(ents)
    t2 = time.perf_counter()
    if len(policies) != model.n_rules:
        raise EquivalenceError(f"cedarpy parsed {len(policies)} policies, the model has {model.n_rules}")
    return policies, entities, t1 - t0, t2 - t1


def prepare_cedar_shards(model: pm.Model) -> tuple[dict[str, Any], float]:
    """One cedarpy PolicySet per owner (the caller picks it by the resource's owner)."""
    import cedarpy

    texts = {o.id: pm.cedar_policies_of(o) for o in model.owners}
    gc.collect()
    t0 = time.perf_counter()
    shards = {oid: cedarpy.PolicySet.from_str(text) for oid, text in texts.items()}
    return shards, time.perf_counter() - t0


def check_sharded(model: pm.Model, shards: dict[str, Any], entities: Any, reqs: list[pm.Req]) -> None:
    import cedarpy

    bad = []
    for r in reqs:
        res = cedarpy.is_authorized(pm.cedar_request(r), shards[r.resource.owner], entities)
        got, want = ("permit" if res.allowed else "deny"), pm.expected(model, r)
        if got != want or res.diagnostics.errors:
            bad.append(f"cedar sharded={got!r} (errors={res.diagnostics.errors!r}) oracle={want!r} for {r}")
    if bad:
        raise EquivalenceError(
            "ENGINES DISAGREE (cedarpy, one PolicySet per owner); nothing timed.\n  " + "\n  ".join(bad[:10])
        )


def check_equivalence(
    model: pm.Model, ps: Any, reqs: list[pm.Req], ours_reqs: list[dict], policies: Any, entities: Any, n_cedar: int
) -> tuple[int, list[int]]:
    """Ours vs the oracle on every request; cedarpy vs the oracle on the first ``n_cedar``.

    Returns (number of permits expected, Cedar's own authz_duration_micros per decision).
    Raises EquivalenceError on the first disagreements, with what each side said.
    """
    import cedarpy

    want = [pm.expected(model, r) for r in reqs]
    bad: list[str] = []
    for r, q, w in zip(reqs, ours_reqs, want):
        d = ps.decide(q)
        errors = getattr(d, "errors", None)
        if d.decision != w or errors:
            bad.append(f"ours={d.decision!r} (errors={errors!r}) oracle={w!r} for {r}")
    sample = list(range(min(n_cedar, len(reqs))))
    results = cedarpy.is_authorized_batch([pm.cedar_request(reqs[i]) for i in sample], policies, entities)
    core: list[int] = []
    for i, res in zip(sample, results):
        got = "permit" if res.allowed else "deny"
        if got != want[i] or res.diagnostics.errors:
            bad.append(f"cedar={got!r} (errors={res.diagnostics.errors!r}) oracle={want[i]!r} for {reqs[i]}")
        core.append(int(res.metrics.get("authz_duration_micros", 0)))
    if bad:
        owner = model.owner(reqs[0].resource.owner)
        lines = "\n  ".join(bad[:10])
        raise EquivalenceError(
            f"ENGINES DISAGREE on {len(bad)} decision(s) at {model.n_rules} rules; nothing timed.\n  "
            f"{lines}\nfirst owner's file:\n{pm.ours_text(owner)}"
        )
    return sum(w == "permit" for w in want), core


def time_cedar(policies: Any, entities: Any, creqs: list[dict], st: Settings) -> tuple[float, str, int]:
    """Median µs per decision of cedarpy's faster call form, that form, and samples taken."""
    import cedarpy

    # warm-up and cost estimate: keep the slow sizes inside the budget
    t0 = time.perf_counter()
    for q in creqs[:3]:
        cedarpy.is_authorized(q, policies, entities)
    est = max((time.perf_counter() - t0) / 3, 1e-7)
    n = max(10, min(len(creqs), int(st.cedar_budget_s / est)))
    single = per_call_samples(
        lambda q: cedarpy.is_authorized(q, policies, entities), creqs[:n], st.cedar_budget_s, st.max_passes
    )
    s_us = _median_us(single)
    size = min(100, n // 10)
    if size < 2:  # so slow that a batch saves nothing worth measuring
        return s_us, "is_authorized", len(single)
    batches = [creqs[i : i + size] for i in range(0, n - size + 1, size)]
    cedarpy.is_authorized_batch(batches[0], policies, entities)
    batched = per_call_samples(
        lambda b: cedarpy.is_authorized_batch(b, policies, entities), batches, st.cedar_budget_s, st.max_passes, per=len
    )
    b_us = _median_us(batched)
    if b_us < s_us:
        return b_us, f"batch of {size}", len(batched) * size
    return s_us, "is_authorized", len(single)


def time_ours(ps: Any, ours_reqs: list[dict], st: Settings) -> tuple[float, int]:
    """Median µs per decision of ``ps.decide`` and the number of decisions timed."""
    samples = per_call_samples(ps.decide, ours_reqs, st.ours_budget_s, st.max_passes)
    return _median_us(samples), len(samples)


# ---------------------------------------------------------------------------
# One size


def run_size(n: int, st: Settings, log: Callable[[str], None]) -> SizeResult:
    import cedarpy

    t0 = time.perf_counter()
    model = pm.build_model(n)
    reqs = pm.build_requests(model, st.requests)
    head = pm.headline_requests(model, st.headline)
    res = SizeResult(n, len(model.owners))
    log(f"[{n} rules] model of {len(model.owners)} owners built in {time.perf_counter() - t0:.1f}s")

    # load time varies with the machine's state: the median of three loads where a
    # load takes seconds, one load of 100,000 rules
    walls: list[float]
    ps, walls, res.ours_compile_cpu_s = compile_ours(model, 3 if n <= 10_000 else 1)
    res.ours_compile_s = statistics.median(walls)
    res.ours_compile_range = (min(walls), max(walls))
    log(
        f"[{n} rules] ours: load+compile {', '.join(f'{w:.2f}s' for w in walls)} "
        f"(median {res.ours_compile_s:.2f}s, its cpu {res.ours_compile_cpu_s:.2f}s)"
    )
    policies, entities, res.cedar_parse_s, res.cedar_entities_s = prepare_cedar(model)
    log(f"[{n} rules] cedarpy: PolicySet {res.cedar_parse_s:.2f}s, Entities {res.cedar_entities_s:.2f}s")

    ours_reqs = [pm.our_request(r) for r in reqs]
    ours_head = [pm.our_request(r) for r in head]
    creqs = [pm.cedar_request(r) for r in reqs]
    chead = [pm.cedar_request(r) for r in head]

    # Cold: the very first decisions of a fresh PolicySet (plan cache empty).
    cold = per_call_samples(ps.decide, ours_reqs, st.ours_budget_s, 1)
    res.ours_cold_us = _median_us(cold)

    # Correctness before speed. Cedar costs ~3 µs per rule per decision: check fewer at large N.
    t0 = time.perf_counter()
    n_check = st.check if n <= 10_000 else max(30, st.check // 10)
    permits, core = check_equivalence(model, ps, reqs, ours_reqs, policies, entities, n_check)
    hp, _ = check_equivalence(model, ps, head, ours_head, policies, entities, max(10, n_check // 4))
    res.checked = min(n_check, len(reqs)) + min(max(10, n_check // 4), len(head))
    res.permits = permits
    res.cedar_core_us = statistics.median(core)
    log(
        f"[{n} rules] equivalent: ours = oracle on {len(reqs) + len(head)} requests "
        f"({permits + hp} permits), cedarpy = oracle on {res.checked} "
        f"({time.perf_counter() - t0:.1f}s)"
    )

    res.ours_mixed_us, n_mixed = time_ours(ps, ours_reqs, st)
    res.ours_head_us, n_head = time_ours(ps, ours_head, st)
    log(
        f"[{n} rules] ours: {res.ours_mixed_us:.2f} µs mixed ({n_mixed} decisions), "
        f"{res.ours_head_us:.2f} µs three-clause ({n_head} decisions)"
    )
    res.cedar_mixed_us, res.cedar_mixed_form, res.cedar_samples = time_cedar(policies, entities, creqs, st)
    res.cedar_head_us, res.cedar_head_form, _ = time_cedar(policies, entities, chead, st)
    log(
        f"[{n} rules] cedarpy: {res.cedar_mixed_us:.1f} µs mixed ({res.cedar_mixed_form}, "
        f"{res.cedar_samples} decisions), {res.cedar_head_us:.1f} µs three-clause ({res.cedar_head_form})"
    )
    del policies
    shards, res.sharded_build_s = prepare_cedar_shards(model)
    check_sharded(model, shards, entities, reqs[:200])
    pairs = [(shards[r.resource.owner], q) for r, q in zip(reqs, creqs)]
    res.sharded_us = _median_us(
        per_call_samples(
            lambda pq: cedarpy.is_authorized(pq[1], pq[0], entities), pairs, st.cedar_budget_s, st.max_passes
        )
    )
    log(
        f"[{n} rules] cedarpy, one PolicySet per owner: {res.sharded_us:.1f} µs mixed "
        f"(built in {res.sharded_build_s:.2f}s)"
    )
    return res


# ---------------------------------------------------------------------------
# Before and after: our engine of another tree, timed in the same run


def worker(n: int, st: Settings) -> dict[str, float]:
    """Our engine alone at N rules (``--worker N``): what the before/after table compares.
    Runs in a subprocess whose ``policy_lang`` is that of the tree under test."""
    import policy_lang

    policy_lang.loads('owner "warm-up"\n', name="warm-up.policy")
    model = pm.build_model(n)
    ours_reqs = [pm.our_request(r) for r in pm.build_requests(model, st.requests)]
    ours_head = [pm.our_request(r) for r in pm.headline_requests(model, st.headline)]
    ps, walls, _ = compile_ours(model, 3 if n <= 10_000 else 1)
    for r in pm.build_requests(model, st.requests):  # correct before fast
        if ps.decide(pm.our_request(r)).decision != pm.expected(model, r):
            raise EquivalenceError(f"{policy_lang.__file__} disagrees with the oracle on {r}")
    cold = _median_us(per_call_samples(ps.decide, ours_reqs, st.ours_budget_s, 1))
    mixed, _ = time_ours(ps, ours_reqs, st)
    head, _ = time_ours(ps, ours_head, st)
    return {"load_s": statistics.median(walls), "cold_us": cold, "mixed_us": mixed, "head_us": head}


def compare(n: int, st: Settings, baseline: str, rounds: int, quick: bool, log: Callable[[str], None]) -> dict:
    """Medians over ``rounds`` worker runs of each tree, alternated (before, after, before, …)
    so that both meet the same states of the machine."""
    import json
    import subprocess

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    trees = {"before": os.path.abspath(baseline), "after": here}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(rounds):
        for label, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": tree}
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(n)] + (["--quick"] if quick else [])
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"the {label} worker failed:\n{done.stderr}")
            runs[label].append(json.loads(done.stdout))
            log(f"[{n} rules] {label} ({tree}): {runs[label][-1]}")
    return {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in runs.items()}


def compare_report(figures: dict[int, dict], baseline: str, rounds: int) -> str:
    out = [
        f"Before and after (our engine only; before = the tree at {baseline}; each the median of "
        f"{rounds} runs in fresh processes, the two trees alternated)",
        "",
        "| rules | load before (s) | load after (s) | mixed before (µs) | mixed after (µs) | 3-clause before "
        "| 3-clause after | cold before | cold after |",
        "|------:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, f in figures.items():
        b, a = f["before"], f["after"]
        out.append(
            f"| {n:,} | {b['load_s']:.2f} | {a['load_s']:.2f} ({_change(b['load_s'], a['load_s'])}) "
            f"| {_fmt_us(b['mixed_us'])} | {_fmt_us(a['mixed_us'])} ({_change(b['mixed_us'], a['mixed_us'])}) "
            f"| {_fmt_us(b['head_us'])} | {_fmt_us(a['head_us'])} ({_change(b['head_us'], a['head_us'])}) "
            f"| {_fmt_us(b['cold_us'])} | {_fmt_us(a['cold_us'])} ({_change(b['cold_us'], a['cold_us'])}) |"
        )
    return "\n".join(out)


def _change(before: float, after: float) -> str:
    return f"{(after - before) / before * 100:+.0f} %" if before else "n/a"


# ---------------------------------------------------------------------------
# Report


def _fmt_us(v: float) -> str:
    return f"{v:,.1f}" if v >= 100 else f"{v:.2f}"


def _pass(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(results: list[SizeResult], overhead_ns: float) -> str:
    out: list[str] = []
    out.append("Decision time (median µs per decision; ratio = cedarpy / ours)")
    out.append("")
    out.append(
        "| rules | owners | ours mixed | ours cold | cedarpy mixed | ratio | ours 3-clause "
        "| cedarpy 3-clause | ratio | cedar core* |"
    )
    out.append(
        "|------:|-------:|-----------:|----------:|--------------:|------:|--------------:"
        "|-----------------:|------:|------------:|"
    )
    for r in results:
        out.append(
            f"| {r.size:,} | {r.owners:,} | {_fmt_us(r.ours_mixed_us)} | {_fmt_us(r.ours_cold_us)} "
            f"| {_fmt_us(r.cedar_mixed_us)} | {r.cedar_mixed_us / r.ours_mixed_us:,.1f}x "
            f"| {_fmt_us(r.ours_head_us)} | {_fmt_us(r.cedar_head_us)} "
            f"| {r.cedar_head_us / r.ours_head_us:,.1f}x | {_fmt_us(r.cedar_core_us)} |"
        )
    out.append("")
    out.append(
        "mixed: permit and deny requests over all owners (ours: warm plan cache; "
        "cold: first decision of each request on a fresh PolicySet)."
    )
    out.append("3-clause: requests that evaluate all three clauses of the headline rule.")
    out.append(
        "* cedar core: Cedar's own authz_duration_micros metric (Rust, without the "
        "Python binding), median over the checked sample."
    )
    out.append(f"timer overhead (perf_counter_ns pair, included above): {overhead_ns:.0f} ns")
    out.append("")
    out.append(
        "For scale, not a target: cedarpy with one PolicySet per owner, the caller "
        "choosing it by the resource's owner (is_authorized per decision)"
    )
    out.append("")
    out.append("| rules | cedarpy per-owner mixed | ratio to ours | building the per-owner sets (s) |")
    out.append("|------:|------------------------:|--------------:|--------------------------------:|")
    for r in results:
        out.append(
            f"| {r.size:,} | {_fmt_us(r.sharded_us)} | {r.sharded_us / r.ours_mixed_us:,.1f}x "
            f"| {r.sharded_build_s:.2f} |"
        )
    out.append("")
    out.append("Load time (seconds)")
    out.append("")
    out.append(
        "| rules | ours load+compile (median) | (range) | (its CPU time) "
        "| cedarpy PolicySet.from_str | cedarpy Entities.from_json_str |"
    )
    out.append(
        "|------:|---------------------------:|--------:|---------------:"
        "|---------------------------:|-------------------------------:|"
    )
    for r in results:
        lo, hi = r.ours_compile_range
        out.append(
            f"| {r.size:,} | {r.ours_compile_s:.2f} | {lo:.2f}–{hi:.2f} "
            f"| {r.ours_compile_cpu_s:.2f} | {r.cedar_parse_s:.2f} | {r.cedar_entities_s:.2f} |"
        )
    out.append("")
    out.append(
        "ours: the median of 3 loads up to 10,000 rules (each from the texts, nothing kept, "
        "generated code included), "
        "1 load at 100,000."
    )
    out.append("")
    out.append("Targets")
    out.append("")
    by = {r.size: r for r in results}
    faster = [r for r in results if r.ours_mixed_us < r.cedar_mixed_us and r.ours_head_us < r.cedar_head_us]
    sizes = ", ".join(f"{r.size:,}" for r in results)
    out.append(
        f"- {_pass(len(faster) == len(results))}: faster than cedarpy at every size measured "
        f"({sizes}; mixed and 3-clause)"
    )
    if 10_000 in by:
        r = by[10_000]
        ratio = r.cedar_mixed_us / r.ours_mixed_us
        out.append(f"- {_pass(ratio >= 100)}: >= 100x faster than cedarpy at 10,000 rules (mixed: {ratio:,.0f}x)")
    else:
        out.append("- not measured: >= 100x faster at 10,000 rules (size not run)")
    if HEADLINE_SIZE in by:
        r = by[HEADLINE_SIZE]
        out.append(
            f"- {_pass(r.ours_head_us <= 10)}: median decision <= 10 µs for the three-clause "
            f"rule (1 rule: {r.ours_head_us:.2f} µs)"
        )
    else:
        out.append("- not measured: three-clause rule <= 10 µs (size 1 not run)")
    five = [r for r in results if r.size in (1, 100, 10_000)]
    if five:
        worst = max(max(r.ours_mixed_us, r.ours_head_us) for r in five)
        out.append(
            f"- {_pass(worst <= 5)}: median decision <= 5 µs at "
            f"{', '.join(f'{r.size:,}' for r in five)} rules, mixed and 3-clause (slowest: {worst:.2f} µs)"
        )
    if 10_000 in by:
        r = by[10_000]
        lo, hi = r.ours_compile_range
        out.append(
            f"- {_pass(r.ours_compile_s <= 2)}: 10,000 rules loaded and compiled in <= 2 s "
            f"(median {r.ours_compile_s:.2f} s of 3 loads, {lo:.2f} to {hi:.2f} s)"
        )
    else:
        out.append("- not measured: 10,000 rules compiled in <= 2 s (size not run)")
    return "\n".join(out)


def machine() -> str:
    from importlib.metadata import version

    import cedarpy  # noqa: F401  (version below)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {cpu}; Python {platform.python_version()}, "
        f"cedarpy {version('cedarpy')}, {platform.system()} {platform.release()}; "
        f"load average {load}"
    )


# ---------------------------------------------------------------------------
# Profile


def profile(n: int, st: Settings) -> str:
    model = pm.build_model(n)
    reqs = [pm.our_request(r) for r in pm.build_requests(model, st.requests)]
    head = [pm.our_request(r) for r in pm.headline_requests(model, st.headline)]
    prof = cProfile.Profile()
    prof.enable()
    ps, _, _ = compile_ours(model)
    prof.disable()
    buf = io.StringIO()
    buf.write(f"== cProfile: load+compile of {n:,} rules ==\n")
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    for label, items in (("mixed", reqs), ("3-clause", head)):
        for q in items:
            ps.decide(q)  # warm
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            for q in items:
                ps.decide(q)
        prof.disable()
        buf.write(f"== cProfile: decide() x {5 * len(items)} {label} requests at {n:,} rules ==\n")
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
    return buf.getvalue()


# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", help="comma-separated rule counts (default 1,100,10000,100000)")
    ap.add_argument(
        "--quick", action="store_true", help="fewer requests and shorter timing; sizes 1,100,10000 unless --sizes"
    )
    ap.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="print a cProfile of our engine's compile and decide at N rules, then exit",
    )
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="also time the policy_lang of another tree (e.g. a checkout of main) against this one, "
        "alternating fresh processes, and print a before/after table",
    )
    ap.add_argument("--rounds", type=int, default=3, help="worker runs per tree and size with --baseline")
    ap.add_argument("--worker", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    st = QUICK if args.quick else FULL
    if args.worker:
        import json

        print(json.dumps(worker(args.worker, st)))
        return 0
    if args.profile:
        print(profile(args.profile, st))
        return 0
    if args.sizes:
        sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
    else:
        sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    start = time.perf_counter()
    log(f"machine: {machine()}")
    overhead = timer_overhead_ns()
    ref_before = reference_loop_ns()
    import policy_lang

    t0 = time.perf_counter()
    policy_lang.loads('owner "warm-up"\n', name="warm-up.policy")  # builds the Lark parser once
    grammar_s = time.perf_counter() - t0
    loads: list[float] = []
    results = []
    before_after: dict[int, dict] = {}
    for n in sizes:
        loads.append(os.getloadavg()[0])
        results.append(run_size(n, st, log))
        if args.baseline:
            before_after[n] = compare(n, st, args.baseline, args.rounds, args.quick, log)
    loads.append(os.getloadavg()[0])
    ref_after = reference_loop_ns()
    print()
    print(f"Machine: {machine()}")
    busy = max(loads)
    print(f"1-minute load average at the start of each size and at the end: {', '.join(f'{x:.1f}' for x in loads)}")
    print(
        f"Reference loop (fixed pure-Python work, for comparing runs): {ref_before:.0f} ns before, "
        f"{ref_after:.0f} ns after"
    )
    if busy > (os.cpu_count() or 1):
        print(
            f"WARNING: the machine was busy (1-minute load {busy:.1f} on {os.cpu_count()} cores): "
            "every figure below is inflated; rerun on an idle machine."
        )
    print(f"Engine start (Lark parser built once, not counted below): {grammar_s:.2f} s")
    print(
        f"Settings: {'--quick' if args.quick else 'full'}; {st.requests} mixed + {st.headline} "
        f"three-clause requests per size; total run {time.perf_counter() - start:.0f} s"
    )
    print()
    print(report(results, overhead))
    if before_after:
        print()
        print(compare_report(before_after, args.baseline, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
