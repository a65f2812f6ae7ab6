"""Per-file compilation units (issue 9.5): a set changed one unit at a time by
``PolicySet.replace`` / ``remove`` is the set built from scratch from the same
texts: the same decisions, explanations and warnings, and, when the change
does not check, the same diagnostics in the ``PolicyError``.

Random edits over two owners' files, an owner's upload and the operator's
global files, whose texts draw rules, groups, claims declarations (some of
them conflicting: E207), resource types (W302/W307, E211), unconditional
forbids (W300), duplicates (W301), unread declared claims (W308 across units)
and now and then a syntax error, an owner moved to another file, or a file
that cannot be read at all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import policy_lang
from policy_lang import PolicyError, Source, compile_sources, compile_unit, explain
from tests.policy_lang.test_invariants import SETTINGS, requests, rules

NAMES = ["a.policy", "b.policy", "c.policy", "g1.policy", "g2.policy", "uploads/alice/owner.policy"]

DECLS = [
    'group team = ["u1@x", "u2@x"]',
    'group team = ["u3@x"]',
    'claims email from "https://idp.example" as id_token',
    'claims email from "https://gov.example" as jwt',
    'claims a, c from "https://idp.example" as id_token',
    'claims b from "https://idp.example" as jwt',
    'type "album" has scopes view, download',
    'type "album" has scopes view, print',
    'type "doc" has scopes view, share',
]

SPECIAL_RULES = [
    "forbid any scope on any resource",
    'forbid print on type "album"',
    'permit view on type "album" when claims.email in team',
    'permit view on type "album" when claims.email in team',
    "permit share on any resource when claims.b == 1",
    "permit view on type \"doc\" when claims['a'] == 1",
]


@st.composite
def texts(draw: st.DrawFn, name: str) -> str:
    if name.startswith("uploads/"):
        header = draw(st.sampled_from(["", 'owner "alice"\n']))
    elif name.startswith("g"):
        header = draw(st.sampled_from(["global\n", "global\n", 'owner "bob"\n']))
    else:
        header = draw(st.sampled_from(['owner "alice"\n', 'owner "bob"\n', 'owner "carol"\n']))
    lines = draw(st.lists(st.sampled_from(DECLS), max_size=3, unique=True))
    body = draw(st.lists(st.one_of(rules(), st.sampled_from(SPECIAL_RULES)), min_size=0, max_size=4))
    if "claims.email in team" in "".join(body) and not any(x.startswith("group team") for x in lines):
        lines.append(DECLS[0])
    text = header + "".join(x + "\n" for x in lines + body)
    damage = draw(st.integers(0, 19))
    if damage == 0:
        text += "permit view on\n"  # a syntax error
    elif damage == 1:
        text = "\x00not a policy"  # nothing readable
    return text


def _source(name: str, text: str) -> Source:
    return Source(name, text, owner="alice" if name.startswith("uploads/") else None)


@st.composite
def edits(draw: st.DrawFn) -> tuple[str, str | None]:
    name = draw(st.sampled_from(NAMES))
    if draw(st.integers(0, 4)) == 0:
        return name, None  # remove
    return name, draw(texts(name))


def _outcome(sources: dict[str, Source]) -> policy_lang.PolicySet | list[str]:
    try:
        return compile_sources(sorted(sources.values(), key=lambda s: s.name))
    except PolicyError as e:
        return [d.render() for d in e.diagnostics]


def _answers(ps: policy_lang.PolicySet, reqs: list[dict[str, Any]]) -> list[str]:
    out = [json.dumps([d.render() for d in ps.diagnostics])]
    for request in reqs:
        try:
            out.append(json.dumps(ps.decide(request).to_json(), sort_keys=True))
            out.append(json.dumps(explain(ps, request), sort_keys=True))
        except policy_lang.RequestError as e:
            out.append(f"RequestError: {e}")
    return out


@SETTINGS
@given(st.lists(edits(), min_size=1, max_size=8), st.lists(requests(), min_size=2, max_size=4))
def test_replacing_units_is_building_from_scratch(steps, reqs):
    """G-12/O-05: one text changed recompiles only its unit, and nothing in the
    resulting set differs from a set compiled from all the texts."""
    sources: dict[str, Source] = {}
    ps = compile_sources([])
    for name, text in steps:
        after = dict(sources)
        if text is None:
            after.pop(name, None)
        else:
            after[name] = _source(name, text)
        expected = _outcome(after)
        try:
            got: policy_lang.PolicySet | list[str] = (
                ps.remove(name) if text is None else ps.replace(compile_unit(after[name]))
            )
        except PolicyError as e:
            got = [d.render() for d in e.diagnostics]
        if isinstance(expected, list):
            assert got == expected
            continue  # a change that does not check leaves the set as it was
        assert isinstance(got, policy_lang.PolicySet), got
        assert _answers(got, reqs) == _answers(expected, reqs)
        assert [cr.ref for cr in got.rules] == [cr.ref for cr in expected.rules]
        assert got.version == expected.version
        ps, sources = got, after


def test_a_replaced_set_shares_the_other_units_and_keeps_the_old_set():
    """replace returns a new set; the old one is unchanged and both share what did not change."""
    a = Source("a.policy", 'owner "alice"\npermit view on any resource when claims.email == "x@y"\n')
    b = Source("b.policy", 'owner "bob"\npermit view on any resource\n')
    old = compile_sources([a, b])
    request = {"resource": {"id": "r", "owner": "bob"}, "scopes": ["view"], "claims": {}}
    assert old.decide(request).decision == "permit"
    new = old.replace(Source("b.policy", 'owner "bob"\nforbid view on any resource\n'))
    assert new.decide(request).decision == "deny"
    assert old.decide(request).decision == "permit"
    assert new.units["a.policy"] is old.units["a.policy"]
    assert new.units["a.policy"].compiled() is old.units["a.policy"].compiled()
    assert new.remove("b.policy").decide(request).decision == "deny"
    assert new.remove("b.policy").owners == ["alice"]


def test_a_replacement_that_does_not_check_raises_and_changes_nothing():
    base = compile_sources([Source("a.policy", 'owner "alice"\nclaims email from "https://i" as jwt\n')])
    with pytest.raises(PolicyError) as err:
        base.replace(Source("b.policy", 'owner "alice"\nclaims email from "https://j" as jwt\n'))
    assert [d.code for d in err.value.diagnostics if d.is_error] == ["E207"]
    assert list(base.units) == ["a.policy"]
