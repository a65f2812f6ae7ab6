"""The static checker: one test per diagnostic kind, at the exact span.

Each row of the tables is policy text and where the checker must point:
the code, the line and column, and the text under the caret. Every message and
hint must be in a policy author's words (no grammar token names).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

import policy_lang
from policy_lang import Source, check_sources
from policy_lang.check import check_file, check_files
from policy_lang.diagnostics import CODES, Diagnostic
from policy_lang.syntax import parse
from policy_lang.syntax.reader import _comment_parser as _parser
from tests.policy_lang.language_page import SECTION_1_EXAMPLE

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


TOKEN_NAMES = sorted({t.name for t in _parser().terminals} | {"$END"})


def no_token_names(text: str) -> bool:
    """No grammar terminal name (NAME, STRING, $END, LPAR, __ANON_0, …) as a word."""
    for name in TOKEN_NAMES:
        if re.search(r"(?<![A-Za-z_$])" + re.escape(name) + r"(?![A-Za-z_])", text):
            return False
    return True


def check(text: str, name: str = "alice.policy", owner: str | None = None, now: datetime = NOW) -> list[Diagnostic]:
    pf, diags = parse(text, name, owner)
    assert pf is not None and not diags, [d.render() for d in diags]
    return check_files([pf], {name: text}, {name: owner} if owner else {}, now=now)


def caret_text(d: Diagnostic) -> str:
    end = d.end_column if d.end_column > d.column else d.column + 1
    return d.source_line[d.column - 1 : end - 1]


def the(diags: list[Diagnostic], code: str) -> Diagnostic:
    got = [d for d in diags if d.code == code]
    assert len(got) == 1, (code, [d.render() for d in diags])
    return got[0]


H = 'owner "alice"\n'
FAMILY = 'group family = ["bob@example.com", "carol@example.com"]\n'

# (id, text, code, line, column, text under the caret[, uploader of an owner upload])
CASES = [
    # ------------------------------------------------------------ errors
    (
        "E200-unknown-group",
        H + FAMILY + "permit view on any resource when claims.email in famly\n",
        "E200",
        3,
        50,
        "famly",
    ),
    ("E201-now-vs-number", H + "permit view on any resource when now > 5\n", "E201", 2, 40, "5"),
    ("E201-name-vs-number", H + "permit view on any resource when resource.name < 3\n", "E201", 2, 50, "3"),
    ("E201-in-number", H + "permit view on any resource when claims.x in 5\n", "E201", 2, 46, "5"),
    ("E201-starts-with-number", H + "permit view on any resource when claims.x starts with 3\n", "E201", 2, 55, "3"),
    ("E201-order-bool", H + "permit view on any resource when claims.x < true\n", "E201", 2, 45, "true"),
    (
        "E201-order-list",
        H + 'permit view on any resource when resource.scopes > "a"\n',
        "E201",
        2,
        34,
        "resource.scopes",
    ),
    ("E201-duration-vs-timestamp", H + "permit view on any resource when now > 30d\n", "E201", 2, 40, "30d"),
    ("E201-like-number", H + "permit view on any resource when resource.name like 7\n", "E201", 2, 53, "7"),
    ("E201-string-eq-number", H + "permit view on any resource when client.id == 42\n", "E201", 2, 47, "42"),
    ("E201-not-a-condition", H + "permit view on any resource when resource.name\n", "E201", 2, 34, "resource.name"),
    ("E201-group-as-condition", H + FAMILY + "permit view on any resource when family\n", "E201", 3, 34, "family"),
    ("E201-contains-number", H + "permit view on any resource when resource.name contains 1\n", "E201", 2, 57, "1"),
    (
        "E201-list-never-holds",
        H + "permit view on any resource when resource.name in [1, 2]\n",
        "E201",
        2,
        51,
        "[1, 2]",
    ),
    ("E202-owner-mismatch", 'owner "bob"\npermit view on any resource\n', "E202", 1, 7, '"bob"', "alice"),
    ("E203-missing-owner", "permit view on any resource\n", "E203", 1, 1, "permit"),
    (
        "E204-duplicate-group",
        H + FAMILY + 'group family = ["dave@example.com"]\npermit view on any resource when claims.email in family\n',
        "E204",
        3,
        7,
        "family",
    ),
    ("E205-unknown-attribute", H + 'permit view on any resource when resource.nme == "x"\n', "E205", 2, 43, "nme"),
    (
        "E206-format-name",
        H + 'claims email from "https://idp" as id_tokn\npermit view on any resource when claims.email == "a"\n',
        "E206",
        2,
        36,
        "id_tokn",
    ),
    (
        "E206-format-not-a-uri",
        H + 'claims email from "https://idp" as "saml"\npermit view on any resource when claims.email == "a"\n',
        "E206",
        2,
        36,
        '"saml"',
    ),
    (
        "E207-conflicting-claims",
        H + 'claims email from "https://a" as jwt\n'
        'claims role, email from "https://b" as jwt\n'
        'permit view on any resource when claims.email == "a" and claims.role == "b"\n',
        "E207",
        3,
        14,
        "email",
    ),
    ("E208-empty-pattern", H + 'permit view on name like ""\n', "E208", 2, 26, '""'),
    ("E208-empty-pattern-in-condition", H + 'permit view on any resource when claims.x like ""\n', "E208", 2, 48, '""'),
    ("E209-for-on-forbid", H + "forbid view on any resource for 30d\n", "E209", 2, 29, "for 30d"),
    (
        "E210-mixed-group",
        H + 'group g = ["a", 1]\npermit view on any resource when claims.x in g\n',
        "E210",
        2,
        17,
        "1",
    ),
    ("E210-nested-list", H + 'permit view on any resource when claims.x in ["a", ["b"]]\n', "E210", 2, 52, '["b"]'),
    (
        "E211-conflicting-types",
        H + 'type "album" has scopes view\ntype "album" has scopes view, edit\npermit view on type "album"\n',
        "E211",
        3,
        6,
        '"album"',
    ),
    ("E214-zero-duration", H + "permit view on any resource for 0d\n", "E214", 2, 29, "for 0d"),
    ("E217-empty-owner", 'owner ""\npermit view on any resource\n', "E217", 1, 7, '""'),
    ("E217-empty-scope", H + 'permit "" on any resource\n', "E217", 2, 8, '""'),
    ("E217-empty-type", H + 'permit view on type ""\n', "E217", 2, 21, '""'),
    ("E217-empty-claim-name", H + 'permit view on any resource when claims[""] == 1\n', "E217", 2, 34, 'claims[""]'),
    ("E115-reserved-group-name", H + 'group true = ["a"]\n', "E115", 2, 7, "true"),
    # ------------------------------------------------------------ warnings
    ("W300-shadowed", H + 'forbid any scope on any resource\npermit view on type "album"\n', "W300", 3, 1, "permit"),
    (
        "W300-shadowed-by-glob",
        H + 'forbid any scope on name like "private/*"\npermit view on name "private/x"\n',
        "W300",
        3,
        1,
        "permit",
    ),
    (
        "W301-duplicate-rule",
        H + FAMILY + "permit view on any resource when claims.email in family\n"
        'ask view on type "a"\n'
        "permit view  on any resource\n  when claims.email in family\n",
        "W301",
        5,
        1,
        "permit",
    ),
    (
        "W302-scope-not-offered",
        H + 'type "photo-album" has scopes view, download\npermit view, print on type "photo-album"\n',
        "W302",
        3,
        14,
        "print",
    ),
    ("W303-unused-group", H + FAMILY + "permit view on any resource\n", "W303", 2, 7, "family"),
    ("W304-expired", H + "permit view on any resource until 2020-01-01\n", "W304", 2, 29, "until 2020-01-01"),
    ("W305-like-without-wildcard", H + 'permit view on name like "summer"\n', "W305", 2, 26, '"summer"'),
    (
        "W305-like-without-wildcard-in-condition",
        H + 'permit view on any resource when resource.name like "summer"\n',
        "W305",
        2,
        53,
        '"summer"',
    ),
    ("W306-literal-false", H + "permit view on any resource when false\n", "W306", 2, 34, "false"),
    ("W306-not-true", H + "permit view on any resource when not true\n", "W306", 2, 34, "not true"),
    ("W306-unless-true", H + "permit view on any resource unless true\n", "W306", 2, 36, "true"),
    (
        "W306-contradiction",
        H + 'permit view on any resource when claims.a == "x" and claims.a == "y"\n',
        "W306",
        2,
        34,
        'claims.a == "x" and claims.a == "y"',
    ),
    ("W306-empty-list", H + "permit view on any resource when claims.a in []\n", "W306", 2, 34, "claims.a in []"),
    (
        "W307-undeclared-type",
        H + 'type "photo-album" has scopes view\npermit view on type "photo-albm"\n',
        "W307",
        3,
        21,
        '"photo-albm"',
    ),
    (
        "W308-claim-never-read",
        H + 'claims email, role from "https://idp" as jwt\npermit view on any resource when claims.email == "a"\n',
        "W308",
        2,
        15,
        "role",
    ),
]


@pytest.mark.parametrize(
    "text,code,line,column,span,uploader", [(c + (None,))[1:7] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_diagnostic_kind_is_located_at_its_span(text, code, line, column, span, uploader):
    diags = check(text, owner=uploader)
    d = the(diags, code)
    assert (d.file, d.line, d.column) == ("alice.policy", line, column), d.render()
    assert caret_text(d) == span, d.render()
    assert d.severity == CODES[code][0]
    assert d.message and d.hint
    assert no_token_names(d.message) and no_token_names(d.hint), d.render()
    rendered = d.render().splitlines()
    assert rendered[0] == f"alice.policy:{line}:{column}: {d.severity}[{code}]: {d.message}"
    assert rendered[1] == f"{line} | {text.splitlines()[line - 1]}".rstrip()
    gutter = len(f"{line} | ")
    assert rendered[2] == " " * (gutter + column - 1) + "^" * len(span)
    assert rendered[3] == f"  = help: {d.hint}"


def test_every_checker_code_has_a_case():
    parser_codes = {c for c in CODES if c.startswith("E1")} - {"E115"}  # E115: both
    produced_elsewhere = {"E212", "E213"}  # an upload of a global file; an unreadable path
    covered = {c[2] for c in CASES} | produced_elsewhere
    assert set(CODES) - parser_codes <= covered, sorted(set(CODES) - parser_codes - covered)


def test_section_1_example_checks_clean():
    diags = check_sources([Source("policies/alice.policy", SECTION_1_EXAMPLE)])
    assert diags == []
    ps = policy_lang.loads(SECTION_1_EXAMPLE, "policies/alice.policy")
    got = ps.decide(
        {
            "resource": {"id": "r1", "owner": "alice", "type": "photo-album"},
            "scopes": ["view"],
            "time": "2026-11-27T10:00:00Z",
            "claims": {"email": "bob@example.com", "email_verified": True},
        }
    )
    assert got.decision == "permit"


def test_unknown_group_renders_like_a_compiler():
    text = H + FAMILY + "\n\n# family may view\npermit view on any resource\n  when claims.email in famly\n"
    diags = check_sources([Source("alice.policy", text)])
    assert [d.code for d in diags] == ["W303", "E200"]  # family is unused: the rule misspells it
    d = diags[1]
    assert d.render() == (
        "alice.policy:7:24: error[E200]: unknown group 'famly'\n"
        "7 |   when claims.email in famly\n"
        "                           ^^^^^\n"
        "  = help: did you mean 'family'?"
    )


def test_unknown_group_without_a_near_name_suggests_quoting():
    d = the(check(H + "permit view on any resource when claims.role == physician\n"), "E200")
    assert 'quote it: "physician"' in d.hint
    assert "group physician = " in d.hint


def test_type_mismatch_renders_both_kinds():
    text = H + "permit view on any resource when now > 5\n"
    d = the(check(text), "E201")
    assert d.render() == (
        "alice.policy:2:40: error[E201]: now (a timestamp) cannot be ordered against 5 (a number)\n"
        "2 | permit view on any resource when now > 5\n"
        "                                           ^\n"
        "  = help: write the time as a timestamp, without quotes: 2027-01-01 or 2027-01-01T09:00:00Z"
    )


def test_shadowed_rule_renders_with_the_forbid_line():
    text = H + 'forbid any scope on any resource\npermit view on type "album"\n'
    d = the(check(text), "W300")
    assert d.render() == (
        "alice.policy:3:1: warning[W300]: this permit never applies: the forbid on line 2 "
        "always refuses these scopes here\n"
        '3 | permit view on type "album"\n'
        "    ^^^^^^\n"
        "  = help: a forbid beats every permit and ask; give the forbid a 'when' or 'unless', "
        "or remove this rule"
    )


@pytest.mark.parametrize(
    "cond",
    [
        'claims.x in "abc"',
        "claims.age > 5",
        "claims.email_verified",
        "now > 2026-01-01",
        "now < 2027-01-01T00:00:00Z",
        'resource.scopes contains "view"',
        'resource.name like "a*"',
        'claims.x == 1 or claims.x == "1"',
        "client.tier == 3",
        "has claims.email",
        "(claims.a == 1) == true",
        'resource.type in ["a", "b"]',
        "not claims.blocked",
        'claims.address.country == "NL"',
        'claims["https://example.com/role"] == "x"',
        'resource.description ends with "!"',
        "claims.x < 3 and claims.x > 1",
    ],
)
def test_well_typed_conditions_give_no_diagnostic(cond):
    assert check(H + f"permit view on any resource when {cond}\n") == []


def test_until_on_a_forbid_is_fine_and_future_until_is_not_expired():
    text = H + "forbid view on any resource until 2027-01-01\npermit view on any resource\n"
    diags = check(text)
    assert [d.code for d in diags] == []
    later = check(text, now=datetime(2027, 6, 1, tzinfo=UTC))
    assert [d.code for d in later] == ["W304"]


def test_conditional_forbid_shadows_nothing():
    text = H + ("forbid any scope on any resource when claims.blocked == true\npermit view on any resource\n")
    assert check(text) == []


def test_forbid_on_other_scopes_or_targets_shadows_nothing():
    text = H + (
        'forbid print on any resource\nforbid any scope on type "secret"\n'
        'forbid any scope on name like "private/*"\n'
        'permit view on type "album"\npermit view on name "public/x"\n'
    )
    assert check(text) == []


def test_global_forbid_shadows_an_owner_rule_in_another_file():
    glob = Source("ops.policy", 'global\nforbid any scope on type "medical"\n')
    own = Source("alice.policy", H + 'permit view on type "medical"\n')
    diags = check_sources([glob, own])
    (d,) = diags
    assert (d.code, d.file, d.line, d.column) == ("W300", "alice.policy", 2, 1)
    assert "ops.policy:2" in d.message


def test_other_owners_forbid_shadows_nothing():
    bob = Source("bob.policy", 'owner "bob"\nforbid any scope on any resource\n')
    alice = Source("alice.policy", H + "permit view on any resource\n")
    assert check_sources([bob, alice]) == []


def test_duplicate_rule_across_an_owners_files_and_scope_order():
    a = Source("a.policy", H + 'permit view, download on type "album"\n')
    b = Source("b.policy", H + 'permit download, view on type "album"\n')
    (d,) = check_sources([a, b])
    assert (d.code, d.file, d.line) == ("W301", "b.policy", 2)
    assert "a.policy:2" in d.message


def test_same_rule_text_with_different_groups_is_not_a_duplicate():
    a = Source("a.policy", H + 'group g = ["x"]\npermit view on any resource when claims.e in g\n')
    b = Source("b.policy", H + 'group g = ["y"]\npermit view on any resource when claims.e in g\n')
    assert check_sources([a, b]) == []


def test_conflicting_claims_across_an_owners_files():
    a = Source(
        "a.policy", H + 'claims email from "https://a" as jwt\npermit view on any resource when claims.email == "x"\n'
    )
    b = Source("b.policy", H + 'claims email from "https://b" as jwt\n')
    diags = check_sources([a, b])
    d = the(diags, "E207")
    assert (d.file, d.line, d.column, caret_text(d)) == ("b.policy", 2, 8, "email")
    assert "a.policy:2" in d.hint
    # the same declaration twice, or by another owner, is no conflict
    c = Source(
        "c.policy",
        'owner "bob"\nclaims email from "https://b" as jwt\npermit view on any resource when claims.email == "x"\n',
    )
    assert [d.code for d in check_sources([a, c])] == []


def test_group_of_mixed_kinds_names_them_in_words():
    d = the(check(H + 'group g = [true, "a", 2026-01-01]\npermit view on any resource when claims.x in g\n'), "E210")
    assert d.message == "group 'g' mixes true/false values, strings and timestamps"


def test_list_of_other_kind_says_why_it_never_matches():
    d = the(check(H + "group ids = [1, 2]\npermit view on any resource when client.id in ids\n"), "E201")
    assert d.message == "this list holds only numbers, so a string is never in it"
    assert (d.line, d.column, caret_text(d)) == (3, 47, "ids")


@pytest.mark.parametrize("fmt", ["jwt", "id_token", '"jwt"', '"urn:ietf:params:oauth:token-type:saml2"'])
def test_claim_token_formats_accepted(fmt):
    assert (
        check(H + f'claims email from "https://a" as {fmt}\npermit view on any resource when claims.email == "x"\n')
        == []
    )


def test_id_token_name_and_uri_are_the_same_format():
    text = H + (
        'claims email from "https://a" as id_token\nclaims email from "https://a" as '
        '"http://openid.net/specs/openid-connect-core-1_0.html#IDToken"\n'
        'permit view on any resource when claims.email == "x"\n'
    )
    assert check(text) == []


def test_owner_upload_rules():
    ok = check_sources([Source("up.policy", "permit view on any resource\n", owner="alice")])
    assert ok == []
    same = check_sources([Source("up.policy", H + "permit view on any resource\n", owner="alice")])
    assert same == []
    (d,) = check_sources([Source("up.policy", H + "permit view on any resource\n", owner="bob")])
    assert (d.code, d.line, d.column, caret_text(d)) == ("E202", 1, 7, '"alice"')
    assert 'owner "bob"' in d.hint
    (g,) = check_sources([Source("up.policy", "global\nforbid view on any resource\n", owner="bob")])
    assert (g.code, g.line, g.column, caret_text(g)) == ("E212", 1, 1, "global")
    assert no_token_names(g.message + g.hint)


def test_claim_read_in_another_file_of_the_owner_or_by_a_global_declaration_is_used():
    decl = Source("decl.policy", H + 'claims email from "https://a" as jwt\n')
    rule = Source("rule.policy", H + 'permit view on any resource when claims.email == "x"\n')
    assert check_sources([decl, rule]) == []
    gdecl = Source("g.policy", 'global\nclaims email from "https://a" as jwt\n')
    assert check_sources([gdecl, rule]) == []
    assert [d.code for d in check_sources([gdecl])] == ["W308"]


def test_types_declared_globally_apply_to_owners():
    g = Source("g.policy", 'global\ntype "album" has scopes view\n')
    a = Source("a.policy", H + 'permit edit on type "album"\n')
    (d,) = check_sources([g, a])
    assert (d.code, d.file, caret_text(d)) == ("W302", "a.policy", "edit")
    assert "g.policy:2" in d.hint


def test_same_type_declared_twice_alike_is_fine():
    text = H + 'type "a" has scopes view, edit\ntype "a" has scopes edit, view\npermit view on type "a"\n'
    assert check(text) == []


def test_diagnostics_are_sorted_by_file_line_column():
    b = Source("b.policy", H + 'permit view on any resource when claims.x in nope or now > 5\ngroup g = ["a"]\n')
    a = Source("a.policy", H + "permit view on any resource when resource.nme\n")
    diags = check_sources([b, a])
    keys = [(d.file, d.line, d.column) for d in diags]
    assert keys == sorted(keys)
    assert [d.code for d in diags] == ["E205", "E200", "E201", "W303"]


def test_parse_and_check_errors_are_sorted_together():
    bad = Source("a.policy", H + 'permit view on name "x\n')
    warn = Source("b.policy", H + 'permit view on name like "x"\n')
    diags = check_sources([warn, bad])
    assert [(d.file, d.code) for d in diags] == [("a.policy", "E101"), ("b.policy", "W305")]


def test_check_file_entry_point_for_one_file():
    text = H + "permit view on any resource when now > 5\n"
    pf, _ = parse(text, "x.policy")
    assert [d.code for d in check_file(pf, text, now=NOW)] == ["E201"]


def test_check_without_text_still_locates():
    pf, _ = parse(H + "permit view on any resource when claims.e in g\n", "x.policy")
    (d,) = check_files([pf], {})
    assert (d.code, d.line, d.column, d.source_line) == ("E200", 2, 46, "")
    assert d.render().splitlines()[0] == "x.policy:2:46: error[E200]: unknown group 'g'"


def test_compile_refuses_a_policy_with_checker_errors():
    with pytest.raises(policy_lang.PolicyError) as e:
        policy_lang.loads(H + "permit view on any resource when now > 5\n", "x.policy")
    assert [d.code for d in e.value.errors] == ["E201"]


def test_warnings_do_not_stop_compilation_and_are_kept():
    ps = policy_lang.loads(H + 'permit view on name like "summer"\n', "x.policy")
    assert [d.code for d in ps.diagnostics] == ["W305"]


def test_an_empty_owner_is_refused_not_made_global():
    """owner "" would share the global files' index key for claims declarations."""
    text = 'owner ""\nclaims email from "https://evil" as jwt\npermit view on any resource when claims.email == "x"\n'
    with pytest.raises(policy_lang.PolicyError) as e:
        policy_lang.loads(text, "x.policy")
    assert [d.code for d in e.value.errors] == ["E217"]


def test_a_span_over_several_lines_is_underlined_to_the_end_of_its_first_line():
    text = H + 'permit view on any resource\n  when claims.a == "x" and\n       claims.a == "y"\n'
    d = the(check(text), "W306")
    assert d.render().splitlines()[1:3] == [
        '3 |   when claims.a == "x" and',
        "           " + "^" * len('claims.a == "x" and'),
    ]


def test_group_declared_in_another_file_of_the_owner_says_so():
    decl = Source("groups.policy", H + 'group family = ["bob@example.com"]\n')
    use = Source("rules.policy", H + "permit view on any resource when claims.email in family\n")
    diags = check_sources([decl, use])
    d = the(diags, "E200")
    assert d.file == "rules.policy"
    assert d.hint == (
        "group 'family' is declared in groups.policy, but a group can only be used "
        "in the file that declares it: declare it here too"
    )
