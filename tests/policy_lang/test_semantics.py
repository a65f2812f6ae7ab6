"""Section 3 of the language page ("Semantics"), one test per step and rule.

Every test states a policy, a request and the decision the page prescribes,
and checks the engine's JSON decision against it. Names follow the page:
unknown claims, Kleene logic, the per-scope steps 1-6, the request-level
order, required_claims, claim_sources, expiry, global rules, owners, reasons,
the default time and glob ``like``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import policy_lang
from policy_lang import Source
from policy_lang import values as V
from policy_lang.values import ID_TOKEN_FORMAT, JWT_FORMAT

T = "2026-11-27T10:00:00Z"
T_DT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def policy(text: str, name: str = "alice.policy") -> policy_lang.PolicySet:
    return policy_lang.loads(text, name)


def owner_policy(body: str, name: str = "alice.policy") -> policy_lang.PolicySet:
    return policy('owner "alice"\n' + body, name)


def request(
    scopes=("view",), claims: dict | None = None, client: dict | None = None, resource: dict | None = None, **extra: Any
) -> dict:
    res = {
        "id": "r1",
        "owner": "alice",
        "type": "photo-album",
        "name": "summer-2026",
        "scopes": ["view", "download", "print"],
    }
    res.update(resource or {})
    out = {
        "resource": res,
        "scopes": list(scopes),
        "claims": claims or {},
        "client": client or {"id": "photo-app"},
        "time": T,
    }
    out.update(extra)
    return out


def decide(ps: policy_lang.PolicySet, **kw: Any) -> dict:
    return ps.decide(request(**kw)).to_json()


def needed(d: dict) -> set[str]:
    return {m["name"] for m in d["required_claims"]}


def rules_of(d: dict) -> list[tuple[str, str | None]]:
    return [(r["effect"], r["rule"]) for r in d["reasons"]]


# ---------------------------------------------------------------- missing claims are unknown


def test_missing_claim_in_permit_is_unknown_not_false():
    ps = owner_policy("permit view on any resource when claims.age >= 18\n")
    d = decide(ps)
    assert d["decision"] == "need_info"
    assert needed(d) == {"age"}
    assert d["reasons"][0]["missing"] == ["age"]
    assert decide(ps, claims={"age": 20})["decision"] == "permit"
    assert decide(ps, claims={"age": 12})["decision"] == "deny"


def test_missing_claim_in_forbid_is_unknown_not_false():
    ps = owner_policy("permit view on any resource\nforbid view on any resource when claims.age < 18\n")
    d = decide(ps)
    # a forbid that cannot be ruled out is not ignored: the claim is needed first
    assert d["decision"] == "need_info"
    assert needed(d) == {"age"}
    assert ("forbid", "alice.policy:3") in rules_of(d)
    assert decide(ps, claims={"age": 30})["decision"] == "permit"
    assert decide(ps, claims={"age": 10})["decision"] == "deny"


def test_missing_claim_in_ask_is_unknown_not_false():
    ps = owner_policy('ask view on any resource when claims.email ends with "@acme.example"\n')
    d = decide(ps)
    assert d["decision"] == "need_info"
    assert needed(d) == {"email"}
    assert rules_of(d) == [("ask", "alice.policy:2")]
    assert decide(ps, claims={"email": "x@acme.example"})["decision"] == "request_submitted"
    assert decide(ps, claims={"email": "x@other.example"})["decision"] == "deny"


def test_claim_with_null_value_is_missing():
    ps = owner_policy('permit view on any resource when claims.email == "bob@example.com"\n')
    d = decide(ps, claims={"email": None})
    assert d["decision"] == "need_info" and needed(d) == {"email"}


def test_missing_nested_claim_is_unknown_by_its_top_level_name():
    ps = owner_policy('permit view on any resource when claims.address.country == "DE"\n')
    assert needed(decide(ps)) == {"address"}
    assert needed(decide(ps, claims={"address": {"city": "Berlin"}})) == {"address"}
    assert decide(ps, claims={"address": {"country": "DE"}})["decision"] == "permit"
    assert decide(ps, claims={"address": {"country": "FR"}})["decision"] == "deny"


# Kleene logic: TRUE, FALSE and UNKNOWN of claims.a == 1 are produced by a=1, a=2 and no a.
_TRUTH_CLAIM = {"T": 1, "F": 2, "U": None}


def _claims_for(**truths: str) -> dict:
    return {name: _TRUTH_CLAIM[t] for name, t in truths.items() if _TRUTH_CLAIM[t] is not None}


def _kleene_and(a: str, b: str) -> str:
    if "F" in (a, b):
        return "F"
    if "U" in (a, b):
        return "U"
    return "T"


def _kleene_or(a: str, b: str) -> str:
    if "T" in (a, b):
        return "T"
    if "U" in (a, b):
        return "U"
    return "F"


_OUTCOME = {"T": "permit", "F": "deny", "U": "need_info"}
_PAIRS = [(a, b) for a in "TFU" for b in "TFU"]


@pytest.mark.parametrize("a,b", _PAIRS)
def test_three_valued_and_carries_union_of_missing_names(a, b):
    ps = owner_policy("permit view on any resource when claims.a == 1 and claims.b == 1\n")
    d = decide(ps, claims=_claims_for(a=a, b=b))
    want = _kleene_and(a, b)
    assert d["decision"] == _OUTCOME[want]
    if want == "U":
        assert needed(d) == {n for n, t in (("a", a), ("b", b)) if t == "U"}


@pytest.mark.parametrize("a,b", _PAIRS)
def test_three_valued_or_carries_union_of_missing_names(a, b):
    ps = owner_policy("permit view on any resource when claims.a == 1 or claims.b == 1\n")
    d = decide(ps, claims=_claims_for(a=a, b=b))
    want = _kleene_or(a, b)
    assert d["decision"] == _OUTCOME[want]
    if want == "U":
        assert needed(d) == {n for n, t in (("a", a), ("b", b)) if t == "U"}


@pytest.mark.parametrize("a", "TFU")
def test_three_valued_not_keeps_unknown(a):
    ps = owner_policy("permit view on any resource when not claims.a == 1\n")
    d = decide(ps, claims=_claims_for(a=a))
    assert d["decision"] == _OUTCOME[{"T": "F", "F": "T", "U": "U"}[a]]
    if a == "U":
        assert needed(d) == {"a"}


def test_kleene_functions_match_the_truth_tables():
    u_a, u_b = V.Unknown({"a"}), V.Unknown({"b"})
    assert V.k_and((True, u_a)) == u_a and isinstance(V.k_and((True, u_a)), V.Unknown)
    assert V.k_and((False, u_a)) is False
    assert V.k_and((u_a, u_b)) == V.Unknown({"a", "b"})
    assert V.k_or((True, u_a)) is True
    assert V.k_or((False, u_a)) == u_a
    assert V.k_or((u_a, u_b)) == V.Unknown({"a", "b"})
    assert V.k_not(u_a) == u_a
    assert V.k_not(True) is False and V.k_not(False) is True


def test_nested_kleene_expression_unions_missing_names():
    ps = owner_policy(
        "permit view on any resource\n"
        "  when (claims.a == 1 or claims.b == 1) and not (claims.c == 1 and claims.d == 1)\n"
    )
    d = decide(ps)
    assert d["decision"] == "need_info"
    assert needed(d) == {"a", "b", "c", "d"}
    # c false settles the not(...) part: only a and b remain unknown
    assert needed(decide(ps, claims={"c": 2})) == {"a", "b"}
    assert decide(ps, claims={"b": 1, "c": 2})["decision"] == "permit"


# ---------------------------------------------------------------- has


def test_has_claim_is_unknown_while_absent():
    ps = owner_policy("permit view on any resource when has claims.x\n")
    d = decide(ps)
    assert d["decision"] == "need_info" and needed(d) == {"x"}
    assert decide(ps, claims={"x": False})["decision"] == "permit"
    # `not has claims.x` never becomes true by withholding x
    ps2 = owner_policy("permit view on any resource when not has claims.x\n")
    d2 = decide(ps2)
    assert d2["decision"] == "need_info" and needed(d2) == {"x"}
    assert decide(ps2, claims={"x": 1})["decision"] == "deny"


def test_has_client_and_resource_attribute_is_true_or_false():
    ps = owner_policy(
        "permit view on any resource when has client.logo_uri\n"
        "permit download on any resource when has resource.description\n"
    )
    assert decide(ps, client={"id": "c", "logo_uri": "https://c/logo.png"})["decision"] == "permit"
    assert decide(ps, client={"id": "c"})["decision"] == "deny"
    assert decide(ps, scopes=["download"], resource={"description": "d"})["decision"] == "permit"
    assert decide(ps, scopes=["download"])["decision"] == "deny"


# ---------------------------------------------------------------- absent attributes

_ABSENT_TESTS = [
    'client.tier == "gold"',
    'client.tier != "gold"',
    "client.level < 3",
    "client.level >= 3",
    'client.tier in ["gold", "silver"]',
    'client.tier not in ["gold", "silver"]',
    'client.tags contains "x"',
    'client.tier starts with "g"',
    'client.tier ends with "d"',
    'client.tier like "g*"',
    'resource.description == "x"',
    'resource.description != "x"',
    'resource.description contains "x"',
    'resource.description like "*"',
    '"x" in client.tags',
    '"x" not in client.tags',
]


@pytest.mark.parametrize("cond", _ABSENT_TESTS)
def test_absent_resource_and_client_attributes_compare_false(cond):
    ps = owner_policy(
        f"permit view on any resource when {cond}\n"
        f"forbid download on any resource when {cond}\n"
        "permit download on any resource\n"
    )
    d = decide(ps, scopes=["view"], client={"id": "c"}, resource={"description": None})
    assert d["decision"] == "deny"
    assert d["required_claims"] == [] and d["errors"] == []
    # in a forbid, false means the forbid does not apply
    assert decide(ps, scopes=["download"], client={"id": "c"})["decision"] == "permit"


def test_present_client_metadata_is_read():
    ps = owner_policy('permit view on any resource when client.tier == "gold" and "x" in client.tags\n')
    assert decide(ps, client={"id": "c", "tier": "gold", "tags": ["x", "y"]})["decision"] == "permit"
    assert decide(ps, client={"id": "c", "tier": "gold", "tags": ["y"]})["decision"] == "deny"


# ---------------------------------------------------------------- run-time type mismatch


def test_runtime_type_mismatch_makes_permit_not_apply_and_is_reported():
    ps = owner_policy("permit view on any resource when claims.age >= 18\n")
    d = decide(ps, claims={"age": "eighteen"})
    assert d["decision"] == "deny"
    assert d["required_claims"] == []
    assert len(d["errors"]) == 1
    err = d["errors"][0]
    assert err["resource_id"] == "r1" and err["scope"] == "view" and err["rule"] == "alice.policy:2"
    assert "compare" in err["message"]


def test_runtime_type_mismatch_makes_ask_not_apply_and_is_reported():
    ps = owner_policy('ask view on any resource when claims.email ends with "@acme.example"\n')
    d = decide(ps, claims={"email": 42})
    assert d["decision"] == "deny"
    assert [e["rule"] for e in d["errors"]] == ["alice.policy:2"]


def test_runtime_type_mismatch_makes_forbid_apply_fail_closed_and_is_reported():
    ps = owner_policy("permit view on any resource\nforbid view on any resource when claims.level > 3\n")
    d = decide(ps, claims={"level": "high"})
    assert d["decision"] == "deny"
    assert rules_of(d) == [("forbid", "alice.policy:3")]
    assert [e["rule"] for e in d["errors"]] == ["alice.policy:3"]
    assert decide(ps, claims={"level": 1})["decision"] == "permit"


def test_runtime_type_mismatch_under_not_and_unless_still_fails_closed():
    ps = owner_policy(
        'permit view on any resource\nforbid view on any resource unless claims.groups contains "staff"\n'
    )
    d = decide(ps, claims={"groups": 7})
    assert d["decision"] == "deny" and d["errors"]
    assert decide(ps, claims={"groups": ["staff"]})["decision"] == "permit"


def test_runtime_type_mismatch_in_one_permit_leaves_another_permit_granting():
    ps = owner_policy(
        "permit view on any resource when claims.age >= 18\n"
        'permit view on any resource when claims.email == "bob@example.com"\n'
    )
    d = decide(ps, claims={"age": "x", "email": "bob@example.com"})
    assert d["decision"] == "permit"
    assert [e["rule"] for e in d["errors"]] == ["alice.policy:2"]


# ---------------------------------------------------------------- per-scope steps


def test_step1_forbid_true_denies_beating_permit_and_ask():
    ps = owner_policy(
        "permit view on any resource\n"
        "ask view on any resource\n"
        "forbid view on any resource when claims.blocked == true\n"
    )
    d = decide(ps, claims={"blocked": True}, approvals=[{"scope": "view", "answer": "approved"}])
    assert d["decision"] == "deny"
    assert rules_of(d) == [("forbid", "alice.policy:4")]


def test_step1_forbid_true_beats_an_earlier_unknown_forbid():
    ps = owner_policy(
        "permit view on any resource\n"
        "forbid view on any resource when claims.age < 18\n"
        'forbid view on any resource when client.id == "bad-app"\n'
    )
    d = decide(ps, client={"id": "bad-app"})
    assert d["decision"] == "deny"
    assert rules_of(d) == [("forbid", "alice.policy:4")]


def test_step2_forbid_unknown_needs_info_even_when_a_permit_is_true():
    ps = owner_policy('permit view on any resource\nforbid view on any resource when claims.country in ["XX", "YY"]\n')
    d = decide(ps)
    assert d["decision"] == "need_info"
    assert needed(d) == {"country"}
    assert rules_of(d) == [("forbid", "alice.policy:3")]
    assert decide(ps, claims={"country": "DE"})["decision"] == "permit"


def test_step3_permit_true_grants():
    ps = owner_policy(
        'permit view on any resource when claims.email == "bob@example.com"\n'
        'forbid view on any resource when claims.email == "eve@example.com"\n'
    )
    d = decide(ps, claims={"email": "bob@example.com"})
    assert d["decision"] == "permit"
    assert d["granted"] == [{"resource_id": "r1", "scopes": ["view"], "expires_at": None}]
    assert rules_of(d) == [("permit", "alice.policy:2")]


def test_step3_permit_true_beats_ask_true():
    ps = owner_policy("ask view on any resource\npermit view on any resource\n")
    d = decide(ps)
    assert d["decision"] == "permit"
    assert rules_of(d) == [("permit", "alice.policy:3")]


@pytest.mark.parametrize(
    "answer,decision,bucket",
    [
        ("approved", "permit", "granted"),
        ("denied", "deny", "denied"),
        (None, "request_submitted", "submitted"),
    ],
)
def test_step4_ask_true_follows_the_owners_approval_G_42(answer, decision, bucket):
    ps = owner_policy('ask view on any resource when claims.email ends with "@acme.example"\n')
    approvals = [] if answer is None else [{"scope": "view", "answer": answer}]
    d = decide(ps, claims={"email": "joe@acme.example"}, approvals=approvals)
    assert d["decision"] == decision
    assert [e["scopes"] for e in d[bucket]] == [["view"]]
    assert rules_of(d) == [("ask", "alice.policy:2")]


def test_step4_approval_of_another_scope_does_not_count():
    ps = owner_policy("ask view on any resource\n")
    d = decide(ps, approvals=[{"scope": "download", "answer": "approved"}])
    assert d["decision"] == "request_submitted"


def test_step4_ask_true_comes_before_unknown_permits():
    ps = owner_policy("permit view on any resource when claims.vip == true\nask view on any resource\n")
    d = decide(ps)
    assert d["decision"] == "request_submitted"


def test_step5_unknown_permit_needs_the_cheapest_alternative_data_minimisation():
    ps = owner_policy(
        "permit view on any resource when claims.a == 1 and claims.b == 1 and claims.c == 1\n"
        'permit view on any resource when claims.email == "bob@example.com"\n'
        "ask view on any resource when claims.d == 1 and claims.e == 1\n"
    )
    d = decide(ps)
    assert d["decision"] == "need_info"
    assert needed(d) == {"email"}
    assert rules_of(d) == [("permit", "alice.policy:3")]


def test_step5_cheapest_alternative_may_be_an_ask():
    ps = owner_policy(
        "permit view on any resource when claims.a == 1 and claims.b == 1\n"
        "ask view on any resource when claims.c == 1\n"
    )
    d = decide(ps)
    assert needed(d) == {"c"}
    assert rules_of(d) == [("ask", "alice.policy:3")]


def test_step5_counts_only_claims_still_missing():
    ps = owner_policy(
        "permit view on any resource when claims.a == 1 and claims.b == 1\n"
        "permit view on any resource when claims.c == 1 and claims.d == 1 and claims.e == 1\n"
    )
    assert needed(decide(ps)) == {"a", "b"}
    # with c and d presented, the second alternative lacks only e
    assert needed(decide(ps, claims={"c": 1, "d": 1})) == {"e"}


def test_step5_adds_the_claims_of_unknown_forbids():
    ps = owner_policy(
        "permit view on any resource when claims.age >= 18\nforbid view on any resource when claims.banned == true\n"
    )
    d = decide(ps)
    assert d["decision"] == "need_info"
    assert needed(d) == {"age", "banned"}
    assert {r["effect"] for r in d["reasons"]} == {"forbid", "permit"}


def test_step6_default_deny_without_a_matching_rule_G_26():
    ps = owner_policy('permit download on any resource\npermit view on name "other"\n')
    d = decide(ps)
    assert d["decision"] == "deny"
    assert d["denied"] == [{"resource_id": "r1", "scopes": ["view"]}]
    assert d["reasons"] == [{"resource_id": "r1", "scope": "view", "effect": "deny", "rule": None}]


def test_step6_default_deny_when_every_condition_is_false_G_26():
    ps = owner_policy(
        'permit view on any resource when claims.email == "bob@example.com"\n'
        'ask view on any resource when claims.email ends with "@acme.example"\n'
    )
    assert decide(ps, claims={"email": "eve@example.com"})["decision"] == "deny"


# ---------------------------------------------------------------- request level

REQ_POLICY = """\
permit view on any resource
ask print on any resource
permit download on any resource when claims.age >= 18
forbid delete on any resource
"""


@pytest.mark.parametrize(
    "scopes,claims,decision",
    [
        (["view"], {"age": 20}, "permit"),
        (["view", "download"], {"age": 20}, "permit"),
        (["view", "download", "print", "delete"], {}, "need_info"),
        (["view", "print", "delete"], {}, "request_submitted"),
        (["view", "delete"], {}, "partial"),
        (["view", "download"], {"age": 5}, "partial"),
        (["delete"], {}, "deny"),
        (["delete", "download"], {"age": 5}, "deny"),
    ],
)
def test_request_level_order_permit_need_info_submitted_partial_deny_G_22_G_23(scopes, claims, decision):
    ps = owner_policy(REQ_POLICY)
    d = decide(ps, scopes=scopes, claims=claims)
    assert d["decision"] == decision
    assert len(d["reasons"]) >= len(scopes)


def test_request_partial_grants_only_the_granted_scopes_G_23():
    ps = owner_policy(REQ_POLICY)
    d = decide(ps, scopes=["view", "download", "delete"], claims={"age": 30})
    assert d["decision"] == "partial"
    assert d["granted"] == [{"resource_id": "r1", "scopes": ["view", "download"], "expires_at": None}]
    assert d["denied"] == [{"resource_id": "r1", "scopes": ["delete"]}]


def test_request_level_order_over_several_resources_permissions_form_G_22_G_23():
    ps = owner_policy(REQ_POLICY + 'permit share on resource "r2" when claims.team == "x"\n')

    def perm(rid: str, scopes: list[str], approvals=None) -> dict:
        p = {"resource": {"id": rid, "owner": "alice"}, "scopes": scopes}
        if approvals is not None:
            p["approvals"] = approvals
        return p

    def run(*perms: dict, claims=None) -> dict:
        return ps.decide({"permissions": list(perms), "claims": claims or {}, "time": T}).to_json()

    d = run(perm("r1", ["view"]), perm("r2", ["view", "download"]), claims={"age": 40})
    assert d["decision"] == "permit"
    assert d["granted"] == [
        {"resource_id": "r1", "scopes": ["view"], "expires_at": None},
        {"resource_id": "r2", "scopes": ["view", "download"], "expires_at": None},
    ]
    d = run(perm("r1", ["view"]), perm("r2", ["share"]))
    assert d["decision"] == "need_info" and needed(d) == {"team"}
    d = run(perm("r1", ["view"]), perm("r2", ["print"]))
    assert d["decision"] == "request_submitted"
    assert d["submitted"] == [{"resource_id": "r2", "scopes": ["print"]}]
    d = run(perm("r1", ["view"]), perm("r2", ["print"], [{"scope": "print", "answer": "approved"}]))
    assert d["decision"] == "permit"
    d = run(perm("r1", ["delete"]), perm("r2", ["print"], [{"scope": "print", "answer": "approved"}]))
    assert d["decision"] == "partial"
    assert d["granted"] == [{"resource_id": "r2", "scopes": ["print"], "expires_at": None}]
    assert d["denied"] == [{"resource_id": "r1", "scopes": ["delete"]}]
    d = run(perm("r1", ["delete"]), perm("r2", ["print"], [{"scope": "print", "answer": "denied"}]))
    assert d["decision"] == "deny"
    # approvals belong to their own permission only
    d = run(perm("r1", ["print"]), perm("r2", ["print"], [{"scope": "print", "answer": "approved"}]))
    assert d["decision"] == "request_submitted"
    assert d["submitted"] == [{"resource_id": "r1", "scopes": ["print"]}]


# ---------------------------------------------------------------- required_claims

CLAIMS_DECL = """\
owner "alice"
claims email, email_verified from "https://idp.example.com" as id_token
claims age from "https://gov.example" as jwt
claims "https://example.com/claims/role" from "https://hr.example" as "urn:example:hr-token"
permit view on any resource when claims.email == "bob@example.com" and claims.email_verified == true
permit print on any resource when claims.age >= 18
permit download on any resource when claims["https://example.com/claims/role"] == "physician"
permit share on any resource when claims.nickname == "bobby"
"""


def test_required_claims_are_built_from_claims_declarations_G_40():
    ps = policy(CLAIMS_DECL)
    d = decide(ps, scopes=["view", "print", "download", "share"])
    assert d["decision"] == "need_info"
    by_name = {m["name"]: m for m in d["required_claims"]}
    assert by_name["email"] == {
        "name": "email",
        "friendly_name": "email",
        "claim_token_format": [ID_TOKEN_FORMAT],
        "issuer": ["https://idp.example.com"],
    }
    assert by_name["email_verified"]["claim_token_format"] == [ID_TOKEN_FORMAT]
    assert by_name["age"] == {
        "name": "age",
        "friendly_name": "age",
        "claim_token_format": [JWT_FORMAT],
        "issuer": ["https://gov.example"],
    }
    role = by_name["https://example.com/claims/role"]
    assert role["claim_token_format"] == ["urn:example:hr-token"]
    assert role["issuer"] == ["https://hr.example"]
    # an undeclared claim: its name only
    assert by_name["nickname"] == {"name": "nickname", "friendly_name": "nickname"}
    assert ID_TOKEN_FORMAT == "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
    assert JWT_FORMAT == "urn:ietf:params:oauth:token-type:jwt"


def test_required_claims_use_the_resource_owners_declarations_when_a_global_rule_asks():
    g = 'global\nclaims age from "https://gov.example" as jwt\nforbid any scope on any resource when claims.age < 18\n'
    a = (
        'owner "alice"\nclaims email from "https://idp.example.com" as id_token\n'
        'permit view on any resource when claims.email == "bob@example.com"\n'
    )
    ps = policy_lang.compile_sources([Source("global.policy", g), Source("alice.policy", a)])
    d = decide(ps)
    assert d["decision"] == "need_info"
    by_name = {m["name"]: m for m in d["required_claims"]}
    assert by_name["age"]["issuer"] == ["https://gov.example"]
    assert by_name["email"]["issuer"] == ["https://idp.example.com"]
    assert by_name["email"]["claim_token_format"] == [ID_TOKEN_FORMAT]
    # a global permit reading a claim the owner declared: the owner's declaration
    g2 = 'global\npermit view on any resource when claims.email == "root@example.com"\n'
    a2 = 'owner "alice"\nclaims email from "https://idp.example.com" as id_token\n'
    ps2 = policy_lang.compile_sources([Source("global.policy", g2), Source("alice.policy", a2)])
    d2 = decide(ps2)
    assert d2["required_claims"] == [
        {
            "name": "email",
            "friendly_name": "email",
            "claim_token_format": [ID_TOKEN_FORMAT],
            "issuer": ["https://idp.example.com"],
        }
    ]
    # an owner without a file of their own gets the global declarations
    d3 = decide(ps, resource={"owner": "carol"})
    assert d3["required_claims"] == [
        {"name": "age", "friendly_name": "age", "claim_token_format": [JWT_FORMAT], "issuer": ["https://gov.example"]}
    ]


# ---------------------------------------------------------------- claim_sources


def test_claim_from_another_issuer_is_not_that_claim():
    ps = policy(CLAIMS_DECL)
    good = {
        "email": {"issuer": "https://idp.example.com", "format": "id_token"},
        "email_verified": {"issuer": "https://idp.example.com", "format": "id_token"},
    }
    claims = {"email": "bob@example.com", "email_verified": True}
    assert decide(ps, claims=claims, claim_sources=good)["decision"] == "permit"
    # the same format named by its URI is the same format
    uri = {k: {"issuer": v["issuer"], "format": ID_TOKEN_FORMAT} for k, v in good.items()}
    assert decide(ps, claims=claims, claim_sources=uri)["decision"] == "permit"
    bad_issuer = dict(good, email={"issuer": "https://evil.example", "format": "id_token"})
    d = decide(ps, claims=claims, claim_sources=bad_issuer)
    assert d["decision"] == "need_info" and needed(d) == {"email"}
    bad_format = dict(good, email={"issuer": "https://idp.example.com", "format": "jwt"})
    d = decide(ps, claims=claims, claim_sources=bad_format)
    assert d["decision"] == "need_info" and needed(d) == {"email"}
    # claims without a source entry are taken as given
    assert decide(ps, claims=claims)["decision"] == "permit"


def test_claim_sources_do_not_touch_undeclared_claims():
    ps = policy(CLAIMS_DECL)
    d = decide(
        ps,
        scopes=["share"],
        claims={"nickname": "bobby"},
        claim_sources={"nickname": {"issuer": "https://anyone.example", "format": "jwt"}},
    )
    assert d["decision"] == "permit"


def test_a_claim_from_another_issuer_cannot_satisfy_a_forbid_either():
    ps = owner_policy(
        'claims age from "https://gov.example" as jwt\n'
        "permit view on any resource\n"
        "forbid view on any resource when claims.age < 18\n"
    )
    d = decide(ps, claims={"age": 30}, claim_sources={"age": {"issuer": "https://self.example"}})
    assert d["decision"] == "need_info" and needed(d) == {"age"}
    ok = decide(ps, claims={"age": 30}, claim_sources={"age": {"issuer": "https://gov.example"}})
    assert ok["decision"] == "permit"


# ---------------------------------------------------------------- expiry


def test_for_duration_expiry_is_request_time_plus_duration_G_32():
    ps = owner_policy("permit view on any resource for 30d\n")
    d = decide(ps)
    assert d["granted"][0]["expires_at"] == "2026-12-27T10:00:00Z"
    for text, delta in (
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
    ):
        got = decide(owner_policy(f"permit view on any resource for {text}\n"))
        want = (T_DT + delta).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert got["granted"][0]["expires_at"] == want


def test_until_expiry_is_the_fixed_time_G_32():
    ps = owner_policy("permit view on any resource until 2026-12-31T23:59:59Z\n")
    assert decide(ps)["granted"][0]["expires_at"] == "2026-12-31T23:59:59Z"
    ps2 = owner_policy("permit view on any resource until 2027-01-01T01:00:00+02:00\n")
    assert decide(ps2)["granted"][0]["expires_at"] == "2026-12-31T23:00:00Z"


@pytest.mark.parametrize("effect", ["permit", "ask", "forbid"])
def test_rules_past_their_until_no_longer_apply(effect):
    ps = owner_policy(
        f"{effect} view on any resource until 2026-11-27T09:59:59Z\n"
        + ("permit view on any resource\n" if effect == "forbid" else "")
    )
    d = decide(ps)
    assert d["decision"] == ("permit" if effect == "forbid" else "deny")
    # before (and at) its end it applies
    before = decide(ps, time="2026-11-27T09:59:59Z")["decision"]
    assert before == {"permit": "permit", "ask": "request_submitted", "forbid": "deny"}[effect]


def test_expiry_is_the_latest_bound_among_matching_permits():
    ps = owner_policy(
        "permit view on any resource for 30d\n"
        "permit view on any resource until 2027-06-01T00:00:00Z\n"
        "permit view on any resource when claims.x == 1 for 400d\n"
    )
    # the third is unknown or false, so it does not count: the later of 30 days and 2027-06-01
    assert decide(ps)["granted"][0]["expires_at"] == "2027-06-01T00:00:00Z"
    d = decide(ps, claims={"x": 2})
    assert d["granted"][0]["expires_at"] == "2027-06-01T00:00:00Z"
    d = decide(ps, claims={"x": 1})
    assert d["granted"][0]["expires_at"] == (T_DT + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_unbounded_matching_permit_makes_the_grant_unbounded():
    ps = owner_policy("permit view on any resource for 30d\npermit view on any resource\n")
    assert decide(ps)["granted"][0]["expires_at"] is None


def test_a_resources_expiry_is_the_earliest_over_its_granted_scopes():
    ps = owner_policy("permit view on any resource for 30d\npermit download on any resource for 1d\n")
    d = decide(ps, scopes=["view", "download"])
    assert d["granted"] == [{"resource_id": "r1", "scopes": ["view", "download"], "expires_at": "2026-11-28T10:00:00Z"}]


def test_an_approved_ask_is_bounded_by_its_own_for():
    ps = owner_policy("ask view on any resource for 7d\n")
    d = decide(ps, approvals=[{"scope": "view", "answer": "approved"}])
    assert d["decision"] == "permit"
    assert d["granted"][0]["expires_at"] == "2026-12-04T10:00:00Z"


# ---------------------------------------------------------------- global and owners

GLOBAL = """\
global
forbid any scope on name like "private/*" unless client.id in ["owner-device"]
permit view on type "public-doc"
"""


def _with_global(owner_text: str) -> policy_lang.PolicySet:
    return policy_lang.compile_sources([Source("global.policy", GLOBAL), Source("alice.policy", owner_text)])


def test_global_forbid_beats_an_owners_permit():
    ps = _with_global('owner "alice"\npermit any scope on any resource\n')
    d = decide(ps, resource={"name": "private/diary"})
    assert d["decision"] == "deny"
    assert rules_of(d) == [("forbid", "global.policy:2")]
    assert decide(ps, resource={"name": "private/diary"}, client={"id": "owner-device"})["decision"] == "permit"
    assert decide(ps, resource={"name": "public/x"})["decision"] == "permit"


def test_global_permits_apply_to_every_owners_resources():
    ps = _with_global('owner "alice"\nforbid download on any resource\n')
    for owner in ("alice", "bob", "nobody-with-a-file"):
        d = decide(ps, resource={"owner": owner, "type": "public-doc"})
        assert d["decision"] == "permit"
        assert rules_of(d) == [("permit", "global.policy:3")]


def test_other_owners_rules_never_touch_a_resource():
    ps = policy_lang.compile_sources(
        [
            Source("alice.policy", 'owner "alice"\npermit any scope on any resource\n'),
            Source("bob.policy", 'owner "bob"\nforbid any scope on any resource\n'),
        ]
    )
    # alice's permit on `any resource` does not grant bob's resource
    d = decide(ps, resource={"owner": "bob"})
    assert d["decision"] == "deny"
    assert rules_of(d) == [("forbid", "bob.policy:2")]
    d = decide(ps, resource={"owner": "carol"})
    assert d["decision"] == "deny"
    assert rules_of(d) == [("deny", None)]
    # bob's forbid does not touch alice's resource
    assert decide(ps, resource={"owner": "alice"})["decision"] == "permit"


# ---------------------------------------------------------------- reasons


def test_decisions_always_name_the_rules():
    ps = owner_policy(REQ_POLICY)
    d = decide(ps, scopes=["view", "download", "print", "delete", "other"])
    by_scope: dict[str, list[dict]] = {}
    for r in d["reasons"]:
        by_scope.setdefault(r["scope"], []).append(r)
    assert set(by_scope) == {"view", "download", "print", "delete", "other"}
    assert by_scope["view"] == [{"resource_id": "r1", "scope": "view", "effect": "permit", "rule": "alice.policy:2"}]
    assert by_scope["print"][0]["rule"] == "alice.policy:3"
    assert by_scope["download"][0] == {
        "resource_id": "r1",
        "scope": "download",
        "effect": "permit",
        "rule": "alice.policy:4",
        "missing": ["age"],
    }
    assert by_scope["delete"][0]["rule"] == "alice.policy:5"
    assert by_scope["other"] == [{"resource_id": "r1", "scope": "other", "effect": "deny", "rule": None}]


# ---------------------------------------------------------------- time


def test_now_reads_the_request_time():
    ps = owner_policy("permit view on any resource when now < 2027-01-01\n")
    assert decide(ps, time="2026-12-31T23:59:59Z")["decision"] == "permit"
    assert decide(ps, time="2027-01-01T00:00:00Z")["decision"] == "deny"
    assert decide(ps, time="2027-01-01T01:00:00+02:00")["decision"] == "permit"


def test_time_defaults_to_now():
    ps = owner_policy(
        "permit view on any resource when now >= 2020-01-01 and now < 2200-01-01\n"
        "permit download on any resource until 2020-01-01\n"
        "permit print on any resource for 1h\n"
    )
    req = request(scopes=["view"])
    del req["time"]
    assert ps.decide(req).decision == "permit"
    req["scopes"] = ["download"]
    assert ps.decide(req).decision == "deny"
    req["scopes"] = ["print"]
    before = datetime.now(UTC).replace(microsecond=0)
    exp = ps.decide(req).to_json()["granted"][0]["expires_at"]
    after = datetime.now(UTC)
    got = datetime.fromisoformat(exp.replace("Z", "+00:00"))
    assert before + timedelta(hours=1) <= got <= after + timedelta(hours=1)


def test_timestamps_compare_with_iso_and_epoch_claims():
    ps = owner_policy("permit view on any resource when claims.birthdate <= 2008-11-27\n")
    assert decide(ps, claims={"birthdate": "1990-05-01"})["decision"] == "permit"
    assert decide(ps, claims={"birthdate": "2010-01-01T00:00:00Z"})["decision"] == "deny"
    assert decide(ps, claims={"birthdate": 0})["decision"] == "permit"  # epoch seconds


# ---------------------------------------------------------------- glob like

GLOB_TABLE = [
    ("*", "", True),
    ("*", "anything at all", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ba", False),
    ("*a", "bca", True),
    ("*a", "ab", False),
    ("a*b", "ab", True),
    ("a*b", "axxb", True),
    ("a*b", "axxbc", False),
    ("a*b", "a", False),
    ("a*a", "a", False),
    ("a*a", "aa", True),
    ("?", "x", True),
    ("?", "", False),
    ("?", "xy", False),
    ("a?c", "abc", True),
    ("a?c", "ac", False),
    ("a?c", "abbc", False),
    ("*?", "", False),
    ("*?", "z", True),
    ("?*?", "a", False),
    ("?*?", "ab", True),
    ("*b*", "abc", True),
    ("*b*", "ac", False),
    ("*a*b*c*", "xaybzc", True),
    ("*a*b*c*", "cba", False),
    ("a*b?d*", "aXXbcd", True),
    ("a*b?d*", "aXXbd", False),
    ("a*b?d*", "abbbxd-", True),
    ("health/labs/*", "health/labs/2026/blood", True),
    ("health/labs/*", "health/lab", False),
    ("private/*", "private/", True),
    ("private/*", "xprivate/a", False),
    (r"\*", "*", True),
    (r"\*", "x", False),
    (r"a\?", "a?", True),
    (r"a\?", "ab", False),
    (r"\\", "\\", True),
    (r"a\*b*", "a*bc", True),
    (r"a\*b*", "axbc", False),
    ("", "", True),
    ("", "a", False),
    ("abc", "abc", True),
    ("abc", "abcd", False),
    ("*.jpg", "photo.jpg", True),
    ("*.jpg", "photoxjpg", False),
    ("a?", "a\n", True),
    ("résumé-*", "résumé-2026", True),
    ("**", "", True),
    ("a**b", "ab", True),
]


@pytest.mark.parametrize("pattern,subject,expected", GLOB_TABLE)
def test_like_glob_table(pattern, subject, expected):
    assert V.like(subject, pattern) is expected


@pytest.mark.parametrize("pattern,subject,expected", [r for r in GLOB_TABLE if r[0]])
def test_like_glob_table_through_the_engine(pattern, subject, expected):
    lit = pattern.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    ps = owner_policy(f'permit view on any resource when claims.s like "{lit}"\npermit download on name like "{lit}"\n')
    assert (decide(ps, claims={"s": subject})["decision"] == "permit") is expected
    assert (decide(ps, scopes=["download"], resource={"name": subject})["decision"] == "permit") is expected


def test_like_is_never_a_regex():
    assert V.like("a.c", "a.c") is True
    assert V.like("abc", "a.c") is False
    assert V.like("aaa", "a+") is False
    assert V.like("[x]", "[x]") is True and V.like("x", "[x]") is False


def test_like_pathological_subject_gets_the_correct_answer():
    subject = "a" * 100_000
    assert V.like(subject, "*a*a*a*a*b") is False
    assert V.like(subject + "b", "*a*a*a*a*b") is True
    assert V.like(subject, "*a?a*a?a*a") is True
    assert V.like(subject, "*a?b*") is False
    ps = owner_policy(
        'permit view on any resource when claims.s like "*a*a*a*a*b"\npermit download on name like "*a*a*a*a*b"\n'
    )
    assert decide(ps, claims={"s": subject})["decision"] == "deny"
    assert decide(ps, claims={"s": subject + "b"})["decision"] == "permit"
    assert decide(ps, scopes=["download"], resource={"name": subject})["decision"] == "deny"


# ---------------------------------------------------------------- totality


def _deep_list(depth: int) -> list:
    root: list = []
    cur = root
    for _ in range(depth):
        nxt: list = []
        cur.append(nxt)
        cur = nxt
    return root


def test_evaluation_is_total_for_deeply_nested_claim_values():
    deep = _deep_list(5000)
    ps = owner_policy(
        "permit view on any resource when claims.x == claims.y\n"
        "permit print on any resource when claims.x contains claims.y\n"
        "permit download on any resource\n"
        "forbid download on any resource when claims.x != claims.y\n"
    )
    d = decide(ps, scopes=["view", "print", "download"], claims={"x": deep, "y": _deep_list(5000)})
    # a comparison that cannot be completed is a reported error: permits do not apply,
    # the forbid applies (fail closed)
    assert d["decision"] == "deny"
    assert sorted(e["scope"] for e in d["errors"]) == ["download", "print", "view"]
    assert decide(ps, scopes=["view"], claims={"x": [[1]], "y": [[1]]})["decision"] == "permit"


def test_evaluation_is_total_when_a_for_bound_passes_the_last_representable_instant():
    ps = owner_policy("permit view on any resource for 99999999w\n")
    d = decide(ps)
    assert d["decision"] == "permit"
    assert d["granted"][0]["expires_at"] == "9999-12-31T23:59:59Z"
    ps2 = owner_policy("permit view on any resource for 30d\n")
    d2 = decide(ps2, time="9999-12-31T00:00:00Z")
    assert d2["granted"][0]["expires_at"] == "9999-12-31T23:59:59Z"


def test_step2_forbid_unknown_needs_info_even_when_nothing_could_grant():
    ps = owner_policy("forbid view on any resource when claims.age < 18\n")
    d = decide(ps)
    assert d["decision"] == "need_info" and needed(d) == {"age"}
    # once ruled out, default deny
    assert decide(ps, claims={"age": 40})["decision"] == "deny"
