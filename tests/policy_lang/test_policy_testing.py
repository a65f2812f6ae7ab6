"""``uma policy test``: test files beside the policies (policy_lang.testing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_lang import PolicyError
from policy_lang.analysis.testing import TestFileError, load_test_file, run_tests

POLICY = """\
owner "alice"

group family = ["bob@example.com", "carol@example.com"]

# label: family-albums
# Family may view albums.
permit view
  on type "photo-album"
  when claims.email in family

# label: clinic
permit read
  on name like "health/*"
  when client.id == "clinic-app"
  for 30d

# label: coworkers
ask view
  on type "photo-album"
  when claims.email ends with "@acme.example"

forbid any scope
  on name like "private/*"
  unless client.id == "alice-phone"
"""

DEFAULTS = {
    "resource": {"id": "a1", "owner": "alice", "type": "photo-album", "name": "summer"},
    "scopes": ["view"],
    "client": {"id": "photo-app"},
    "time": "2026-11-27T10:00:00Z",
}


def write_suite(
    tmp_path: Path, cases: list, *, defaults: dict | None = None, policy: str = POLICY, extra: dict | None = None
) -> Path:
    (tmp_path / "alice.policy").write_text(policy, encoding="utf-8")
    data = {"defaults": DEFAULTS if defaults is None else defaults, "cases": cases, **(extra or {})}
    (tmp_path / "alice.tests.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return tmp_path


FAMILY_OK = {
    "name": "family views",
    "request": {"claims": {"email": "bob@example.com"}},
    "expect": "permit",
    "granted": ["view"],
    "rule": "family-albums",
}
STRANGER = {
    "name": "stranger refused",
    "request": {"claims": {"email": "eve@example.com"}},
    "expect": "deny",
    "rule": None,
}
COWORKER = {
    "name": "coworker waits",
    "request": {"claims": {"email": "dan@acme.example"}},
    "expect": "request_submitted",
    "submitted": ["view"],
    "rule": "coworkers",
}
CLINIC = {
    "name": "clinic reads for 30 days",
    "request": {
        "resource": {"id": "lab", "type": None, "name": "health/blood"},
        "scopes": ["read"],
        "client": {"id": "clinic-app"},
    },
    "expect": "permit",
    "rule": "alice.policy:12",
    "expires_at": "2026-12-27T10:00:00Z",
}
PRIVATE = {
    "name": "private stays home",
    "request": {"resource": {"name": "private/x"}, "claims": {"email": "bob@example.com"}},
    "expect": "deny",
    "rule": "alice.policy:22",
}


# ------------------------------------------------------------------ passing suites


def test_passing_suite_is_ok_and_counts_cases(tmp_path):
    write_suite(tmp_path, [FAMILY_OK, STRANGER, COWORKER, CLINIC, PRIVATE])
    report = run_tests([str(tmp_path)])
    assert (report.passed, report.failed, report.ok) == (5, 0, True), report.render()
    text = report.render()
    assert "5 passed, 0 failed" in text
    assert "coverage: 4 of 4 rules exercised (100%)" in text
    assert report.uncovered == []


def test_a_policy_path_brings_its_test_file_and_a_test_path_its_policy(tmp_path):
    write_suite(tmp_path, [FAMILY_OK, STRANGER])
    assert run_tests([str(tmp_path / "alice.policy")]).passed == 2
    assert run_tests([str(tmp_path / "alice.tests.json")]).passed == 2


def test_defaults_merge_member_by_member_and_null_removes(tmp_path):
    # the case's resource keeps the default owner and id, drops the type: only the
    # name-based forbid and the clinic rule can apply, so a family email gets nothing
    case = {
        "name": "no type, no family rule",
        "request": {"resource": {"type": None, "name": "summer"}, "claims": {"email": "bob@example.com"}},
        "expect": "deny",
        "rule": None,
    }
    write_suite(tmp_path, [case])
    report = run_tests([str(tmp_path)])
    assert report.ok, report.render()
    assert report.results[0].case.request["resource"] == {"id": "a1", "owner": "alice", "name": "summer"}


def test_granted_and_denied_per_resource(tmp_path):
    case = {
        "name": "partial",
        "request": {"scopes": ["view", "print"], "claims": {"email": "bob@example.com"}},
        "expect": "partial",
        "granted": {"a1": ["view"]},
        "denied": {"a1": ["print"]},
    }
    write_suite(tmp_path, [case])
    assert run_tests([str(tmp_path)]).ok


def test_rule_by_file_line_relative_to_the_test_file(tmp_path):
    write_suite(
        tmp_path,
        [
            dict(FAMILY_OK, rule="alice.policy:7"),
            dict(FAMILY_OK, name="list form", rule=["family-albums", "./alice.policy:7"]),
        ],
    )
    report = run_tests([str(tmp_path)])
    assert report.ok, report.render()


# ------------------------------------------------------------------ failures, explained


def test_failing_case_is_reported_with_expected_got_and_explanation(tmp_path):
    wrong = {
        "name": "family member is refused (wrong on purpose)",
        "request": {"claims": {"email": "bob@example.com"}},
        "expect": "deny",
        "granted": [],
        "rule": "coworkers",
    }
    write_suite(tmp_path, [FAMILY_OK, wrong])
    report = run_tests([str(tmp_path)])
    assert (report.passed, report.failed, report.ok) == (1, 1, False)
    text = report.render()
    assert "FAIL " in text and "family member is refused (wrong on purpose)" in text
    # the case's location in the test file
    assert "alice.tests.json:" in text.split("FAIL ", 1)[1].splitlines()[0]
    assert "expected decision deny, got permit" in text
    assert "expected granted [], got [view]" in text
    assert "expected the decision to name rule coworkers, got" in text
    assert "alice.policy:7 (family-albums)" in text
    # the reasons and the explanation of every candidate rule
    assert "a1 view: permit by" in text
    assert "why:" in text
    assert "claims.email in family" in text
    assert '(claims.email is "bob@example.com")' in text
    assert "1 passed, 1 failed" in text


def test_explain_false_leaves_the_explanation_out(tmp_path):
    write_suite(tmp_path, [dict(FAMILY_OK, expect="deny")])
    report = run_tests([str(tmp_path)], explain=False)
    assert report.failed == 1
    text = report.render()
    assert "expected decision deny, got permit" in text and "why:" not in text


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("required_claims", ["email"], "expected required_claims [email], got []"),
        ("expires_at", "2027-01-01T00:00:00Z", "expected expires_at 2027-01-01T00:00:00Z for a1, got null"),
        ("submitted", ["view"], "expected submitted [view], got []"),
        ("rule", None, "expected no deciding rule (default deny), got"),
        ("rule", "no-such-label", "no rule has the label 'no-such-label'"),
        ("rule", "alice.policy:99", "no rule starts at 'alice.policy:99'"),
    ],
)
def test_each_expectation_can_fail(tmp_path, field, value, message):
    write_suite(tmp_path, [dict(FAMILY_OK, **{field: value})])
    report = run_tests([str(tmp_path)])
    assert report.failed == 1
    assert message in report.render()


def test_need_info_required_claims_checked(tmp_path):
    case = {
        "name": "unknown email",
        "request": {"claims": {}},
        "expect": "need_info",
        "required_claims": ["email"],
        "rule": "family-albums",
    }
    write_suite(tmp_path, [case])
    assert run_tests([str(tmp_path)]).ok


# ------------------------------------------------------------------ coverage


def test_rules_no_test_exercised_are_listed(tmp_path):
    write_suite(tmp_path, [FAMILY_OK, STRANGER])
    report = run_tests([str(tmp_path)])
    assert report.ok
    refs = [ref for ref, _ in report.uncovered]
    assert [r.rsplit(":", 1)[1] for r in refs] == ["12", "18", "22"]
    text = report.render()
    assert "coverage: 1 of 4 rules exercised (25%)" in text
    assert "rules no test exercised:" in text
    assert 'permit read on name like "health/*" when client.id == "clinic-app" for 30d' in text
    assert report.coverage == pytest.approx(0.25)


def test_no_cases_found_is_not_ok(tmp_path):
    (tmp_path / "alice.policy").write_text(POLICY, encoding="utf-8")
    report = run_tests([str(tmp_path)])
    assert report.ok is False and report.passed == 0 and report.failed == 0
    assert "no test cases found" in report.render()


def test_json_report(tmp_path):
    write_suite(tmp_path, [FAMILY_OK, dict(STRANGER, expect="permit")])
    data = run_tests([str(tmp_path)]).to_json()
    assert data["ok"] is False and data["passed"] == 1 and data["failed"] == 1
    assert data["failures"][0]["name"] == "stranger refused"
    assert data["failures"][0]["problems"] == ["expected decision permit, got deny"]
    json.dumps(data)


# ------------------------------------------------------------------ malformed files


def _raw(tmp_path: Path, text: str) -> Path:
    (tmp_path / "alice.policy").write_text(POLICY, encoding="utf-8")
    (tmp_path / "alice.tests.json").write_text(text, encoding="utf-8")
    return tmp_path


def _case(**over) -> dict:
    return {"name": "c", "request": {"claims": {"email": "bob@example.com"}}, "expect": "permit", **over}


BAD_FILES = [
    ('{"cases": [', "not valid JSON"),
    ("[]", "a test file is a JSON object"),
    (json.dumps({"case": [_case()]}), "unknown member 'case' in the test file (did you mean 'cases'?)"),
    (json.dumps({"cases": []}), "'cases' must be a non-empty list"),
    (json.dumps({"defaults": [], "cases": [_case()]}), "'defaults' must be an object"),
    (
        json.dumps({"defaults": {"scope": ["view"]}, "cases": [_case()]}),
        "unknown member 'scope' in 'defaults' (did you mean 'scopes'?)",
    ),
    (json.dumps({"policies": "x", "cases": [_case()]}), "'policies' must be a list"),
    (json.dumps({"policies": ["missing.policy"], "cases": [_case()]}), "names"),
    (json.dumps({"cases": ["x"]}), "case #1: a case is a JSON object"),
    (json.dumps({"cases": [{"request": {}, "expect": "deny"}]}), "every case needs a 'name'"),
    (json.dumps({"cases": [_case(), _case()]}), "case #2 'c': another case has the same name"),
    (json.dumps({"cases": [_case(expct="deny")]}), "unknown member 'expct' in the case (did you mean 'expect'?)"),
    (json.dumps({"cases": [{"name": "c", "request": {}}]}), "the case has no 'expect'"),
    (json.dumps({"cases": [_case(expect="allow")]}), "'expect' must be one of permit"),
    (json.dumps({"cases": [_case(expect="denied")]}), "(did you mean 'deny'?)"),
    (json.dumps({"cases": [_case(granted="view")]}), "'granted' must be a list of scope names"),
    (json.dumps({"cases": [_case(required_claims="email")]}), "'required_claims' must be a list"),
    (json.dumps({"cases": [_case(rule=7)]}), "'rule' must be a rule label"),
    (json.dumps({"cases": [_case(expires_at="tomorrow")]}), "'expires_at' must be an ISO-8601"),
    (json.dumps({"cases": [_case(request=[])]}), "'request' must be an object"),
    (
        json.dumps({"cases": [_case(request={"claim": {}})]}),
        "unknown member 'claim' in the request (did you mean 'claims'?)",
    ),
    (
        json.dumps({"cases": [_case(request={"resource": {"id": "a", "owner": "alice", "nme": "x"}})]}),
        "unknown member 'nme' in the request's resource (did you mean 'name'?)",
    ),
    (
        json.dumps({"defaults": {"resource": {"id": "a", "owner": "alice", "typ": "x"}}, "cases": [_case()]}),
        "unknown member 'typ' in the request's resource (did you mean 'type'?)",
    ),
    (
        json.dumps(
            {
                "cases": [
                    _case(
                        request={
                            "permissions": [
                                {"resource": {"id": "a", "owner": "alice", "scope": ["view"]}, "scopes": ["view"]}
                            ]
                        }
                    )
                ]
            }
        ),
        "unknown member 'scope' in permissions[0].resource (did you mean 'scopes'?)",
    ),
]


BAD_FILES.append(
    ('{"cases": [{"name": "c", "expect": "deny", "expect": "permit"}]}', "member 'expect' is given twice in one object")
)


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_malformed_test_file_raises_with_file_and_problem(tmp_path, text, message):
    _raw(tmp_path, text)
    with pytest.raises(TestFileError) as err:
        run_tests([str(tmp_path)])
    assert "alice.tests.json" in err.value.message
    assert message in err.value.message


def test_json_syntax_error_names_line(tmp_path):
    _raw(tmp_path, '{\n  "cases": [\n    {"name": "c",, }\n  ]\n}\n')
    with pytest.raises(TestFileError, match=r"alice\.tests\.json:3: not valid JSON"):
        run_tests([str(tmp_path)])


def test_case_error_names_the_line_of_the_case(tmp_path):
    _raw(tmp_path, json.dumps({"cases": [_case(name="first"), _case(name="second", oops=1)]}, indent=2))
    with pytest.raises(TestFileError) as err:
        run_tests([str(tmp_path)])
    text = (tmp_path / "alice.tests.json").read_text().splitlines()
    where = err.value.message.split(": case ")[0]
    n = int(where.rsplit(":", 1)[1])
    assert '"second"' in text[n - 1]
    assert "case #2 'second'" in err.value.message


def test_request_of_the_wrong_shape_is_a_test_file_error(tmp_path):
    _raw(
        tmp_path, json.dumps({"cases": [_case(request={"resource": {"id": "x", "owner": "alice"}, "scopes": "view"})]})
    )
    with pytest.raises(TestFileError, match="the request is not valid: 'scopes' must be a list"):
        run_tests([str(tmp_path)])


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(TestFileError, match="no such file or directory"):
        run_tests([str(tmp_path / "nope")])


def test_policies_that_do_not_check_raise_policy_error(tmp_path):
    write_suite(tmp_path, [FAMILY_OK], policy='owner "alice"\npermit view on any resource when claims.x in nogroup\n')
    with pytest.raises(PolicyError):
        run_tests([str(tmp_path)])


def test_load_test_file_returns_merged_requests(tmp_path):
    write_suite(tmp_path, [FAMILY_OK], extra={"description": "suite"})
    cases, extra = load_test_file(tmp_path / "alice.tests.json")
    assert extra == []
    assert cases[0].request["claims"] == {"email": "bob@example.com"}
    assert cases[0].request["time"] == "2026-11-27T10:00:00Z"
    assert cases[0].expect == {"expect": "permit", "granted": ["view"], "rule": "family-albums"}


def test_permissions_in_a_case_replace_the_single_resource_defaults(tmp_path):
    case = {
        "name": "two albums",
        "request": {
            "permissions": [
                {
                    "resource": {"id": "a1", "owner": "alice", "type": "photo-album", "name": "summer"},
                    "scopes": ["view"],
                },
                {
                    "resource": {"id": "p1", "owner": "alice", "type": "photo-album", "name": "private/x"},
                    "scopes": ["view"],
                },
            ],
            "claims": {"email": "bob@example.com"},
        },
        "expect": "partial",
        "granted": {"a1": ["view"]},
        "denied": {"p1": ["view"]},
        "rule": ["family-albums", "alice.policy:22"],
    }
    write_suite(tmp_path, [case], defaults=dict(DEFAULTS, approvals=[{"scope": "view", "answer": "denied"}]))
    report = run_tests([str(tmp_path)])
    assert report.ok, report.render()
    assert "resource" not in report.results[0].case.request


def test_labels_come_from_the_comment_block_just_above_a_rule():
    import policy_lang
    from policy_lang.analysis.testing import rule_labels

    ps = policy_lang.loads(
        'owner "o"\n'
        "# label: first\n"
        "# label: also-first\n"
        "# some words\n"
        "permit view on any resource\n"
        "# label: orphan\n"
        "\n"
        "permit edit on any resource\n"
        "permit share on any resource  # label: trailing-is-not-a-label\n"
        "permit print on any resource\n",
        "o.policy",
    )
    assert rule_labels(ps) == {
        "o.policy:5": {"first", "also-first"},
        "o.policy:8": set(),
        "o.policy:9": set(),
        "o.policy:10": set(),
    }
