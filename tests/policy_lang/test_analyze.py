"""``uma policy who-can`` and ``uma policy diff`` (policy_lang.analyze)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import policy_lang
from policy_lang import Source, diff, who_can, who_can_data
from policy_lang.analysis.conditions import expr_text
from policy_lang.analysis.requests import OTHER, OTHER_ISSUER, UNMENTIONED_SCOPE, generate_requests
from policy_lang.syntax import ast as A
from policy_lang.syntax import walk
from policy_lang.values import Glob

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    return {f"policies/{p.name}": p.read_text(encoding="utf-8") for p in sorted(POLICIES.glob("*.policy"))}


@pytest.fixture(scope="module")
def ps(sources):
    return policy_lang.compile_sources([Source(n, t) for n, t in sources.items()])


def variant(sources: dict[str, str], file: str, change) -> policy_lang.PolicySet:
    """The example set with one file's text changed by ``change(text) -> text``."""
    out = []
    for name, text in sources.items():
        if name.endswith("/" + file):
            new = change(text)
            assert new != text, "the change did not apply"
            text = new
        out.append(Source(name, text))
    return policy_lang.compile_sources(out)


ALBUM = {
    "id": "album-1",
    "owner": "alice",
    "type": "photo-album",
    "name": "summer-2026",
    "scopes": ["view", "download", "print"],
}


# ------------------------------------------------------------------ who-can


def test_who_can_album_lists_grants_asks_and_forbids(ps):
    text = who_can(ps, ALBUM, now=NOW)
    assert text.startswith(
        'Who can do what on resource "album-1" (name "summer-2026", type "photo-album", owner alice):'
    )
    view = text.split("\nview:\n", 1)[1].split("\n\n", 1)[0]
    assert (
        "granted when claims.email in family [bob@example.com, carol@example.com] "
        "and claims.email_verified == true (policies/alice.policy:"
    ) in view
    assert 'needs the owner\'s approval when claims.email ends with "@acme.example"' in view
    assert 'granted when claims.email == "dave@example.com", until 2030-12-31T23:59:59Z' in view
    assert "never when client.id in blocked-clients [evil-app, scraper-bot] (policies/global.policy:13; forbid)" in view
    # print: only alice herself
    printing = text.split("\nprint:\n", 1)[1].split("\n\n", 1)[0]
    assert 'granted when claims.sub == "alice"' in printing
    assert "family" not in printing
    # where the claims must come from
    assert "email: issuer https://idp.example.com, format id_token" in text


def test_who_can_folds_what_the_resource_decides(ps):
    # a name outside every glob: the private/, prints/ and shared/ rules are left out
    text = who_can(ps, ALBUM, now=NOW)
    assert "own-devices" not in text and "printshop" not in text and "book-club" not in text
    private = who_can(ps, dict(ALBUM, name="private/diary"), ["view"], now=NOW)
    assert "never unless client.id in own-devices [alice-phone, alice-laptop]" in private


def test_who_can_lab_results_shows_the_30_day_bound_and_quoted_claim(ps):
    text = who_can(ps, {"id": "lab-7", "owner": "alice", "name": "health/labs/blood", "scopes": ["read"]}, now=NOW)
    assert (
        'granted when claims["https://example.org/claims/role"] == "physician" and '
        'client.id == "clinic-app", for 30 days after the grant'
    ) in text
    assert "https://example.org/claims/role: issuer https://health-id.example, format jwt" in text


def test_who_can_secret_shows_the_global_guardrail(ps):
    text = who_can(
        ps, {"id": "vault-router", "owner": "alice", "type": "secret", "name": "router", "scopes": ["read"]}, now=NOW
    )
    assert 'never unless claims.acr == "mfa" and client.trusted == true (policies/global.policy:19; forbid)' in text
    assert "granted when claims.email in family" in text


def test_who_can_scope_nobody_gets(ps):
    text = who_can(ps, {"id": "d", "owner": "acme", "type": "payroll", "name": "payroll/x"}, ["read", "edit"], now=NOW)
    edit = text.split("\nedit:\n", 1)[1]
    assert "nobody else: no permit or ask grants it (default deny)" in edit


def test_who_can_data_structure(ps):
    data = who_can_data(ps, {"id": "lab-7", "owner": "alice", "name": "health/labs/x"}, ["read"], now=NOW)
    json.dumps(data)
    clinic = next(d for d in data if d["effect"] == "permit" and "clinic-app" in (d["condition"] or ""))
    assert clinic["scope"] == "read" and clinic["expiry"] == "for 30d" and clinic["expired"] is False
    assert clinic["rule"].startswith("policies/alice.policy:")
    assert clinic["claims"] == ["https://example.org/claims/role"] and clinic["client"] == ["id"]
    assert [d["effect"] for d in data] == sorted(
        (d["effect"] for d in data), key=["forbid", "permit", "ask", "deny"].index
    )


def test_who_can_data_marks_expired_until_rules_and_denies(ps):
    later = datetime(2031, 6, 1, tzinfo=UTC)
    data = who_can_data(ps, {"id": "r", "owner": "alice", "name": "summer-2026"}, ["view"], now=later)
    dave = next(d for d in data if "dave@example.com" in (d["condition"] or ""))
    assert dave["expired"] is True and dave["expiry"] == "until 2030-12-31T23:59:59Z"
    # only alice's own rule can still grant view on a typeless resource: no default-deny entry
    assert [d["effect"] for d in data if d["effect"] == "deny"] == []
    text = who_can(ps, {"id": "r", "owner": "alice", "name": "summer-2026"}, ["view"], now=later)
    assert "— expired (until 2030-12-31T23:59:59Z)" in text


def test_who_can_unconditional_rules_and_resource_conditions():
    ps = policy_lang.loads(
        'owner "o"\n'
        "permit view on any resource\n"
        'permit edit on any resource when resource.type == "doc" and claims.team == "a"\n'
        'forbid edit on name like "locked/*"\n'
        "ask share on any resource for 1d\n",
        "o.policy",
    )
    text = who_can(
        ps, {"id": "r", "owner": "o", "type": "doc", "name": "locked/x", "scopes": ["view", "edit", "share"]}, now=NOW
    )
    assert "granted to anyone (o.policy:2)" in text
    # resource.type == "doc" folded away; the forbid refuses edit to everyone
    assert 'granted when claims.team == "a" (o.policy:3) (but a forbid above always refuses it)' in text
    assert "never: forbidden to everyone (o.policy:4;" in text
    assert "nobody: a forbid without conditions refuses it to everyone" in text
    assert "needs the owner's approval, for anyone, for 1 day after the grant (o.policy:5)" in text
    other = who_can(ps, {"id": "r", "owner": "o", "type": "img", "name": "x", "scopes": ["edit"]}, now=NOW)
    assert "claims.team" not in other and "default deny" in other


def test_who_can_needs_an_owner(ps):
    with pytest.raises(ValueError, match="owner"):
        who_can(ps, {"id": "r"})


def test_expr_text_round_trips_through_the_parser():
    text = (
        'owner "o"\ngroup g = ["a", "b"]\npermit view on any resource when '
        '(claims.x == 1 or claims["https://e/y"] in g) and not (has claims.z) '
        'and claims.a.b starts with "p" and now < 2027-01-01T00:00:00Z'
    )
    ps = policy_lang.loads(text, "o.policy")
    rendered = expr_text(ps.rules[0].rule.when)
    again = policy_lang.loads(
        f'owner "o"\ngroup g = ["a", "b"]\npermit view on any resource when {rendered}', "o.policy"
    )
    assert again.rules[0].rule.when == ps.rules[0].rule.when
    assert "g [a, b]" in expr_text(ps.rules[0].rule.when, {"g": ("a", "b")})


# ------------------------------------------------------------------ diff


def test_identical_sets_have_no_changes(ps):
    report = diff(ps, ps)
    assert report.changes == [] and report.ok and report.generated
    assert report.checked > 500
    assert report.render().startswith(f"No decision changes over {report.checked} generated requests")


def test_reformatted_set_has_no_changes(ps, sources):
    def reformat(text: str) -> str:
        # every rule on one line, extra comments and blank lines: every line moves
        return "# reformatted\n\n\n" + re.sub(r"\n  +", " ", text)

    assert diff(ps, variant(sources, "alice.policy", reformat)).changes == []


def _granted(decision: dict) -> set[str]:
    return {s for g in decision["granted"] for s in g["scopes"]}


def test_removed_rule_is_found(ps, sources):
    new = variant(sources, "alice.policy", lambda t: re.sub(r"# label: dave-summer\n(.*\n)*?\n", "", t, count=1))
    report = diff(ps, new, limit=1000)
    assert report.changes and not report.ok
    dave = [
        c
        for c in report.changes
        if c["request"]["claims"].get("email") == "dave@example.com"
        and "view" in _granted(c["old"])
        and "view" not in _granted(c["new"])
    ]
    assert dave
    text = report.render()
    assert "decide differently" in text and "view: granted until 2030-12-31T23:59:59Z" in text


def test_added_rule_is_found(ps, sources):
    new = variant(
        sources,
        "alice.policy",
        lambda t: t + '\npermit print\n  on type "photo-album"\n  when claims.email == "eve@example.com"\n',
    )
    report = diff(ps, new, limit=1000)
    eve = [
        c
        for c in report.changes
        if c["request"]["claims"].get("email") == "eve@example.com"
        and "print" in _granted(c["new"])
        and "print" not in _granted(c["old"])
    ]
    assert eve


def test_changed_duration_is_found(ps, sources):
    new = variant(sources, "alice.policy", lambda t: t.replace("for 30d", "for 60d"))
    report = diff(ps, new, limit=1000)
    assert report.changes
    assert all(c["old"]["decision"] == c["new"]["decision"] for c in report.changes)
    c = report.changes[0]
    assert c["old"]["granted"][0]["expires_at"] != c["new"]["granted"][0]["expires_at"]


def test_changed_group_member_is_found(ps, sources):
    new = variant(
        sources, "alice.policy", lambda t: t.replace('["bob@example.com", "carol@example.com"]', '["bob@example.com"]')
    )
    report = diff(ps, new, limit=1000)
    assert any(c["request"]["claims"].get("email") == "carol@example.com" for c in report.changes)


def test_changed_claim_issuer_is_found(ps, sources):
    new = variant(
        sources,
        "alice.policy",
        lambda t: t.replace('from "https://health-id.example"', 'from "https://other-health.example"'),
    )
    report = diff(ps, new, limit=1000)
    role = "https://example.org/claims/role"
    # the physician's claim from the old issuer no longer counts ...
    assert any(
        c["request"].get("claim_sources", {}).get(role, {}).get("issuer") == "https://health-id.example"
        and "read" in _granted(c["old"])
        and "read" not in _granted(c["new"])
        for c in report.changes
    )
    # ... and need_info now names the new issuer
    assert any(
        rc.get("issuer") == ["https://other-health.example"]
        for c in report.changes
        for rc in c["new"]["required_claims"]
    )


def test_changed_condition_operator_is_found(ps, sources):
    new = variant(sources, "acme.policy", lambda t: t.replace("claims.clearance >= 3", "claims.clearance > 3"))
    report = diff(ps, new, limit=1000)
    assert any(c["request"]["claims"].get("clearance") == 3 for c in report.changes)


def test_every_single_rule_removal_is_found(ps, sources):
    for cr in ps.rules:
        file = cr.rule.pos.file
        lines = sources[file].splitlines(keepends=True)
        start, end = cr.rule.pos.line - 1, cr.rule.pos.end_line
        removed = "".join(lines[:start] + lines[end:])
        new = policy_lang.compile_sources([Source(n, removed if n == file else t) for n, t in sources.items()])
        assert diff(ps, new, limit=300).changes, f"removing {cr.ref} changed no generated decision"


def test_given_requests_only(ps, sources):
    new = variant(sources, "alice.policy", lambda t: t.replace("for 30d", "for 7d"))
    req = {
        "resource": {"id": "lab", "owner": "alice", "name": "health/labs/x"},
        "scopes": ["read"],
        "claims": {"https://example.org/claims/role": "physician"},
        "client": {"id": "clinic-app"},
        "time": "2026-11-27T10:00:00Z",
    }
    stranger = dict(req, client={"id": "other"})
    report = diff(ps, new, [req, stranger])
    assert report.checked == 2 and not report.generated
    assert [c["request"] for c in report.changes] == [req]
    assert report.changes[0]["old"]["granted"][0]["expires_at"] == "2026-12-27T10:00:00Z"
    assert report.changes[0]["new"]["granted"][0]["expires_at"] == "2026-12-04T10:00:00Z"
    assert "1 of 2 given requests decide differently" in report.render()
    json.dumps(report.to_json())


# ------------------------------------------------------------------ generated requests


@pytest.fixture(scope="module")
def generated(ps):
    return generate_requests(ps, ps)


def test_generation_is_deterministic_and_bounded(ps, generated):
    assert generate_requests(ps, ps) == generated
    assert 500 < len(generated) <= 3000
    small = generate_requests(ps, ps, limit=200)
    assert len(small) <= 200
    for req in generated:
        ps.decide(req)  # every generated request is well formed


def test_generated_resources_cover_the_targets(generated):
    resources = {json.dumps(r["resource"], sort_keys=True): r["resource"] for r in generated}.values()
    owners = {r["owner"] for r in resources}
    assert owners == {"alice", "acme"}
    ids = {r["id"] for r in resources}
    names = {r.get("name") for r in resources}
    types = {r.get("type") for r in resources}
    assert "vault-router" in ids
    assert "summer-2026" in names
    for pattern in ("health/labs/*", "private/*", "prints/*", "shared/*", "engineering/*", "sales/*", "board/*"):
        assert any(n is not None and Glob(pattern).match(n) for n in names), pattern
    assert {"photo-album", "document", "payroll", "secret"} <= types
    # a type rule and a name rule on one resource: the forbid on private/ meets the album permits
    assert any(r.get("type") == "photo-album" and str(r.get("name")).startswith("private/") for r in resources)
    # resources the same rules govern are generated once
    assert len(resources) == len({(r["owner"], r.get("type"), r.get("name"), r["id"]) for r in resources})
    assert len(resources) < 40


def test_generated_scopes_include_an_unmentioned_one(generated):
    scopes = {s for r in generated for s in r["scopes"]}
    assert {"view", "download", "print", "read", "comment", "edit", UNMENTIONED_SCOPE} <= scopes


def test_generated_claims_cover_literals_absence_and_non_matching_values(generated):
    album = [
        r
        for r in generated
        if r["resource"].get("type") == "photo-album" and r["resource"].get("name") == "summer-2026"
    ]
    emails = {r["claims"].get("email") for r in album}
    assert {"bob@example.com", "carol@example.com", "dave@example.com", None, OTHER} <= emails
    assert any(str(e).endswith("@acme.example") for e in emails)
    assert {True, False, None} <= {r["claims"].get("email_verified") for r in album}
    everywhere = [r["claims"] for r in generated]
    assert any(c.get("address") == {"country": "DE"} for c in everywhere)
    assert any(c.get("https://example.org/claims/role") == "physician" for c in everywhere)
    assert any("book-club" in (c.get("groups") or []) for c in everywhere)
    assert {2, 3, 4} <= {c.get("clearance") for c in everywhere}
    assert any(c.get("employment") == {"status": "suspended"} for c in everywhere)


def test_generated_clients_times_approvals_and_sources(generated):
    clients = {r["client"].get("id") for r in generated}
    assert {"evil-app", "alice-phone", "clinic-app", "acme-hr", None} <= clients
    assert any(str(c).startswith("printshop-") for c in clients)
    assert any(r["client"].get("trusted") is True for r in generated)
    times = {r["time"] for r in generated}
    assert any(t > "2030-12-31T23:59:59Z" for t in times) and any(t < "2027-07-01" for t in times)
    answers = {a["answer"] for r in generated for a in r.get("approvals", [])}
    assert answers == {"approved", "denied"}
    assert any(s.get("issuer") == OTHER_ISSUER for r in generated for s in r.get("claim_sources", {}).values())


def test_who_can_without_scopes_uses_the_type_declaration(ps):
    data = who_can_data(ps, {"id": "d", "owner": "acme", "type": "document", "name": "engineering/x"}, now=NOW)
    assert list(dict.fromkeys(d["scope"] for d in data)) == ["read", "comment", "edit"]


def test_generated_values_for_claims_against_now_groups_and_descriptions():
    old = policy_lang.loads(
        'owner "o"\n'
        'group staff = ["ann", "ben"]\n'
        "permit view on any resource when claims.expires > now\n"
        "permit edit on any resource when staff contains claims.user\n"
        'permit share on any resource when resource.description == "public"\n',
        "o.policy",
    )
    reqs = generate_requests(old, old)
    times = {r["claims"].get("expires") for r in reqs}
    assert {"2025-12-31T00:00:00Z", "2026-01-02T00:00:00Z"} <= times
    assert {"ann", "ben", OTHER, None} <= {r["claims"].get("user") for r in reqs}
    assert {"public", OTHER, None} <= {r["resource"].get("description") for r in reqs}
    # and diff finds a change to each
    for before, after in (
        ("claims.expires > now", "claims.expires < now"),
        ('["ann", "ben"]', '["ann"]'),
        ('"public"', '"open"'),
    ):
        new = policy_lang.loads(old.sources[0].text.replace(before, after), "o.policy")
        assert diff(old, new).changes, before


def test_global_only_sets_are_diffed_for_some_owner():
    old = policy_lang.loads(
        'global\nforbid any scope on any resource when client.id == "bad"\npermit view on any resource\n', "g.policy"
    )
    new = policy_lang.loads("global\npermit view on any resource\n", "g.policy")
    report = diff(old, new)
    assert report.changes
    assert all(c["request"]["client"].get("id") == "bad" for c in report.changes)


def test_recorded_requests_without_time_are_decided_at_one_instant(ps, sources):
    req = {
        "resource": {"id": "lab", "owner": "alice", "name": "health/labs/x"},
        "scopes": ["read"],
        "claims": {"https://example.org/claims/role": "physician"},
        "client": {"id": "clinic-app"},
    }
    new = variant(sources, "alice.policy", lambda t: t.replace("for 30d", "for 7d"))
    (change,) = diff(ps, new, [req]).changes
    assert "time" not in req and change["request"]["time"] is not None
    old_exp = datetime.fromisoformat(change["old"]["granted"][0]["expires_at"].replace("Z", "+00:00"))
    new_exp = datetime.fromisoformat(change["new"]["granted"][0]["expires_at"].replace("Z", "+00:00"))
    assert (old_exp - new_exp).days == 23 and (old_exp - new_exp).seconds == 0


def test_expr_text_of_every_example_condition_parses_back_to_it(ps):
    for cr in ps.rules:
        for cond in (cr.rule.when, cr.rule.unless):
            if cond is None:
                continue
            text = expr_text(cond)
            groups = "\n".join(
                f"group {g} = []" for g in sorted({n.name for n in walk(cond) if isinstance(n, A.GroupRef)})
            )
            again = policy_lang.loads(f'owner "o"\n{groups}\npermit view on any resource when {text}', "o.policy")
            assert again.rules[0].rule.when == cond, (cr.ref, text)
