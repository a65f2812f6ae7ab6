"""One decision algorithm (issue 9.2): ``PolicySet.decide(request, trace=True)``
decides exactly as without the trace, and ``explain`` only renders that trace.

Generated policy sets (an owner file and a global file, every effect, target,
condition form and expiry) and requests (several resources and scopes, claims
of the wrong type, claim sources, approvals, two instants).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import policy_lang
from policy_lang import explain
from policy_lang.eval import EXPIRED, ScopeResult
from policy_lang.values import Err, Unknown
from tests.policy_lang.test_invariants import SETTINGS, build, policies, requests


def _result(res: ScopeResult) -> tuple[Any, ...]:
    return (
        res.resource_id,
        res.scope,
        res.outcome,
        res.rule.ref if res.rule else None,
        [cr.ref for cr in res.rules],
        sorted(res.missing),
        res.expires_at,
        [(cr.ref, err.message) for cr, err in res.errors],
        res.owner,
        res.step,
        res.because,
    )


def _decide(ps: policy_lang.PolicySet, request: dict[str, Any], trace: bool) -> Any:
    try:
        return ps.decide(request, trace=trace)
    except policy_lang.RequestError as e:
        return ("RequestError", str(e))


@SETTINGS
@given(policies, st.lists(requests(), min_size=1, max_size=3))
def test_decision_with_trace_is_the_decision_without(policy, reqs):
    """G-04/F-20: the trace observes the decision and changes nothing in it."""
    ps = build(*policy)
    for request in reqs:
        plain = _decide(ps, request, trace=False)
        traced = _decide(ps, request, trace=True)
        if isinstance(plain, tuple):
            assert traced == plain
            continue
        assert traced.to_json() == plain.to_json()
        assert [_result(r) for r in traced.results] == [_result(r) for r in plain.results]
        assert all(r.trace is None for r in plain.results)
        for res in traced.results:
            trace = res.trace
            assert trace is not None
            # the weighed rules are a prefix of the candidates, in their order, each with
            # a value of the three-valued logic (or an error, or expired)
            weighed = [cr for cr, _ in trace.values]
            assert weighed == list(trace.candidates[: len(weighed)])
            for _, value in trace.values:
                assert value is True or value is False or value is EXPIRED or isinstance(value, (Unknown, Err))
            # the deciding rules were weighed, and the last rule weighed is where a
            # forbid that applied stopped the search
            refs = {cr.ref for cr in weighed}
            assert {cr.ref for cr in res.deciding_rules} <= refs
            if res.step == 1:
                assert weighed[-1] is res.rule


@SETTINGS
@given(policies, st.lists(requests(), min_size=1, max_size=3))
def test_explanation_states_the_decision(policy, reqs):
    """explain's verdict per scope is decide's: outcome, step, rules, missing claims."""
    ps = build(*policy)
    for request in reqs:
        decision = _decide(ps, request, trace=False)
        if isinstance(decision, tuple):
            continue
        data = explain(ps, request)
        assert {k: data[k] for k in decision.to_json()} == decision.to_json()
        assert len(data["explanation"]) == len(decision.results)
        for entry, res in zip(data["explanation"], decision.results):
            assert (entry["resource_id"], entry["scope"], entry["outcome"], entry["step"], entry["because"]) == (
                res.resource_id,
                res.scope,
                res.outcome,
                res.step,
                res.because,
            )
            assert entry["rules"] == [cr.ref for cr in res.deciding_rules]
            assert entry["missing"] == sorted(res.missing)
            decisive = [c["rule"] for c in entry["candidates"] if c.get("decisive")]
            assert set(decisive) == set(entry["rules"])
