"""The owner's policy upload (PUT /owner/policy) reads text through policy_lang:
nesting beyond the language's documented limit and keywords run together are
refused as located syntax diagnostics (400 invalid_policy), never a 500
(issue 10, point 8)."""

from __future__ import annotations

import pytest

from tests.server.grant_support import *

LIMIT = 64  # docs/policy-language.md, section 7


@pytest.mark.parametrize(
    "condition",
    [
        "not " * 1_000 + "claims.a == 1",
        "(claims.a == 2 or " * 1_000 + "claims.a == 1" + ")" * 1_000,
        "claims.a in " + "[" * 3_000 + "]" * 3_000,
    ],
    ids=["not", "parentheses", "lists"],
)
def test_policy_nested_too_deeply_is_refused_with_E116(uma, condition):
    owner = uma.user()
    r = uma.put_policy(owner, f"permit view on any resource\n  when {condition}\n")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_policy"
    (d,) = body["diagnostics"]
    assert (d["code"], d["line"]) == ("E116", 2) and d["column"] > 1
    assert f"nested more than {LIMIT} levels" in d["message"]
    assert uma.http.get("/owner/policy", auth=(owner.username, owner.password)).status_code == 404


def test_policy_at_the_limit_is_accepted(uma):
    owner = uma.user()
    r = uma.put_policy(owner, "permit view on any resource when " + "not " * (LIMIT - 2) + "claims.a == 1\n")
    assert r.status_code == 200, r.text


def test_keywords_run_together_are_refused_with_E120(uma):
    owner = uma.user()
    r = uma.put_policy(owner, "permitview on any resource\n")
    assert r.status_code == 400, r.text
    (d,) = r.json()["diagnostics"]
    assert (d["code"], d["line"], d["column"]) == ("E120", 1, 1)
    assert d["message"] == "'permitview' is not a word of the language: did you mean 'permit view'?"
