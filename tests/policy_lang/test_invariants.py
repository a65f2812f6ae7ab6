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
import re
from datetime import datetime
from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policy_lang
from policy_lang import Source
from policy_lang.syntax import ast as A

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCOPES = ["view", "download", "print", "share"]
CLAIMS = ["a", "b", "c", "email", "address", "https://x.example/level"]

# ---------------------------------------------------------------- policies

ATOMS = [
    *(f"claims.{c} == {v}" for c in "abc" for v in ("1", "2", '"s"', "true")),
    *(f"claims.{c} > 1" for c in "abc"),
    *(f"claims.{c} != 2" for c in "abc"),
    *(f"claims.{c} in [1, 2]" for c in "abc"),
    *(f'claims.{c} not in [1, "s"]' for c in "abc"),
    *(f"has claims.{c}" for c in ("a", "b", "c", "email", "address")),
    'has claims["https://x.example/level"]',
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
    "claims.c < 2.5",
    "claims.a == claims.b",
    "claims.a in claims.b",
    '"s" in claims.a',
    'claims.address.country == "DE"',
    'claims.address.country in ["DE", "FR"]',
    'claims["https://x.example/level"] >= 2',
    'resource.scopes contains "view"',
    'client.tier != "gold"',
    "not has client.tier",
    'claims.email like "u?@x"',
    'claims.email starts with "u"',
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

TARGETS = [
    "any resource",
    'resource "r1"',
    'resource "r2"',
    'type "album"',
    'type "doc"',
    'name "a"',
    'name like "a*"',
    'name like "p/*"',
    'type "album" name like "*"',
    'type "album" name "a"',
]

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


HEADER = 'owner "alice"\ngroup team = ["u1@x", "u2@x"]\nclaims email from "https://idp.example" as id_token\n'
GLOBAL_HEADER = 'global\ngroup team = ["u2@x", "u3@x"]\nclaims a, email from "https://gov.example" as jwt\n'
ISSUERS = ["https://idp.example", "https://gov.example", "https://evil.example"]
FORMATS = ["id_token", "jwt", "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"]


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

claim_values = st.sampled_from(
    [
        1,
        2,
        3.5,
        "s",
        "1",
        True,
        False,
        "u1@x",
        "u3@x",
        "z@y",
        [1, 2],
        ["s", 1],
        None,
        {"country": "DE"},
        {"country": "FR"},
        {"city": "x"},
    ]
)

resources = st.fixed_dictionaries(
    {"owner": st.sampled_from(["alice", "alice", "alice", "bob"])},
    optional={
        "type": st.sampled_from(["album", "doc"]),
        "name": st.sampled_from(["a", "ab", "p/x", "b"]),
        "description": st.just("d"),
        "scopes": st.sampled_from([["view", "print"], ["download"]]),
    },
)

approvals = st.lists(
    st.fixed_dictionaries({"scope": st.sampled_from(SCOPES), "answer": st.sampled_from(["approved", "denied"])}),
    max_size=2,
)


@st.composite
def requests(draw) -> dict:
    ids = draw(st.lists(st.sampled_from(["r1", "r2", "r3"]), min_size=1, max_size=2, unique=True))
    perms = []
    for rid in ids:
        res = dict(draw(resources), id=rid)
        perm = {"resource": res, "scopes": draw(st.lists(st.sampled_from(SCOPES), min_size=1, max_size=3, unique=True))}
        appr = draw(approvals)
        if appr:
            perm["approvals"] = appr
        perms.append(perm)
    claims = draw(st.dictionaries(st.sampled_from(CLAIMS), claim_values, max_size=5))
    client = draw(
        st.one_of(
            st.just({}),
            st.fixed_dictionaries({"id": st.sampled_from(["x", "y", "z"])}, optional={"tier": st.just("gold")}),
        )
    )
    time = draw(st.sampled_from(["2026-11-27T10:00:00Z", "2026-12-15T00:00:00Z"]))
    if len(perms) == 1 and draw(st.booleans()):
        p = perms[0]
        out = {"resource": p["resource"], "scopes": p["scopes"]}
        if "approvals" in p:
            out["approvals"] = p["approvals"]
    else:
        out = {"permissions": perms}
    out.update(claims=claims, client=client, time=time)
    if claims and draw(st.booleans()):
        out["claim_sources"] = draw(
            st.dictionaries(
                st.sampled_from(sorted(claims)),
                st.fixed_dictionaries(
                    {"issuer": st.sampled_from(ISSUERS)}, optional={"format": st.sampled_from(FORMATS)}
                ),
                max_size=3,
            )
        )
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
@given(
    policies,
    st.lists(rules(effects=("forbid",)), min_size=1, max_size=2),
    st.booleans(),
    st.lists(requests(), min_size=1, max_size=3),
)
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
@given(
    policies, st.lists(rules(effects=("permit",)), min_size=1, max_size=2), st.lists(requests(), min_size=1, max_size=3)
)
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
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=12),
        st.sampled_from(["2026-11-27", "2026-11-27T10:00:00Z", "u1@x", "p/x", "1"]),
    ),
    lambda sub: st.one_of(st.lists(sub, max_size=3), st.dictionaries(st.text(max_size=4), sub, max_size=3)),
    max_leaves=6,
)


@SETTINGS
@given(
    policies,
    requests(),
    st.dictionaries(st.sampled_from(CLAIMS), json_values, max_size=4),
    st.dictionaries(st.sampled_from(["id", "tier"]), json_values, max_size=2),
)
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
    n_granted = len([p for p in placed if any(p in {(e["resource_id"], s) for s in e["scopes"]} for e in d["granted"])])
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


# ---------------------------------------------------------------- a direct reading of section 3
#
# An independent evaluator written from the language page (it shares only the
# parser with the engine): conditions over the AST in three-valued logic with
# run-time errors, then steps 1-6 per scope and the request-level order. The
# engine (indexed, compiled, with fast paths) must agree with it exactly.

_MISSING = object()
_ABSENT = object()
_ERR = "E"


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a, b) -> bool:
    if _num(a) and _num(b):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if type(a) is not type(b) and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
        return False
    return a == b


def _glob_fullmatch(pattern: str, s: str) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, s, re.S) is not None


def _value(node, ctx, groups):
    if isinstance(node, A.Literal):
        return tuple(_value(x, ctx, groups) for x in node.value) if node.kind == "list" else node.value
    if isinstance(node, A.GroupRef):
        return _value(groups[node.name], ctx, groups)
    if isinstance(node, A.ClaimRef):
        v = ctx["claims"].get(node.path[0])
        for part in node.path[1:]:
            v = v.get(part) if isinstance(v, dict) else None
        return ("missing", node.path[0]) if v is None else v
    if isinstance(node, A.AttrRef):
        v = ctx[node.entity].get(node.name)
        return _ABSENT if v is None else v
    if isinstance(node, A.NowRef):
        return ctx["now"]
    raise AssertionError(f"operand outside the generated vocabulary: {node!r}")


def _is_missing(v) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and v[0] == "missing"


def _compare(op, a, b):
    if op == "==":
        return _eq(a, b)
    if op == "!=":
        return not _eq(a, b)
    if op in ("<", "<=", ">", ">="):
        ok = (
            (_num(a) and _num(b))
            or (isinstance(a, str) and isinstance(b, str))
            or (isinstance(a, datetime) and isinstance(b, datetime))
        )
        if not ok:
            return _ERR
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("in", "not in"):
        if isinstance(b, (list, tuple)):
            r = any(_eq(a, x) for x in b)
        elif isinstance(b, str) and isinstance(a, str):
            r = a in b
        else:
            return _ERR
        return r if op == "in" else not r
    if op == "contains":
        if isinstance(a, (list, tuple)):
            return any(_eq(x, b) for x in a)
        if isinstance(a, str) and isinstance(b, str):
            return b in a
        return _ERR
    if not (isinstance(a, str) and isinstance(b, str)):
        return _ERR
    if op == "starts with":
        return a.startswith(b)
    if op == "ends with":
        return a.endswith(b)
    assert op == "like"
    return _glob_fullmatch(b, a)


def _cond(node, ctx, groups):
    """True, False, _ERR or a frozenset of missing claim names (UNKNOWN)."""
    if isinstance(node, (A.And, A.Or)):
        parts = [_cond(x, ctx, groups) for x in node.items]
        win, lose = (False, True) if isinstance(node, A.And) else (True, False)
        if win in parts:
            return win
        if _ERR in parts:
            return _ERR
        unknown = [p for p in parts if isinstance(p, frozenset)]
        return frozenset().union(*unknown) if unknown else lose
    if isinstance(node, A.Not):
        r = _cond(node.item, ctx, groups)
        return (not r) if isinstance(r, bool) else r
    if isinstance(node, A.Has):
        v = _value(node.ref, ctx, groups)
        if isinstance(node.ref, A.ClaimRef):
            return frozenset([v[1]]) if _is_missing(v) else True
        return v is not _ABSENT
    if isinstance(node, A.Compare):
        a, b = _value(node.left, ctx, groups), _value(node.right, ctx, groups)
        missing = frozenset(v[1] for v in (a, b) if _is_missing(v))
        if missing:
            return missing
        if a is _ABSENT or b is _ABSENT:
            return False
        return _compare(node.op, a, b)
    v = _value(node, ctx, groups)  # a bare operand: a boolean test
    if _is_missing(v):
        return frozenset([v[1]])
    if v is _ABSENT:
        return False
    return v if isinstance(v, bool) else _ERR


def _targets(t: A.Target, res: dict) -> bool:
    name, rtype = res.get("name"), res.get("type")
    return {
        "any": True,
        "id": res["id"] == t.resource_id,
        "type": rtype == t.type,
        "name": name == t.name,
        "name_like": name is not None and _glob_fullmatch(t.pattern or "", name),
        "type_name": rtype == t.type and name == t.name,
        "type_name_like": rtype == t.type and name is not None and _glob_fullmatch(t.pattern or "", name),
    }[t.kind]


def _oracle_scope(files, res, scope, ctx, approval):
    """(outcome, missing names, expiry) by steps 1-6 of section 3."""
    now = ctx["now"]
    cands = []  # global files first, then the owner's; each in source order
    for pf in sorted(files, key=lambda f: (not f.is_global, f.name)):
        if not pf.is_global and pf.owner != res["owner"]:
            continue
        groups = {g.name: g.members for g in pf.groups}
        for r in pf.rules:
            if not _targets(r.target, res) or (r.scopes is not None and scope not in r.scopes):
                continue
            if r.expiry is not None and r.expiry.kind == "until" and now > r.expiry.until:
                continue
            when = True if r.when is None else _cond(r.when, ctx, groups)
            unless = False if r.unless is None else _cond(r.unless, ctx, groups)
            not_unless = (not unless) if isinstance(unless, bool) else unless
            parts = [when, not_unless]
            if False in parts:
                value = False
            elif _ERR in parts:
                value = _ERR
            elif any(isinstance(p, frozenset) for p in parts):
                value = frozenset().union(*[p for p in parts if isinstance(p, frozenset)])
            else:
                value = True
            bound = None
            if r.expiry is not None:
                bound = now + r.expiry.duration if r.expiry.kind == "for" else r.expiry.until
            cands.append((r.effect, value, bound))
    forbids = [c for c in cands if c[0] == "forbid"]
    permits = [c for c in cands if c[0] == "permit"]
    asks = [c for c in cands if c[0] == "ask"]
    if any(v is True or v == _ERR for _, v, _ in forbids):  # step 1
        return "denied", frozenset(), None
    forbid_missing = frozenset().union(*[v for _, v, _ in forbids if isinstance(v, frozenset)])
    true_permits = [b for _, v, b in permits if v is True]
    true_asks = [b for _, v, b in asks if v is True]
    alternatives = [v for _, v, _ in permits + asks if isinstance(v, frozenset)]
    if forbid_missing:  # step 2 (+ 5)
        extra = min(alternatives, key=len) if alternatives and not true_permits and not true_asks else frozenset()
        return "need_info", forbid_missing | extra, None
    if true_permits:  # step 3
        return "granted", frozenset(), None if None in true_permits else max(true_permits)
    if true_asks:  # step 4
        if approval == "approved":
            return "granted", frozenset(), true_asks[0]
        return ("denied" if approval == "denied" else "submitted"), frozenset(), None
    if alternatives:  # step 5
        return "need_info", min(alternatives, key=len), None
    return "denied", frozenset(), None  # step 6


_FORMAT_URIS = {"id_token": FORMATS[2], "jwt": "urn:ietf:params:oauth:token-type:jwt"}


def _declarations(files, owner: str) -> dict[str, tuple[str, str]]:
    """claim name -> (issuer, format URI) for an owner's resources: global, then the owner's own."""
    out: dict[str, tuple[str, str]] = {}
    for pf in sorted(files, key=lambda f: not f.is_global):
        if pf.is_global or pf.owner == owner:
            for c in pf.claims:
                for n in c.names:
                    out[n] = (c.issuer, _FORMAT_URIS.get(c.format, c.format))
    return out


def _claims_view(files, owner: str, claims: dict, sources: dict) -> dict:
    """A claim from another issuer or format than declared is not that claim."""
    decl = _declarations(files, owner)
    view = dict(claims)
    for name, src in sources.items():
        if name in decl:
            issuer, fmt = decl[name]
            given = src.get("format")
            if src.get("issuer") != issuer or (given is not None and _FORMAT_URIS.get(given, given) != fmt):
                view.pop(name, None)
    return view


def _oracle(ps: policy_lang.PolicySet, request: dict) -> dict:
    perms = request.get("permissions") or [
        {"resource": request["resource"], "scopes": request["scopes"], "approvals": request.get("approvals")}
    ]
    now = datetime.fromisoformat(request["time"].replace("Z", "+00:00"))
    out: dict[tuple[str, str], tuple] = {}
    for p in perms:
        answers: dict[str, str] = {}
        for a in p.get("approvals") or []:
            if answers.get(a["scope"]) != "denied":
                answers[a["scope"]] = a["answer"]
        claims = _claims_view(ps.files, p["resource"]["owner"], request["claims"], request.get("claim_sources") or {})
        ctx = {"claims": claims, "client": request["client"], "resource": p["resource"], "now": now}
        for s in p["scopes"]:
            out[(p["resource"]["id"], s)] = _oracle_scope(ps.files, p["resource"], s, ctx, answers.get(s))
    return out


def _engine_view(d: dict) -> dict:
    out: dict[tuple[str, str], tuple] = {}
    for bucket, outcome in (("granted", "granted"), ("denied", "denied"), ("submitted", "submitted")):
        for e in d[bucket]:
            for s in e["scopes"]:
                out[(e["resource_id"], s)] = (outcome, frozenset(), None)
    for r in d["reasons"]:
        if "missing" in r:
            out[(r["resource_id"], r["scope"])] = ("need_info", frozenset(r["missing"]), None)
    return out


@SETTINGS
@given(policies, st.lists(requests(), min_size=1, max_size=3))
def test_engine_agrees_with_a_direct_reading_of_section_3(policy, reqs):
    ps = build(*policy)
    for request in reqs:
        d = ps.decide(request).to_json()
        want = _oracle(ps, request)
        got = _engine_view(d)
        assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in want.items()}, request
        # expiry: per scope the latest bound, per resource the earliest over its scopes
        for g in d["granted"]:
            bounds = [want[(g["resource_id"], s)][2] for s in g["scopes"]]
            finite = [b for b in bounds if b is not None]
            expected = min(finite).strftime("%Y-%m-%dT%H:%M:%SZ") if finite else None
            assert g["expires_at"] == expected
        # the request-level order
        outcomes = [v[0] for v in want.values()]
        if all(o == "granted" for o in outcomes):
            assert d["decision"] == "permit"
        elif "need_info" in outcomes:
            assert d["decision"] == "need_info"
            assert sorted(m["name"] for m in d["required_claims"]) == sorted(
                frozenset().union(*[v[1] for v in want.values() if v[0] == "need_info"])
            )
            # each member comes from the claims declarations of an owner whose resource needs it
            # (resources of owners who declare one claim differently get one of them)
            owners = {
                p["resource"]["id"]: p["resource"]["owner"]
                for p in (request.get("permissions") or [{"resource": request["resource"]}])
            }
            possible: dict[str, list[dict]] = {}
            for (rid, _), (outcome, missing, _) in want.items():
                if outcome != "need_info":
                    continue
                decl = _declarations(ps.files, owners[rid])
                for name in missing:
                    member = {"name": name, "friendly_name": name}
                    if name in decl:
                        member.update(claim_token_format=[decl[name][1]], issuer=[decl[name][0]])
                    possible.setdefault(name, []).append(member)
            for m in d["required_claims"]:
                assert m in possible[m["name"]], (m, possible[m["name"]])
        elif "submitted" in outcomes:
            assert d["decision"] == "request_submitted"
        elif "granted" in outcomes:
            assert d["decision"] == "partial"
        else:
            assert d["decision"] == "deny"
