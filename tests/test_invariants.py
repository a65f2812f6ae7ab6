"""The invariants of section 3, tested with generated policies and requests.

* withholding a claim never widens access: removing any claim from a request
  gives a granted (resource, scope) set that is a subset of the original's;
* adding a forbid never widens access;
* plus determinism, totality (decide never raises) and the decision's JSON shape.

Policies are random rules over a small vocabulary (effects, scopes, targets,
and/or/not conditions over a few claims, client.id and resource attributes,
for/until); requests are random resources, scopes, claims (including values
of the wrong type, to exercise run-time type errors), clients, times and
approvals. Runs are derandomized: the same examples on every run.
"""
from __future__ import annotations

import json
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policy_lang
from policy_lang import Source

SETTINGS = settings(derandomize=True, deadline=None, max_examples=200,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SCOPES = ["view", "download", "print", "share"]
CLAIMS = ["a", "b", "c", "email"]

# ---------------------------------------------------------------- policies

ATOMS = [
    *(f"claims.{c} == {v}" for c in "abc" for v in ("1", "2", '"s"', "true")),
    *(f"claims.{c} > 1" for c in "abc"),
    *(f"claims.{c} != 2" for c in "abc"),
    *(f"claims.{c} in [1, 2]" for c in "abc"),
    *(f'claims.{c} not in [1, "s"]' for c in "abc"),
    *(f"has claims.{c}" for c in CLAIMS),
    "claims.c",
    "claims.email in team",
    'claims.email ends with "@x"',
    'claims.email like "u*"',
    'claims.email contains "1"',
    'client.id == "x"',
    'client.id != "y"',
    'client.id in ["x", "z"]',
    "has client.tier",
    'resource.type == "album"',
    'resource.name starts with "p/"',
    "now < 2026-12-01",
]

conditions = st.recursive(
    st.sampled_from(ATOMS),
    lambda sub: st.one_of(
        st.tuples(sub, sub).map(lambda p: f"({p[0]} and {p[1]})"),
        st.tuples(sub, sub).map(lambda p: f"({p[0]} or {p[1]})"),
        sub.map(lambda x: f"not ({x})"),
    ),
    max_leaves=5,
)

TARGETS = ["any resource", 'resource "r1"', 'resource "r2"', 'type "album"', 'type "doc"',
           'name "a"', 'name like "a*"', 'name like "p/*"', 'type "album" name like "*"',
           'type "album" name "a"']

scope_part = st.one_of(
    st.just("any scope"),
    st.lists(st.sampled_from(SCOPES), min_size=1, max_size=3, unique=True).map(", ".join),
)


@st.composite
def rules(draw, effects=("permit", "forbid", "ask")) -> str:
    effect = draw(st.sampled_from(effects))
    text = f"{effect} {draw(scope_part)} on {draw(st.sampled_from(TARGETS))}"
    if draw(st.booleans()):
        text += f" when {draw(conditions)}"
    if draw(st.integers(0, 3)) == 0:
        text += f" unless {draw(conditions)}"
    expiries = ["", "", " until 2026-12-01", " until 2027-01-01T00:00:00Z"]
    if effect != "forbid":
        expiries += [" for 1d", " for 2h"]
    return text + draw(st.sampled_from(expiries))


HEADER = 'owner "alice"\ngroup team = ["u1@x", "u2@x"]\n'
GLOBAL_HEADER = 'global\ngroup team = ["u2@x", "u3@x"]\n'


def build(owner_rules: list[str], global_rules: list[str]) -> policy_lang.PolicySet:
    return _compiled(tuple(owner_rules), tuple(global_rules))


@lru_cache(maxsize=512)
def _compiled(owner_rules: tuple[str, ...], global_rules: tuple[str, ...]) -> policy_lang.PolicySet:
    sources = [Source("alice.policy", HEADER + "".join(r + "\n" for r in owner_rules))]
    if global_rules:
        sources.append(Source("global.policy", GLOBAL_HEADER + "".join(r + "\n" for r in global_rules)))
    return policy_lang.compile_sources(sources)


policies = st.tuples(st.lists(rules(), min_size=1, max_size=6), st.lists(rules(), max_size=2))

# ---------------------------------------------------------------- requests

claim_values = st.sampled_from([1, 2, 3.5, "s", "1", True, False, "u1@x", "u3@x", "z@y", [1, 2]])

resources = st.fixed_dictionaries(
    {"owner": st.sampled_from(["alice", "alice", "alice", "bob"])},
    optional={"type": st.sampled_from(["album", "doc"]),
              "name": st.sampled_from(["a", "ab", "p/x", "b"]),
              "description": st.just("d")},
)

approvals = st.lists(st.fixed_dictionaries({"scope": st.sampled_from(SCOPES),
                                            "answer": st.sampled_from(["approved", "denied"])}),
                     max_size=2)


@st.composite
def requests(draw) -> dict:
    ids = draw(st.lists(st.sampled_from(["r1", "r2", "r3"]), min_size=1, max_size=2, unique=True))
    perms = []
    for rid in ids:
        res = dict(draw(resources), id=rid)
        perm = {"resource": res, "scopes": draw(st.lists(st.sampled_from(SCOPES), min_size=1,
                                                          max_size=3, unique=True))}
        appr = draw(approvals)
        if appr:
            perm["approvals"] = appr
        perms.append(perm)
    claims = draw(st.dictionaries(st.sampled_from(CLAIMS), claim_values, max_size=4))
    client = draw(st.one_of(st.just({}), st.fixed_dictionaries(
        {"id": st.sampled_from(["x", "y", "z"])}, optional={"tier": st.just("gold")})))
    time = draw(st.sampled_from(["2026-11-27T10:00:00Z", "2026-12-15T00:00:00Z"]))
    if len(perms) == 1 and draw(st.booleans()):
        p = perms[0]
        out = {"resource": p["resource"], "scopes": p["scopes"]}
        if "approvals" in p:
            out["approvals"] = p["approvals"]
    else:
        out = {"permissions": perms}
    out.update(claims=claims, client=client, time=time)
    return out


def granted(ps: policy_lang.PolicySet, request: dict) -> set[tuple[str, str]]:
    d = ps.decide(request)
    return {(g["resource_id"], s) for g in d.granted for s in g["scopes"]}


def without_claim(request: dict, name: str) -> dict:
    smaller = dict(request)
    smaller["claims"] = {k: v for k, v in request["claims"].items() if k != name}
    return smaller


# ---------------------------------------------------------------- the two invariants

@SETTINGS
@given(policies, st.lists(requests(), min_size=1, max_size=3))
def test_withholding_a_claim_never_widens_access(policy, reqs):
    ps = build(*policy)
    for request in reqs:
        full = ps.decide(request)
        full_granted = {(g["resource_id"], s) for g in full.granted for s in g["scopes"]}
        for name in request["claims"]:
            smaller = ps.decide(without_claim(request, name))
            got = {(g["resource_id"], s) for g in smaller.granted for s in g["scopes"]}
            assert got <= full_granted, (name, got, full_granted)
            if smaller.decision == "permit":
                assert full.decision == "permit"
            if smaller.decision == "partial":
                assert full.decision in ("permit", "partial")


@SETTINGS
@given(policies, st.lists(rules(effects=("forbid",)), min_size=1, max_size=2),
       st.booleans(), st.lists(requests(), min_size=1, max_size=3))
def test_adding_a_forbid_never_widens_access(policy, forbids, as_global, reqs):
    owner_rules, global_rules = policy
    before_ps = build(owner_rules, global_rules)
    if as_global:
        after_ps = build(owner_rules, global_rules + forbids)
    else:
        after_ps = build(owner_rules + forbids, global_rules)
    for request in reqs:
        before = granted(before_ps, request)
        after = granted(after_ps, request)
        assert after <= before, (request, after, before)


@SETTINGS
@given(policies, st.lists(rules(effects=("permit",)), min_size=1, max_size=2),
       st.lists(requests(), min_size=1, max_size=3))
def test_adding_a_permit_never_removes_a_grant(policy, permits, reqs):
    owner_rules, global_rules = policy
    before_ps = build(owner_rules, global_rules)
    after_ps = build(owner_rules + permits, global_rules)
    for request in reqs:
        assert granted(before_ps, request) <= granted(after_ps, request), request


# ---------------------------------------------------------------- determinism, totality, shape

@SETTINGS
@given(policies, requests())
def test_decide_is_deterministic(policy, request):
    ps = build(*policy)
    first = json.dumps(ps.decide(request).to_json(), sort_keys=False)
    assert json.dumps(ps.decide(request).to_json(), sort_keys=False) == first
    # a freshly compiled set (cold caches) decides the same
    fresh = _compiled.__wrapped__(tuple(policy[0]), tuple(policy[1]))
    assert json.dumps(fresh.decide(request).to_json(), sort_keys=False) == first


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
              st.floats(allow_nan=False), st.text(max_size=12),
              st.sampled_from(["2026-11-27", "2026-11-27T10:00:00Z", "u1@x", "p/x", "1"])),
    lambda sub: st.one_of(st.lists(sub, max_size=3),
                          st.dictionaries(st.text(max_size=4), sub, max_size=3)),
    max_leaves=6,
)


@SETTINGS
@given(policies, requests(), st.dictionaries(st.sampled_from(CLAIMS), json_values, max_size=4),
       st.dictionaries(st.sampled_from(["id", "tier"]), json_values, max_size=2))
def test_decide_is_total(policy, request, claims, client):
    ps = build(*policy)
    request = dict(request, claims=claims, client=client)
    d = ps.decide(request).to_json()
    assert d["decision"] in ("permit", "need_info", "request_submitted", "partial", "deny")


@SETTINGS
@given(policies, requests())
def test_decision_json_shape(policy, request):
    ps = build(*policy)
    d = ps.decide(request).to_json()
    assert set(d) == {"decision", "granted", "denied", "submitted", "required_claims", "reasons", "errors"}
    assert json.loads(json.dumps(d)) == d
    perms = request.get("permissions") or [{"resource": request["resource"], "scopes": request["scopes"]}]
    asked = {(p["resource"]["id"], s) for p in perms for s in p["scopes"]}
    # every requested scope lands in exactly one place
    placed: list[tuple[str, str]] = []
    for bucket in ("granted", "denied", "submitted"):
        for e in d[bucket]:
            placed += [(e["resource_id"], s) for s in e["scopes"]]
    need = {(r["resource_id"], r["scope"]) for r in d["reasons"] if "missing" in r}
    assert len(placed) == len(set(placed))
    assert set(placed) | need == asked and not (set(placed) & need)
    # the decision follows from the buckets (section 3, request level)
    n_granted = len([p for p in placed if any(p in {(e["resource_id"], s) for s in e["scopes"]}
                                               for e in d["granted"])])
    if n_granted == len(asked):
        assert d["decision"] == "permit"
    elif need:
        assert d["decision"] == "need_info" and d["required_claims"]
    elif d["submitted"]:
        assert d["decision"] == "request_submitted"
    elif n_granted:
        assert d["decision"] == "partial"
    else:
        assert d["decision"] == "deny"
    # every requested scope is explained by at least one reason
    assert {(r["resource_id"], r["scope"]) for r in d["reasons"]} == asked
    for g in d["granted"]:
        assert set(g) == {"resource_id", "scopes", "expires_at"}
    for m in d["required_claims"]:
        assert m["name"] in CLAIMS and m["friendly_name"] == m["name"]
