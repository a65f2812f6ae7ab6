"""The shipped example policies (policies/): they check cleanly, their tests
pass with full coverage, and together they use every form of the language."""

from __future__ import annotations

from pathlib import Path

import pytest

import policy_lang
from policy_lang.analysis.testing import TEST_SUFFIX, run_tests
from policy_lang.fmt import format_text
from policy_lang.syntax import ast as A
from policy_lang.syntax import walk

POLICIES = Path(__file__).resolve().parents[2] / "policies"
POLICY_FILES = sorted(POLICIES.glob("*.policy"))
TEST_FILES = sorted(POLICIES.glob("*" + TEST_SUFFIX))


def test_there_are_examples_and_each_has_a_test_file():
    assert {p.stem for p in POLICY_FILES} >= {"alice", "acme", "global"}
    for p in POLICY_FILES:
        assert p.with_name(p.stem + TEST_SUFFIX) in TEST_FILES, f"{p.name} has no test file"


def test_all_examples_check_without_errors_or_warnings():
    sources, unreadable = policy_lang.read_sources([str(POLICIES)])
    assert unreadable == []
    diags = policy_lang.check_sources(sources)
    assert diags == [], "\n".join(d.render() for d in diags)


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_each_example_checks_alone(path):
    diags = policy_lang.check_sources([policy_lang.Source(str(path), path.read_text(encoding="utf-8"))])
    assert [d for d in diags if d.is_error] == [], "\n".join(d.render() for d in diags)


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_each_example_is_in_canonical_layout(path):
    text = path.read_text(encoding="utf-8")
    assert format_text(text, str(path)) == text


def test_example_tests_pass_with_full_coverage():
    report = run_tests([str(POLICIES)])
    assert report.ok, report.render()
    assert report.failed == 0 and report.passed >= 50
    assert report.uncovered == [], report.render()
    assert "coverage: 17 of 17 rules exercised (100%)" in report.render()


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_each_test_file_passes_alone(path):
    report = run_tests([str(path)])
    assert report.ok, report.render()


def _nodes(ps: policy_lang.PolicySet):
    for cr in ps.rules:
        for cond in (cr.rule.when, cr.rule.unless):
            yield from walk(cond)


def test_examples_use_every_form_of_the_language():
    ps = policy_lang.load([str(POLICIES)])
    files = ps.files
    rules = [cr.rule for cr in ps.rules]
    assert any(f.is_global for f in files) and len({f.owner for f in files if f.owner}) >= 2
    assert all(f.groups for f in files) and all(f.claims for f in files) and all(f.types for f in files)
    assert {"id_token", "jwt"} <= {c.format for f in files for c in f.claims}
    assert {r.effect for r in rules} == {"permit", "forbid", "ask"}
    assert any(r.scopes is None for r in rules) and any(r.scopes and len(r.scopes) > 1 for r in rules)
    assert {r.target.kind for r in rules} >= {"any", "id", "type", "name", "name_like", "type_name_like"}
    assert {r.expiry.kind for r in rules if r.expiry} == {"for", "until"}
    assert any(r.unless is not None for r in rules) and any(r.when is not None for r in rules)
    nodes = list(_nodes(ps))
    ops = {n.op for n in nodes if isinstance(n, A.Compare)}
    assert ops >= {"==", "!=", "<", ">=", "in", "not in", "contains", "starts with", "ends with", "like"}
    kinds = {type(n) for n in nodes}
    assert {A.And, A.Or, A.Not, A.Has, A.NowRef, A.GroupRef} <= kinds
    claims = [n for n in nodes if isinstance(n, A.ClaimRef)]
    assert any(c.quoted for c in claims) and any(len(c.path) > 1 for c in claims)
    attrs = {(n.entity, n.name) for n in nodes if isinstance(n, A.AttrRef)}
    assert ("client", "id") in attrs and ("client", "trusted") in attrs
    literal_kinds = {n.kind for n in nodes if isinstance(n, A.Literal)}
    assert {"string", "number", "bool", "timestamp", "list"} <= literal_kinds
