"""The benchmark's rule model, checked against our engine at a small size.

``bench/policy_model.py`` generates the policies the benchmark times; this
test makes sure our engine answers them as the model says, with the model's
own plain-Python evaluation as the oracle (independent of both engines).
The Cedar side is checked by the benchmark itself before it times anything.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import policy_lang

_MODEL_PATH = Path(__file__).resolve().parents[2] / "bench" / "policy_model.py"


def _load_model_module():
    spec = importlib.util.spec_from_file_location("bench_policy_model", _MODEL_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


pm = _load_model_module()


@pytest.fixture(scope="module")
def model():
    return pm.build_model(100)


@pytest.fixture(scope="module")
def policy_set(model):
    sources = [policy_lang.Source(name, text, owner) for name, text, owner in pm.our_sources(model)]
    return policy_lang.compile_sources(sources)


def test_model_covers_every_rule_shape(model):
    rules = [r for o in model.owners for r in o.rules]
    assert len(rules) == 100 and len(model.owners) == 10
    assert {r.effect for r in rules} == {"permit", "forbid"}
    assert {r.target[0] for r in rules} == {"id", "type", "name", "name_like"}
    assert any(r.unless for r in rules) and any(r.scopes is None for r in rules)
    assert all(o.rules[0] == pm.headline_rule(o.id) for o in model.owners)
    # the Cedar text has one policy per rule
    assert pm.cedar_policies(model).count(";\n") == 100


def test_our_engine_matches_the_model_oracle(model, policy_set):
    reqs = pm.build_requests(model, 50) + pm.headline_requests(model, 20)
    want = [pm.expected(model, r) for r in reqs]
    assert "permit" in want and "deny" in want  # both answers are exercised
    got = [policy_set.decide(pm.our_request(r)).decision for r in reqs]
    mismatches = [(r, g, w) for r, g, w in zip(reqs, got, want) if g != w]
    assert mismatches == []


def test_headline_rule_alone_needs_all_three_clauses():
    one = pm.build_model(1)
    (owner,) = one.owners
    ps = policy_lang.loads(pm.ours_text(owner), name="o0.policy", owner="o0")
    (req,) = pm.headline_requests(one, 1)
    assert ps.decide(pm.our_request(req)).decision == "permit"
    stranger = pm.Person("nobody@example.org", True, "friend")
    unverified = pm.Person(req.person.email, False, req.person.role)
    for variant in (
        pm.Req(req.resource, "view", stranger, "photo-app"),
        pm.Req(req.resource, "view", unverified, "photo-app"),
        pm.Req(req.resource, "view", req.person, "mail-app"),
        pm.Req(req.resource, "download", req.person, "photo-app"),
    ):
        assert pm.expected(one, variant) == "deny"
        assert ps.decide(pm.our_request(variant)).decision == "deny"
