"""The public API of policy_lang: load, loads, compile_sources, check_sources,
PolicyError with its diagnostics, RequestError for bad requests, the decision
JSON of section 4 of the language page (plus "errors") and PolicySet.version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import policy_lang
from policy_lang import Decision, Diagnostic, PolicyError, PolicySet, RequestError, Source

T = "2026-11-27T10:00:00Z"

ALICE = """owner "alice"
claims email from "https://idp.example.com" as id_token
permit view on any resource when claims.email == "bob@example.com"
ask print on any resource
forbid delete on any resource
permit download on any resource for 1d
"""
BOB = 'owner "bob"\npermit view on any resource\n'
GLOBAL = 'global\nforbid any scope on name like "private/*"\n'


def req(**kw) -> dict:
    out = {"resource": {"id": "r1", "owner": "alice"}, "scopes": ["view"], "time": T}
    out.update(kw)
    return out


# ---------------------------------------------------------------- loading


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    (root / "owners" / "deep").mkdir(parents=True)
    (root / "global.policy").write_text(GLOBAL, encoding="utf-8")
    (root / "owners" / "alice.policy").write_text(ALICE, encoding="utf-8")
    (root / "owners" / "deep" / "bob.policy").write_text(BOB, encoding="utf-8")
    (root / "owners" / "notes.txt").write_text("not a policy: permit everything", encoding="utf-8")
    return root


def test_load_a_directory_reads_every_policy_file_recursively(tmp_path):
    root = _tree(tmp_path)
    ps = policy_lang.load([root])
    assert isinstance(ps, PolicySet)
    assert sorted(Path(f.name).name for f in ps.files) == ["alice.policy", "bob.policy", "global.policy"]
    assert ps.owners == ["alice", "bob"]
    assert ps.decide(req(resource={"id": "r", "owner": "bob"})).decision == "permit"
    assert ps.decide(req(resource={"id": "r", "owner": "bob", "name": "private/x"})).decision == "deny"
    # reasons name the file as it was given
    d = ps.decide(req(claims={"email": "bob@example.com"})).to_json()
    assert d["reasons"][0]["rule"] == f"{root / 'owners' / 'alice.policy'}:3"


def test_load_files_and_a_single_path(tmp_path):
    root = _tree(tmp_path)
    alice = root / "owners" / "alice.policy"
    ps = policy_lang.load([alice, str(root / "global.policy")])
    assert ps.owners == ["alice"]
    assert len(ps.files) == 2
    assert policy_lang.load(alice).owners == ["alice"]
    assert policy_lang.load(str(alice)).owners == ["alice"]


def test_load_a_missing_path_raises_policy_error(tmp_path):
    with pytest.raises(PolicyError) as e:
        policy_lang.load([tmp_path / "nope.policy"])
    assert [d.code for d in e.value.diagnostics] == ["E213"]
    assert "nope.policy" in e.value.diagnostics[0].message


def test_load_a_file_with_errors_raises_with_located_diagnostics(tmp_path):
    bad = tmp_path / "bad.policy"
    bad.write_text('owner "alice"\nallow view on any resource\n', encoding="utf-8")
    with pytest.raises(PolicyError) as e:
        policy_lang.load([bad])
    (d,) = e.value.errors
    assert d.code == "E102" and d.file == str(bad) and (d.line, d.column) == (2, 1)


def test_loads_one_text():
    ps = policy_lang.loads(ALICE, "alice.policy")
    assert ps.owners == ["alice"]
    assert len(ps.rules) == 4
    assert ps.decide(req(claims={"email": "bob@example.com"})).decision == "permit"


def test_loads_default_name_and_owner_upload():
    ps = policy_lang.loads(BOB)
    assert ps.files[0].name == "<policy>"
    up = policy_lang.loads("permit view on any resource\n", "up.policy", owner="carol")
    assert up.owners == ["carol"]


def test_compile_sources_several_sources_into_one_set():
    ps = policy_lang.compile_sources(
        [
            Source("global.policy", GLOBAL),
            Source("alice.policy", ALICE),
            Source("bob.policy", BOB),
            Source("uploads/carol", "permit view on any resource\n", owner="carol"),
        ]
    )
    assert ps.owners == ["alice", "bob", "carol"]
    assert [s.name for s in ps.sources] == ["global.policy", "alice.policy", "bob.policy", "uploads/carol"]
    assert ps.decide(req(resource={"id": "c1", "owner": "carol"})).decision == "permit"
    assert ps.decide(req(resource={"id": "c1", "owner": "carol", "name": "private/a"})).decision == "deny"
    assert ps.decide(req(resource={"id": "b1", "owner": "bob"})).decision == "permit"
    assert ps.decide(req(resource={"id": "d1", "owner": "dave"})).decision == "deny"


def test_compile_sources_reports_every_sources_errors_at_once():
    with pytest.raises(PolicyError) as e:
        policy_lang.compile_sources(
            [
                Source("a.policy", 'owner "a"\npermit view on any resource when claims.x == "open\n'),
                Source("b.policy", 'owner "b"\npermit view on any resource when claims.x in nobody\n'),
                Source("c.policy", 'owner "bob"\npermit view on any resource\n', owner="carol"),
                Source("ok.policy", BOB),
            ]
        )
    errors = e.value.errors
    assert [(d.file, d.code) for d in errors] == [("a.policy", "E101"), ("b.policy", "E200"), ("c.policy", "E202")]
    assert all(isinstance(d, Diagnostic) and d.severity == "error" for d in errors)
    assert "(and 2 more)" in str(e.value)


def test_policy_error_carries_rendered_located_diagnostics():
    text = 'owner "alice"\npermit view on any resource when claims.email in family\n'
    with pytest.raises(PolicyError) as e:
        policy_lang.loads(text, "alice.policy")
    err = e.value
    assert isinstance(err, Exception)
    (d,) = err.errors
    assert (d.code, d.severity, d.file, d.line, d.column) == ("E200", "error", "alice.policy", 2, 50)
    assert "family" in d.message and d.hint
    rendered = d.render()
    assert rendered.startswith("alice.policy:2:50: error[E200]: ")
    lines = rendered.splitlines()
    assert lines[1] == "2 | permit view on any resource when claims.email in family"
    assert lines[2].index("^") == lines[1].index("family")
    assert lines[3].startswith("  = help: ")
    assert str(err).startswith("alice.policy:2:50: error[E200]")
    assert d.to_json()["code"] == "E200"


def test_check_sources_never_raises_and_returns_diagnostics():
    diags = policy_lang.check_sources([Source("x.policy", "this is not a policy {"), Source("y.policy", BOB)])
    assert diags and diags[0].file == "x.policy" and diags[0].is_error
    assert not [d for d in policy_lang.check_sources([Source("y.policy", BOB)]) if d.is_error]


def test_policy_set_version_changes_when_text_changes():
    v1 = policy_lang.loads(ALICE, "alice.policy").version
    assert v1 == policy_lang.loads(ALICE, "alice.policy").version
    assert isinstance(v1, str) and v1
    v2 = policy_lang.loads(ALICE.replace("for 1d", "for 2d"), "alice.policy").version
    assert v2 != v1
    v3 = policy_lang.compile_sources([Source("alice.policy", ALICE), Source("bob.policy", BOB)]).version
    assert v3 not in (v1, v2)
    # whitespace is text too: any edit gives a new version
    assert policy_lang.loads(ALICE + "\n", "alice.policy").version != v1


# ---------------------------------------------------------------- bad requests

BAD_REQUESTS = [
    ("not an object", ["resource"], "JSON object"),
    ("a string", "{}", "JSON object"),
    ("unknown member", dict(req(), scope=["view"]), "unknown member 'scope'"),
    ("missing resource", {"scopes": ["view"]}, "resource"),
    ("resource not an object", dict(req(), resource="r1"), "resource"),
    ("missing owner", dict(req(), resource={"id": "r1"}), "owner"),
    ("missing id", dict(req(), resource={"owner": "alice"}), "id"),
    ("id not a string", dict(req(), resource={"id": 7, "owner": "alice"}), "id"),
    ("type not a string", dict(req(), resource={"id": "r", "owner": "a", "type": ["x"]}), "type"),
    ("resource scopes not a list", dict(req(), resource={"id": "r", "owner": "a", "scopes": "view"}), "scopes"),
    ("missing scopes", {"resource": {"id": "r1", "owner": "alice"}}, "scopes"),
    ("scopes not a list", dict(req(), scopes="view"), "scopes"),
    ("scopes not strings", dict(req(), scopes=["view", 3]), "scopes"),
    ("claims not an object", dict(req(), claims=["email"]), "claims"),
    ("client not an object", dict(req(), client="photo-app"), "client"),
    ("claim_sources not an object", dict(req(), claim_sources=[1]), "claim_sources"),
    ("claim source not an object", dict(req(), claim_sources={"email": "https://evil.example"}), "claim_sources.email"),
    (
        "claim source issuer not a string",
        dict(req(), claim_sources={"email": {"issuer": ["x"]}}),
        "claim_sources.email",
    ),
    ("bad time", dict(req(), time="yesterday"), "time"),
    ("time not a string", dict(req(), time=1700000000), "time"),
    ("time out of range", dict(req(), time="9999-12-31T20:00:00-05:00"), "out of range"),
    ("approvals not a list", dict(req(), approvals={"scope": "view"}), "approvals"),
    ("approval bad answer", dict(req(), approvals=[{"scope": "view", "answer": "maybe"}]), "approvals"),
    ("approval without scope", dict(req(), approvals=[{"answer": "approved"}]), "approvals"),
    ("approval unknown member", dict(req(), approvals=[{"scope": "view", "answer": "approved", "x": 1}]), "'x'"),
    ("permissions empty", {"permissions": []}, "permissions"),
    ("permissions not a list", {"permissions": {"resource": {}}}, "permissions"),
    ("permission not an object", {"permissions": ["r1"]}, "permissions[0]"),
    (
        "permission unknown member",
        {"permissions": [{"resource": {"id": "r", "owner": "a"}, "scopes": [], "claims": {}}]},
        "'claims'",
    ),
    (
        "permission missing owner",
        {"permissions": [{"resource": {"id": "r"}, "scopes": ["v"]}]},
        "permissions[0].resource",
    ),
    ("both forms", dict(req(), permissions=[{"resource": {"id": "r", "owner": "a"}, "scopes": []}]), "either"),
    (
        "top-level approvals with permissions",
        {"permissions": [{"resource": {"id": "r", "owner": "a"}, "scopes": ["v"]}], "approvals": []},
        "approvals",
    ),
]


@pytest.mark.parametrize("what,request_,message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_raise_request_error(what, request_, message):
    ps = policy_lang.loads(ALICE, "alice.policy")
    with pytest.raises(RequestError) as e:
        ps.decide(request_)
    assert isinstance(e.value, ValueError)
    assert message in str(e.value)


def test_optional_request_members_may_be_null_or_left_out():
    ps = policy_lang.loads(ALICE, "alice.policy")
    d = ps.decide(
        {
            "resource": {"id": "r1", "owner": "alice"},
            "scopes": ["download"],
            "claims": None,
            "client": None,
            "claim_sources": None,
            "approvals": None,
            "time": None,
        }
    )
    assert d.decision == "permit"
    assert ps.decide({"resource": {"id": "r1", "owner": "alice"}, "scopes": []}).decision == "deny"


# ---------------------------------------------------------------- the decision JSON

DECISION_KEYS = {"decision", "granted", "denied", "submitted", "required_claims", "reasons", "errors"}


def _check_shape(d: dict) -> None:
    assert set(d) == DECISION_KEYS
    assert d["decision"] in ("permit", "need_info", "request_submitted", "partial", "deny")
    for g in d["granted"]:
        assert set(g) == {"resource_id", "scopes", "expires_at"}
        assert g["expires_at"] is None or (isinstance(g["expires_at"], str) and g["expires_at"].endswith("Z"))
    for bucket in ("denied", "submitted"):
        for e in d[bucket]:
            assert set(e) == {"resource_id", "scopes"}
            assert all(isinstance(s, str) for s in e["scopes"])
    for m in d["required_claims"]:
        assert {"name", "friendly_name"} <= set(m) <= {"name", "friendly_name", "claim_token_format", "issuer"}
    for r in d["reasons"]:
        assert (
            {"resource_id", "scope", "effect", "rule"}
            <= set(r)
            <= {"resource_id", "scope", "effect", "rule", "missing"}
        )
        assert r["effect"] in ("permit", "forbid", "ask", "deny")
    for e in d["errors"]:
        assert set(e) == {"resource_id", "scope", "rule", "message"}
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize(
    "kw,decision",
    [
        ({"claims": {"email": "bob@example.com"}}, "permit"),
        ({}, "need_info"),
        ({"scopes": ["print"]}, "request_submitted"),
        ({"scopes": ["download", "delete"]}, "partial"),
        ({"scopes": ["delete"]}, "deny"),
    ],
)
def test_decision_json_has_exactly_the_section4_members_plus_errors(kw, decision):
    ps = policy_lang.loads(ALICE, "alice.policy")
    d = ps.decide(req(**kw))
    assert isinstance(d, Decision)
    j = d.to_json()
    assert j["decision"] == decision == d.decision
    _check_shape(j)
    assert (j["granted"], j["denied"], j["submitted"], j["required_claims"], j["reasons"], j["errors"]) == (
        d.granted,
        d.denied,
        d.submitted,
        d.required_claims,
        d.reasons,
        d.errors,
    )


def test_decision_json_values_for_each_kind():
    ps = policy_lang.loads(ALICE, "alice.policy")
    assert ps.decide(req(claims={"email": "bob@example.com"})).to_json() == {
        "decision": "permit",
        "granted": [{"resource_id": "r1", "scopes": ["view"], "expires_at": None}],
        "denied": [],
        "submitted": [],
        "required_claims": [],
        "reasons": [{"resource_id": "r1", "scope": "view", "effect": "permit", "rule": "alice.policy:3"}],
        "errors": [],
    }
    assert ps.decide(req()).to_json() == {
        "decision": "need_info",
        "granted": [],
        "denied": [],
        "submitted": [],
        "required_claims": [
            {
                "name": "email",
                "friendly_name": "email",
                "claim_token_format": ["http://openid.net/specs/openid-connect-core-1_0.html#IDToken"],
                "issuer": ["https://idp.example.com"],
            }
        ],
        "reasons": [
            {"resource_id": "r1", "scope": "view", "effect": "permit", "rule": "alice.policy:3", "missing": ["email"]}
        ],
        "errors": [],
    }
    assert ps.decide(req(scopes=["print"])).to_json() == {
        "decision": "request_submitted",
        "granted": [],
        "denied": [],
        "submitted": [{"resource_id": "r1", "scopes": ["print"]}],
        "required_claims": [],
        "reasons": [{"resource_id": "r1", "scope": "print", "effect": "ask", "rule": "alice.policy:4"}],
        "errors": [],
    }
    assert ps.decide(req(scopes=["download", "delete"])).to_json() == {
        "decision": "partial",
        "granted": [{"resource_id": "r1", "scopes": ["download"], "expires_at": "2026-11-28T10:00:00Z"}],
        "denied": [{"resource_id": "r1", "scopes": ["delete"]}],
        "submitted": [],
        "required_claims": [],
        "reasons": [
            {"resource_id": "r1", "scope": "download", "effect": "permit", "rule": "alice.policy:6"},
            {"resource_id": "r1", "scope": "delete", "effect": "forbid", "rule": "alice.policy:5"},
        ],
        "errors": [],
    }
    assert ps.decide(req(scopes=["share"])).to_json() == {
        "decision": "deny",
        "granted": [],
        "denied": [{"resource_id": "r1", "scopes": ["share"]}],
        "submitted": [],
        "required_claims": [],
        "reasons": [{"resource_id": "r1", "scope": "share", "effect": "deny", "rule": None}],
        "errors": [],
    }


def test_decision_errors_member_reports_runtime_type_errors():
    ps = policy_lang.loads(ALICE, "alice.policy")
    d = ps.decide(req(claims={"email": ["bob@example.com"]})).to_json()
    assert d["decision"] == "deny" and d["errors"] == []  # a list is simply not equal
    ps2 = policy_lang.loads('owner "alice"\npermit view on any resource when claims.age > 17\n', "a.policy")
    d2 = ps2.decide(req(claims={"age": "x"})).to_json()
    _check_shape(d2)
    assert d2["errors"] == [
        {"resource_id": "r1", "scope": "view", "rule": "a.policy:2", "message": d2["errors"][0]["message"]}
    ]
    assert d2["errors"][0]["message"]


def test_decide_does_not_modify_the_request():
    ps = policy_lang.loads(ALICE, "alice.policy")
    r = req(claims={"email": "bob@example.com"}, claim_sources={"email": {"issuer": "https://evil.example"}})
    before = json.dumps(r, sort_keys=True)
    assert ps.decide(r).decision == "need_info"
    assert json.dumps(r, sort_keys=True) == before
