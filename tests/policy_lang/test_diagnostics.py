"""Syntax diagnostics and the rendering of every diagnostic.

Every syntax error is one located diagnostic: file:line:column, the line,
a caret under the exact span, a message and a hint in a policy author's words
(never grammar token names such as NAME, STRING, $END or LPAR).
"""

from __future__ import annotations

import re

import pytest

import policy_lang
from policy_lang import Source, check_sources, read_sources
from policy_lang.diagnostics import CODES, Diagnostic, PolicyError, make, sort_diagnostics
from policy_lang.syntax import MAX_DEPTH, parse
from policy_lang.syntax.reader import _comment_parser as _parser

TOKEN_NAMES = sorted({t.name for t in _parser().terminals} | {"$END"})
H = 'owner "alice"\n'


def no_token_names(text: str) -> bool:
    for name in TOKEN_NAMES:
        if re.search(r"(?<![A-Za-z_$])" + re.escape(name) + r"(?![A-Za-z_])", text):
            return False
    return True


def caret_text(d: Diagnostic) -> str:
    end = d.end_column if d.end_column > d.column else d.column + 1
    return d.source_line[d.column - 1 : end - 1]


def syntax_error(text: str, name: str = "alice.policy") -> Diagnostic:
    pf, diags = parse(text, name)
    assert len(diags) == 1, [d.render() for d in diags]
    return diags[0]


# (id, text, code, line, column, text under the caret)
SYNTAX = [
    ("E100-extra-value", H + "permit view on any resource when claims.x == 1 2\n", "E100", 2, 48, "2"),
    (
        "E100-missing-comma-in-list",
        H + 'permit view on any resource when claims.x in ["a" "b"]\n',
        "E100",
        2,
        51,
        '"b"',
    ),
    ("E100-missing-comma-between-scopes", H + "permit view download on any resource\n", "E100", 2, 13, "download"),
    ("E100-stray-closing-parenthesis", H + "permit view on any resource when claims.x)\n", "E100", 2, 42, ")"),
    ("E100-unquoted-owner", "owner alice\npermit view on any resource\n", "E100", 1, 7, "alice"),
    ("E101-unterminated-string", H + 'permit view on name "summer\n', "E101", 2, 21, '"summer'),
    ("E102-allow", H + "allow view on any resource\n", "E102", 2, 1, "allow"),
    ("E102-deny", H + "deny view on any resource\n", "E102", 2, 1, "deny"),
    ("E103-no-such-date", H + "permit view on any resource until 2026-02-30\n", "E103", 2, 35, "2026-02-30"),
    (
        "E103-time-without-zone",
        H + "permit view on any resource until 2026-02-03T10:00\n",
        "E103",
        2,
        35,
        "2026-02-03T10:00",
    ),
    ("E104-bad-duration", H + "permit view on any resource for 30x\n", "E104", 2, 33, "30x"),
    ("E105-single-quotes", H + "permit view on name 'x'\n", "E105", 2, 21, "'"),
    (
        "E105-double-ampersand",
        H + "permit view on any resource when claims.a == 1 && claims.b == 2\n",
        "E105",
        2,
        48,
        "&",
    ),
    ("E105-curly-quote", H + "permit view on name \u201cx\u201d\n", "E105", 2, 21, "\u201c"),
    ("E105-control-character", H + "permit view\x01 on any resource\n", "E105", 2, 12, "\x01"),
    ("E106-ends-early", H + "permit view on\n", "E106", 2, 15, ""),
    ("E107-two-dots", H + "permit view on any resource when claims.age > 1.2.3\n", "E107", 2, 47, "1.2.3"),
    ("E108-second-header", H + 'owner "bob"\n', "E108", 2, 1, "owner"),
    ("E109-bad-escape", H + 'permit view on name "a\\qb"\n', "E109", 2, 21, '"a\\qb"'),
    ("E110-unclosed-list", H + 'group g = ["a", "b"\npermit view on any resource\n', "E110", 2, 11, "["),
    ("E110-unclosed-parenthesis", H + "permit view on any resource when (claims.x == 1\n", "E110", 2, 34, "("),
    (
        "E111-and-at-end-of-line",
        H + "permit view on any resource when claims.x == 1 and\nforbid view on any resource\n",
        "E111",
        2,
        48,
        "and",
    ),
    ("E111-when-at-end", H + "permit view on any resource when\n", "E111", 2, 29, "when"),
    ("E111-and-or", H + "permit view on any resource when claims.x == 1 and or claims.y == 2\n", "E111", 2, 52, "or"),
    ("E112-no-scopes", H + "permit on any resource\n", "E112", 2, 1, "permit"),
    ("E113-missing-on", H + "permit view any resource\n", "E113", 2, 13, "any"),
    ("E113-condition-before-target", H + "permit view when claims.x == 1\n", "E113", 2, 13, "when"),
    ("E114-single-equals", H + 'permit view on any resource when claims.role = "x"\n', "E114", 2, 46, "="),
    ("E118-missing-when", H + "permit view on any resource claims.x == 1\n", "E118", 2, 29, "claims"),
    ("E118-missing-when-client", H + 'permit view on any resource client.id == "x"\n', "E118", 2, 29, "client"),
    (
        "E119-missing-and",
        H + "permit view on any resource when claims.x == 1\n  claims.y == 2\n",
        "E119",
        3,
        3,
        "claims",
    ),
    (
        "E115-keyword-as-group",
        H + 'group claims = ["a"]\npermit view on any resource when claims.email in claims\n',
        "E115",
        3,
        50,
        "claims",
    ),
    (
        "E116-too-deep",
        H + "permit view on any resource when " + "not " * (MAX_DEPTH + 5) + "true\n",
        "E116",
        2,
        34 + 4 * MAX_DEPTH,
        "n",
    ),  # the first 'not' deeper than the limit
    ("E120-effect-run-together", H + "permitview on any resource\n", "E120", 2, 1, "permitview"),
    ("E120-target-run-together", H + "permit view on any resourcewhen claims.x == 1\n", "E120", 2, 20, "resourcewhen"),
    # issue 15 point 6: a doubled keyword is named as such, at the second one, wherever it stands
    (
        "E121-and-and",
        H + "permit view on any resource when claims.x == 1 and and claims.y == 2\n",
        "E121",
        2,
        52,
        "and",
    ),
    ("E121-and-and-at-end", H + "permit view on any resource when claims.x == 1 and and\n", "E121", 2, 52, "and"),
    (
        "E121-and-and-then-a-rule",
        H + "permit view on any resource when claims.x == 1 and and\npermit print on any resource\n",
        "E121",
        2,
        52,
        "and",
    ),
    ("E121-or-or", H + "permit view on any resource when claims.x == 1 or or claims.y == 2\n", "E121", 2, 51, "or"),
    ("E121-or-or-at-end", H + "permit view on any resource when claims.x == 1 or or\n", "E121", 2, 51, "or"),
    ("E121-when-when", H + "permit view on any resource when when claims.x == 1\n", "E121", 2, 34, "when"),
    ("E121-when-when-at-end", H + "permit view on any resource when when\n", "E121", 2, 34, "when"),
    ("E121-unless-unless", H + "permit view on any resource unless unless claims.x == 1\n", "E121", 2, 36, "unless"),
    (
        "E121-and-and-lines",
        H + "permit view on any resource\n  when claims.x == 1\n  and\n  and claims.y == 2\n",
        "E121",
        5,
        3,
        "and",
    ),
    ("E121-on-on", H + "permit view on on any resource\n", "E121", 2, 16, "on"),
    ("E121-permit-permit", H + "permit permit view on any resource\n", "E121", 2, 8, "permit"),
]


@pytest.mark.parametrize("text,code,line,column,span", [c[1:] for c in SYNTAX], ids=[c[0] for c in SYNTAX])
def test_each_syntax_error_is_located_in_words(text, code, line, column, span):
    d = syntax_error(text)
    assert d.code == code, d.render()
    assert (d.file, d.line, d.column) == ("alice.policy", line, column), d.render()
    if span:
        assert caret_text(d) == span, d.render()
    assert d.severity == "error" and CODES[code][0] == "error"
    assert d.message and d.hint, d.render()
    assert no_token_names(d.message) and no_token_names(d.hint), d.render()
    rendered = d.render().splitlines()
    assert rendered[0] == f"alice.policy:{line}:{column}: error[{code}]: {d.message}"
    assert rendered[1].startswith(f"{line} | ")
    assert "^" in rendered[2]
    assert rendered[-1] == f"  = help: {d.hint}"


def test_every_parser_code_has_a_case():
    parser_codes = {c for c in CODES if c.startswith("E1")}
    assert parser_codes <= {c[2] for c in SYNTAX}


# Common mistakes → the words the author reads (a mapping over Lark's
# UnexpectedInput: the parser state's accepted tokens, the token and its neighbours).
MISTAKES = {
    "= instead of ==": (
        H + 'permit view on any resource when claims.email = "a@b"\n',
        "E114",
        "write '==' to test equality",
    ),
    "missing on": (H + 'permit view type "photo-album"\n', "E113", "needs 'on' before"),
    "allow instead of permit": (H + "allow view on any resource\n", "E102", "did you mean 'permit'?"),
    "single-quoted string": (H + "permit view on name 'summer'\n", "E105", "double quotes"),
    "missing closing bracket": (
        H + 'permit view on any resource when claims.x in ["a", "b"\npermit read on any resource\n',
        "E110",
        "never closed",
    ),
    "missing closing parenthesis": (H + "permit view on any resource when (claims.x == 1\n", "E110", "never closed"),
    "rule with no scopes": (H + 'permit on type "photo-album"\n', "E112", "names no scopes"),
    "and at end of line": (
        H + "permit view on any resource\n  when claims.a == 1 and\npermit read on any resource\n",
        "E111",
        "ends with 'and'",
    ),
    "and at end of file": (H + "permit view on any resource when claims.a == 1 and\n", "E111", "ends with 'and'"),
    "keyword used as a group name (reference)": (
        H + 'group claims = ["x"]\npermit view on any resource when claims.role in claims\n',
        "E115",
        "word of the policy language",
    ),
    "keyword used as a group name (declaration)": (
        H + 'group now = ["x"]\npermit view on any resource when claims.role in now\n',
        "E115",
        "word of the policy language",
    ),
    "unterminated string": (H + 'permit view on name "summer\n', "E101", "never closed"),
    "&& instead of and": (H + "permit view on any resource when claims.a == 1 && claims.b\n", "E105", "write 'and'"),
    "condition without when": (H + "permit view on any resource claims.x == 1\n", "E118", "write 'when claims.x == 1'"),
    "two conditions without and": (
        H + "permit view on any resource when claims.x == 1\n  not claims.y == 2\n",
        "E119",
        "'and not claims.y == 2'",
    ),
    "misspelt keyword": (H + "permit view on any resource whne claims.a == 1\n", "E100", "did you mean 'when'?"),
    "misspelt header": ('ownr "alice"\npermit view on any resource\n', "E100", "did you mean 'owner'?"),
    "misspelt effect": (H + "permt view on any resource\n", "E102", "did you mean 'permit'?"),
    "scopes without comma": (H + "permit view download on any resource\n", "E100", "separated by commas"),
    "and and": (H + "permit view on any resource when claims.a == 1 and and claims.b == 2\n", "E121", "'and' twice"),
    "and and at the end": (H + "permit view on any resource when claims.a == 1 and and\n", "E121", "'and' twice"),
    "or or": (H + "permit view on any resource when claims.a == 1 or or claims.b == 2\n", "E121", "'or' twice"),
    "when when": (H + "permit view on any resource when when claims.a == 1\n", "E121", "remove one 'when'"),
    "a keyword where a group is named": (
        H + "permit view on any resource when claims.a in when\n",
        "E115",
        "not a group name",
    ),
}


@pytest.mark.parametrize(
    "text",
    [
        H + "permit view on any resource when claims.a == 1 and and claims.b == 2\n",
        H + "permit view on any resource when claims.a == 1 and and\n",
        H + "permit view on any resource when claims.a == 1 or or\n",
        H + "permit view on any resource when when claims.a == 1\n",
        H + "permit view on any resource when when\n",
    ],
)
def test_a_doubled_keyword_is_the_only_error_never_an_unknown_group_issue15(text):
    """The second keyword is not taken for a group's name: one error, E121, no E200/E201."""
    errors = [d for d in check_sources([Source("alice.policy", text)]) if d.is_error]
    assert [d.code for d in errors] == ["E121"], [d.render() for d in errors]
    assert "group" not in errors[0].message


def test_not_not_stays_a_double_negation():
    assert not [
        d
        for d in check_sources([Source("alice.policy", H + "permit view on any resource when not not claims.a == 1\n")])
        if d.is_error
    ]


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_common_mistakes_get_author_words(mistake):
    text, code, phrase = MISTAKES[mistake]
    diags = check_sources([Source("alice.policy", text)])
    errors = [d for d in diags if d.is_error]
    assert errors, mistake
    d = errors[0]
    assert d.code == code, d.render()
    assert phrase in d.message + " " + d.hint, d.render()
    assert no_token_names(d.message + " " + d.hint), d.render()
    assert d.line >= 1 and d.column >= 1


def test_expected_words_name_things_not_tokens():
    d = syntax_error(H + "permit view on any resource when claims.x == 1 2\n")
    assert d.hint == (
        "expected a rule (permit, forbid or ask), a declaration (group, claims or "
        "type), 'and', 'or', 'unless', 'for' or 'until'"
    )
    d = syntax_error(H + "permit view on\n")
    assert d.hint == "expected 'any', 'name', 'resource' or 'type'"
    d = syntax_error(H + 'permit view on any resource when claims.x is "a"\n')
    assert "an operator (==, !=, <, in" in d.hint and no_token_names(d.hint)
    d = syntax_error(H + "permit view on any resource when claims.age 18\n")
    assert d.message == "an operator is missing before 18"
    assert d.hint.endswith("like: claims.age == 18")
    d = syntax_error(H + 'permit view on any resource when claims["https://x/y"] "a"\n')
    assert d.hint.endswith('like: claims["https://x/y"] == "a"')
    d = syntax_error(H + "permit view on any resource when claims.x == ,\n")
    assert d.hint.startswith("expected a value (claims.email, client.id")


def test_allow_renders_exactly():
    d = syntax_error(H + "allow view on any resource\n")
    assert d.render() == (
        "alice.policy:2:1: error[E102]: 'allow' is not a rule effect\n"
        "2 | allow view on any resource\n"
        "    ^^^^^\n"
        "  = help: did you mean 'permit'? (a rule starts with permit, forbid or ask)"
    )


def test_unclosed_list_points_at_the_opening_bracket():
    d = syntax_error(
        H + 'group friends = ["bob@example.com",\n  "carol@example.com"\n'
        "permit view on any resource when claims.email in friends\n"
    )
    assert d.render() == (
        "alice.policy:2:17: error[E110]: this '[' is never closed\n"
        '2 | group friends = ["bob@example.com",\n'
        "                    ^\n"
        "  = help: close the list with ']' after its last item"
    )


def test_dangling_and_renders_at_the_and():
    d = syntax_error(H + "permit view on any resource\n  when claims.a == 1 and\npermit read on any resource\n")
    assert d.render() == (
        "alice.policy:3:22: error[E111]: the condition ends with 'and', but nothing follows it\n"
        "3 |   when claims.a == 1 and\n"
        "                         ^^^\n"
        "  = help: write the rest of the condition after 'and', or remove 'and'"
    )


def test_caret_under_tabs_and_wide_characters():
    text = H + '\tpermit view on name "\u5199\u771f" when claims.x = 1\n'
    d = syntax_error(text)
    assert (d.code, d.line, d.column) == ("E114", 2, 41)
    lines = d.render().splitlines()
    assert lines[1] == '2 |     permit view on name "\u5199\u771f" when claims.x = 1'
    # tab shown as 4 columns, each CJK character as 2: the caret sits under '='
    shown = lines[1].replace("\u5199", "xx").replace("\u771f", "xx")
    assert lines[2].index("^") == shown.index("=")


def test_lines_are_counted_at_newlines_only():
    # a form feed is blank space to the parser but str.splitlines() breaks lines there
    text = H + "\x0c\npermit view on any resource when now > 5\n"
    (d,) = check_sources([Source("a.policy", text)])
    assert (d.code, d.line) == ("E201", 3)
    assert d.source_line == "permit view on any resource when now > 5"


def test_crlf_line_endings_are_not_quoted():
    text = H.replace("\n", "\r\n") + "permit view on any resource when now > 5\r\n"
    (d,) = check_sources([Source("a.policy", text)])
    assert d.source_line == "permit view on any resource when now > 5"
    assert d.render().splitlines()[2].index("^") == d.render().splitlines()[1].index("5")


def test_unexpected_control_character_is_named_not_printed():
    d = syntax_error(H + "permit view\x07 on any resource\n")
    assert "U+0007" in d.message and "\x07" not in d.render()


def test_deep_nesting_is_an_error_not_a_crash_in_every_entry_point():
    deep = H + "permit view on any resource when " + "(" * 5000 + "claims.a == 1" + ")" * 5000
    nots = H + "permit view on any resource when " + "not " * 5000 + "true\n"
    lists = H + "permit view on any resource when claims.a in " + "[" * 3000 + "]" * 3000 + "\n"
    for text in (nots, lists):
        pf, diags = parse(text, "d.policy")
        assert pf is None and [d.code for d in diags] == ["E116"]
        with pytest.raises(PolicyError):
            policy_lang.loads(text, "d.policy")
    # parentheses alone add no depth: this one is fine
    assert (
        policy_lang.loads(deep, "d.policy")
        .decide({"resource": {"id": "r", "owner": "alice"}, "scopes": ["view"], "claims": {"a": 1}})
        .decision
        == "permit"
    )


def test_max_depth_itself_is_accepted():
    text = H + "permit view on any resource when " + "not " * (MAX_DEPTH - 1) + "false\n"
    pf, diags = parse(text, "d.policy")
    assert pf is not None and diags == []


def test_render_without_source_line_or_position():
    d = make("E213", "no such file or directory: x.policy", "x.policy", None, 0, 0)
    assert d.render() == "x.policy: error[E213]: no such file or directory: x.policy"
    assert d.to_json() == {
        "code": "E213",
        "severity": "error",
        "message": "no such file or directory: x.policy",
        "file": "x.policy",
        "line": 0,
        "column": 0,
        "hint": "",
    }


def test_unreadable_path_is_e213(tmp_path):
    sources, diags = read_sources([tmp_path / "missing.policy"])
    assert sources == [] and [d.code for d in diags] == ["E213"]
    bad = tmp_path / "latin1.policy"
    bad.write_bytes(b'owner "\xe9"\n')
    _, diags = read_sources([bad])
    assert [d.code for d in diags] == ["E213"] and "UTF-8" in diags[0].message


def test_caret_at_end_of_line_is_one_wide():
    d = syntax_error(H + "permit view on\n")
    lines = d.render().splitlines()
    assert lines[2] == " " * len("2 | permit view on") + "^"


def test_severity_comes_from_the_code_table():
    assert make("W301", "m", "f", None, 1, 1).severity == "warning"
    assert make("E200", "m", "f", None, 1, 1).is_error
    assert all(sev in ("error", "warning") for sev, _ in CODES.values())
    assert all(re.fullmatch(r"[EW]\d{3}", c) for c in CODES)


def test_sort_diagnostics_orders_by_file_line_column():
    ds = [
        make("E200", "m", "b", None, 1, 5),
        make("W303", "m", "a", None, 3, 1),
        make("E201", "m", "a", None, 2, 9),
        make("E205", "m", "a", None, 2, 3),
    ]
    assert [(d.file, d.line, d.column) for d in sort_diagnostics(ds)] == [
        ("a", 2, 3),
        ("a", 2, 9),
        ("a", 3, 1),
        ("b", 1, 5),
    ]


def test_policy_error_message_is_the_first_error_rendered():
    with pytest.raises(PolicyError) as e:
        policy_lang.loads(H + "allow view on any resource\n", "a.policy")
    assert str(e.value).startswith("a.policy:2:1: error[E102]: 'allow' is not a rule effect\n")


def test_empty_and_comment_only_files_are_clean():
    for text in ("", "\n\n", "# just a comment\n", H, "global\n"):
        assert check_sources([Source("e.policy", text)]) == []


def _deepest_accepted(build) -> str:
    """The deepest text of a shape that the parser still accepts (and the next one refused)."""
    n = 1
    while parse(build(n + 1), "d.policy")[0] is not None:
        n += 1
    assert [d.code for d in parse(build(n + 1), "d.policy")[1]] == ["E116"]
    return build(n)


@pytest.mark.parametrize("shape", ["not", "or", "list", "and-not"])
def test_the_deepest_accepted_policy_runs_through_every_stage(shape):
    """Whatever the parser accepts, the checker, compiler, evaluator and formatter handle
    without overflowing the stack."""
    from policy_lang.fmt import format_text

    head = H + "permit view on any resource when "
    builders = {
        "not": lambda n: head + "not " * n + "claims.a == 1\n",
        "or": lambda n: head + "(claims.a == 2 or " * n + "claims.a == 1" + ")" * n + "\n",
        "list": lambda n: head + "claims.a in " + "[" * n + "1" + "]" * n + "\n",
        "and-not": lambda n: head + "(claims.b == 1 and not " * n + "claims.a == 1" + ")" * n + "\n",
    }
    text = _deepest_accepted(builders[shape])
    assert not any(d.is_error for d in check_sources([Source("d.policy", text)]) if d.code != "E210")
    if shape != "list":
        ps = policy_lang.loads(text, "d.policy")
        ps.decide({"resource": {"id": "r", "owner": "alice"}, "scopes": ["view"], "claims": {"a": 1, "b": 1}})
        assert format_text(text, "d.policy")
