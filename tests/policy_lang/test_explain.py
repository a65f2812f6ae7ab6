"""``uma policy eval --explain``: the explanation never disagrees with the decision.

The outcome, deciding rules and missing claims of every explained scope are
compared with the engine's own ScopeResult over many generated requests, and
every node's value with the Kleene combination of its parts.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import policy_lang
from policy_lang import EXPLAIN_STEPS as STEPS
from policy_lang import RequestError, Source, explain, render_explanation

# the random policy generator of the fmt tests (tests/ is on sys.path under pytest)
from tests.policy_lang.test_fmt import parsed, requests_for
from tests.policy_lang.test_fmt import policies as st_policies

ROOT = Path(__file__).resolve().parents[2]
T = "2026-11-27T10:00:00Z"

ALICE = """\
owner "alice"
group family = ["bob@example.com", "carol@example.com"]
claims email, email_verified from "https://idp.example.com" as id_token

permit view, download
  on type "photo-album"
  when claims.email in family and claims.email_verified == true

permit read
  on name like "health/labs/*"
  when claims.role == "physician" and client.id == "clinic-app"
  for 30d

ask view
  on type "photo-album"
  when claims.email ends with "@acme.example"

forbid any scope
  on name like "private/*"
  unless client.id in ["alice-phone", "alice-laptop"]

permit view on name "summer-2026" when claims.email == "dave@example.com" until 2026-12-31T23:59:59Z

forbid download
  on type "photo-album"
  when claims.age < 18 or not (has claims.age_checked)

permit print on any resource when claims.level > 3 or claims.vip == true
ask print on any resource when claims.tier == "gold" and claims.region in ["eu", "us"]
"""


def alice_set():
    return policy_lang.compile_sources([Source("alice.policy", ALICE)])


def request(
    scopes, claims=None, name="summer-2026", rtype="photo-album", client="photo-app", time=T, approvals=None, **extra
):
    req = {
        "resource": {
            "id": "r1",
            "owner": "alice",
            "type": rtype,
            "name": name,
            "scopes": ["view", "download", "print", "read"],
        },
        "scopes": scopes,
        "claims": claims or {},
        "client": {"id": client},
        "time": time,
        "approvals": approvals or [],
    }
    req.update(extra)
    return req


def entry(data, scope):
    return next(e for e in data["explanation"] if e["scope"] == scope)


def candidate(e, ref):
    return next(c for c in e["candidates"] if c["rule"] == ref)


# ---------------------------------------------------------------- agreement


def _kleene(node):
    """A node's value is the Kleene combination of its parts' values (section 3)."""
    parts = node.get("parts", ())
    for part in parts:
        _kleene(part)
    vals = [p["value"] for p in parts]
    missing = sorted({m for p in parts for m in p.get("missing", ())})
    if node["kind"] == "not":
        flip = {"true": "false", "false": "true"}
        assert node["value"] == flip.get(vals[0], vals[0]), node
    elif node["kind"] in ("and", "or"):
        stop, go = ("false", "true") if node["kind"] == "and" else ("true", "false")
        if stop in vals:
            expected = stop
        elif "error" in vals:
            expected = "error"
        elif "unknown" in vals:
            expected = "unknown"
            assert node["missing"] == missing, node
        else:
            expected = go
        assert node["value"] == expected, node


def assert_agrees(ps, req):
    data = explain(ps, req)
    d = ps.decide({**req, "time": data["time"]})
    assert {k: v for k, v in data.items() if k not in ("explanation", "time")} == d.to_json()
    assert len(data["explanation"]) == len(d.results)
    for e, res in zip(data["explanation"], d.results):
        assert (e["resource_id"], e["scope"]) == (res.resource_id, res.scope)
        assert e["outcome"] == res.outcome, (e, res)
        if res.outcome == "need_info":
            assert e["rules"] == [cr.ref for cr in res.rules]
        else:
            assert e["rules"] == ([res.rule.ref] if res.rule else [])
        assert e["missing"] == sorted(res.missing)
        assert e["step"] in STEPS
        for c in e["candidates"]:
            for clause in c.get("clauses", ()):
                _kleene(clause)
    return data


CLAIM_VALUES = {
    "email": ["bob@example.com", "dave@example.com", "x@acme.example", 7, None],
    "email_verified": [True, False, "yes"],
    "role": ["physician", "nurse"],
    "age": [12, 40, "old"],
    "age_checked": [True],
    "level": [1, 5, "high"],
    "vip": [True, False],
    "tier": ["gold", "silver"],
    "region": ["eu", "asia", 3],
}


def random_requests(n: int, seed: int):
    rnd = random.Random(seed)
    for _ in range(n):
        claims = {k: rnd.choice(v) for k, v in CLAIM_VALUES.items() if rnd.random() < 0.6}
        yield request(
            rnd.sample(["view", "download", "print", "read", "edit"], rnd.randint(1, 3)),
            claims,
            name=rnd.choice(["summer-2026", "private/x", "health/labs/1", "other"]),
            rtype=rnd.choice(["photo-album", "doc"]),
            client=rnd.choice(["photo-app", "alice-phone", "clinic-app"]),
            time=rnd.choice([T, "2027-03-01T00:00:00Z"]),
            approvals=rnd.choice(
                [[], [{"scope": "view", "answer": "approved"}], [{"scope": "print", "answer": "denied"}]]
            ),
        )


def test_explanation_agrees_with_the_decision_on_many_requests():
    ps = alice_set()
    steps = set()
    for req in random_requests(400, 1):
        data = assert_agrees(ps, req)
        steps |= {e["step"] for e in data["explanation"]}
    assert steps == {1, 2, 3, 4, 5, 6}  # every step of section 3 was exercised


def test_explanation_agrees_on_the_shipped_policies_with_global_rules():
    ps = policy_lang.load([ROOT / "policies"])
    rnd = random.Random(2)
    for _ in range(200):
        owner = rnd.choice(["alice", "acme"])
        claims = {
            k: rnd.choice(v)
            for k, v in {
                "email": ["bob@example.com", "erin@acme.example"],
                "email_verified": [True],
                "acr": ["mfa", "pwd"],
                "roles": [["editor"], ["editor", "intern"], ["contractor"]],
                "https://acme.example/claims/department": ["engineering", "sales"],
                "employee_id": ["e1"],
                "sub": ["alice"],
            }.items()
            if rnd.random() < 0.5
        }
        req = {
            "resource": {
                "id": rnd.choice(["r1", "vault-router"]),
                "owner": owner,
                "type": rnd.choice(["photo-album", "document", "secret"]),
                "name": rnd.choice(["summer-2026", "engineering/x", "sales/y", "private/z"]),
            },
            "scopes": rnd.sample(["view", "download", "read", "edit", "comment"], 2),
            "claims": claims,
            "client": {"id": rnd.choice(["photo-app", "evil-app", "acme-hr"]), "trusted": rnd.choice([True, False])},
            "time": T,
        }
        assert_agrees(ps, req)


@settings(
    derandomize=True,
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st_policies())
def test_explanation_agrees_on_generated_policies(text):
    pf = parsed(text, "g.policy")
    ps = policy_lang.PolicySet([pf])  # compiled as written, run-time type errors included
    for req in requests_for(pf, 8, len(text)):
        assert_agrees(ps, req)


def test_several_resources_in_one_request():
    ps = alice_set()
    req = {
        "permissions": [
            {
                "resource": {"id": "a", "owner": "alice", "type": "photo-album", "name": "summer-2026"},
                "scopes": ["view", "download"],
            },
            {"resource": {"id": "b", "owner": "alice", "name": "private/b"}, "scopes": ["view"]},
        ],
        "claims": {"email": "bob@example.com", "email_verified": True},
        "time": T,
    }
    data = assert_agrees(ps, req)
    assert [(e["resource_id"], e["scope"]) for e in data["explanation"]] == [
        ("a", "view"),
        ("a", "download"),
        ("b", "view"),
    ]


# ---------------------------------------------------------------- what it shows


def test_shows_unknown_claims_with_their_names():
    data = assert_agrees(alice_set(), request(["view"], {}))
    e = entry(data, "view")
    assert e["outcome"] == "need_info" and e["step"] == 5
    fam = candidate(e, "alice.policy:5")
    assert fam["value"] == "unknown" and fam["missing"] == ["email", "email_verified"]
    when = fam["clauses"][0]
    assert when["clause"] == "when"
    assert when["text"] == "claims.email in family and claims.email_verified == true"
    assert [p["missing"] for p in when["parts"]] == [["email"], ["email_verified"]]
    assert when["parts"][0]["operands"] == [{"text": "claims.email", "is": "missing"}]
    # data minimisation: the alternative lacking the fewest claims is the one asked for
    assert e["rules"] == ["alice.policy:22"] and e["missing"] == ["email"]
    assert candidate(e, "alice.policy:22").get("decisive") is True
    text = render_explanation(data)
    assert "unknown (missing: email, email_verified)" in text
    assert "(claims.email is missing)" in text


def test_shows_a_forbid_beating_a_permit():
    claims = {"email": "bob@example.com", "email_verified": True}
    data = assert_agrees(alice_set(), request(["view"], claims, name="private/holiday"))
    e = entry(data, "view")
    assert data["decision"] == "deny"
    assert e["outcome"] == "denied" and e["step"] == 1 and e["rules"] == ["alice.policy:18"]
    forbid = candidate(e, "alice.policy:18")
    permit = candidate(e, "alice.policy:5")
    assert forbid["value"] == "true" and forbid.get("decisive")
    assert forbid["clauses"][0]["clause"] == "unless" and forbid["clauses"][0]["value"] == "false"
    assert forbid["clauses"][0]["operands"] == [{"text": "client.id", "is": '"photo-app"'}]
    assert permit["value"] == "true" and not permit.get("decisive")
    # forbids are weighed first
    assert [c["effect"] for c in e["candidates"]][:1] == ["forbid"]
    text = render_explanation(data)
    assert "r1 view: denied (step 1: a forbid whose condition is true denies the scope; alice.policy:18)" in text
    assert "* alice.policy:18: forbid -> true" in text
    assert "- alice.policy:5: permit -> true" in text


def test_default_deny_says_no_rule_applied():
    data = assert_agrees(alice_set(), request(["edit"], {"email": "bob@example.com"}, name="other", rtype="doc"))
    e = entry(data, "edit")
    assert e["outcome"] == "denied" and e["step"] == 6 and e["rules"] == []
    assert e["candidates"] == []
    assert "no rule names this resource and scope" in e["because"]
    assert "no candidate rules" in render_explanation(data)
    # candidates exist, none applies
    data = assert_agrees(alice_set(), request(["view"], {"email": "eve@example.com", "email_verified": True}))
    e = entry(data, "view")
    assert e["step"] == 6 and e["because"] == STEPS[6]
    assert all(c["value"] == "false" for c in e["candidates"])


def test_permit_step_3_with_expiry():
    data = assert_agrees(
        alice_set(), request(["read"], {"role": "physician"}, name="health/labs/1", rtype="lab", client="clinic-app")
    )
    e = entry(data, "read")
    assert e["step"] == 3 and e["outcome"] == "granted"
    assert data["granted"][0]["expires_at"] == "2026-12-27T10:00:00Z"
    assert "(expires 2026-12-27T10:00:00Z)" in render_explanation(data)


@pytest.mark.parametrize(
    "approvals,outcome",
    [
        ([], "submitted"),
        ([{"scope": "view", "answer": "approved"}], "granted"),
        ([{"scope": "view", "answer": "denied"}], "denied"),
    ],
)
def test_ask_step_4(approvals, outcome):
    data = assert_agrees(alice_set(), request(["view"], {"email": "x@acme.example"}, approvals=approvals))
    e = entry(data, "view")
    assert e["step"] == 4 and e["outcome"] == outcome and e["rules"] == ["alice.policy:14"]


def test_forbid_unknown_step_2_needs_its_claims_first():
    claims = {"email": "bob@example.com", "email_verified": True}
    data = assert_agrees(alice_set(), request(["download"], claims))
    e = entry(data, "download")
    assert e["step"] == 2 and e["outcome"] == "need_info"
    assert e["missing"] == ["age", "age_checked"]
    forbid = candidate(e, "alice.policy:24")
    when = forbid["clauses"][0]
    assert when["text"] == "claims.age < 18 or not has claims.age_checked"
    assert when["parts"][1]["text"] == "not has claims.age_checked"
    assert when["parts"][1]["parts"][0]["value"] == "unknown"


def test_type_error_in_a_forbid_is_shown_and_fails_closed():
    claims = {"email": "bob@example.com", "email_verified": True, "age": "old", "age_checked": True}
    data = assert_agrees(alice_set(), request(["download"], claims))
    e = entry(data, "download")
    assert e["outcome"] == "denied" and e["step"] == 1 and "fail closed" in e["because"]
    forbid = candidate(e, "alice.policy:24")
    assert forbid["value"] == "error" and "cannot compare" in forbid["error"]
    assert data["errors"] and data["errors"][0]["rule"] == "alice.policy:24"
    assert "error: cannot compare" in render_explanation(data)


def test_expired_until_rule_is_marked():
    data = assert_agrees(alice_set(), request(["view"], {"email": "dave@example.com"}, time="2027-03-01T00:00:00Z"))
    c = candidate(entry(data, "view"), "alice.policy:22")
    assert c["value"] == "expired" and "2026-12-31T23:59:59Z" in c["note"]
    assert "clauses" not in c


def test_claims_from_another_issuer_are_listed_as_ignored():
    req = request(
        ["view"],
        {"email": "bob@example.com", "email_verified": True},
        claim_sources={"email": {"issuer": "https://evil.example", "format": "id_token"}},
    )
    data = assert_agrees(alice_set(), req)
    e = entry(data, "view")
    assert e["ignored_claims"] == ["email"] and e["outcome"] == "need_info"
    assert "claims ignored (not from the declared issuer or format): email" in render_explanation(data)


def test_request_without_time_uses_one_instant():
    req = request(["view"], {"email": "bob@example.com", "email_verified": True})
    del req["time"]
    data = explain(alice_set(), req)
    assert data["time"].endswith("Z") and data["decision"] == "permit"


def test_malformed_request_raises_request_error():
    with pytest.raises(RequestError):
        explain(alice_set(), {"resource": {"id": "r1", "owner": "alice"}, "scopes": ["view"], "bogus": 1})
