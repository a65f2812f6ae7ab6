"""One reader, two backends: the compiled one (lark-cython's LALR loop fed by the
one-pass lexer) builds exactly the AST that Lark's own reader builds, comments
and diagnostics included, over generated policies and generated mistakes; it
hands a text to Lark's reader only where its own tokens are refused, and every
such hand-over is counted. Keywords are whole words in both backends (E120).
Nesting beyond the documented limit is a located E116 everywhere, never a
RecursionError.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import policy_lang
from policy_lang import PolicyError
from policy_lang.cli import main as cli_main
from policy_lang.syntax import MAX_DEPTH, grammar, parse
from policy_lang.syntax import reader as R

H = 'owner "alice"\n'
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def read(text: str, backend: str) -> str:
    """Everything ``parse`` gives, positions, comments and diagnostics included."""
    pf, diags = parse(text, "g.policy", "alice", backend=backend)
    return repr((pf, pf.comments if pf else None, diags))


# ------------------------------------------------------------------ generated policies

KEYWORD_NAMES = sorted(grammar.KEYWORDS)  # after 'claims .', 'client .' or 'resource .' any name goes
names = st.from_regex(r"[a-z][a-z0-9_\-]{0,6}", fullmatch=True).filter(lambda w: w not in grammar.KEYWORDS)
member = st.one_of(names, st.sampled_from(KEYWORD_NAMES))
strings = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8
).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"')
gap = st.sampled_from([" ", "  ", "\t", "\n  ", " # note\n  ", "\r\n "])


@st.composite
def literal(draw, depth: int = 0) -> str:
    kinds = ["string", "number", "bool", "timestamp", "duration"] + (["list"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "string":
        return draw(strings)
    if kind == "number":
        return draw(st.sampled_from(["0", "18", "-3", "2.5", "-0.25"]))
    if kind == "bool":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "timestamp":
        return draw(st.sampled_from(["2027-01-01", "2027-01-01T09:00:00Z", "2027-06-30T23:59:59+02:00", "2027-02-30"]))
    if kind == "duration":
        return draw(st.sampled_from(["30d", "12h", "15m", "1w", "0s"]))
    items = draw(st.lists(literal(depth + 1), max_size=3))
    return "[" + ", ".join(items) + draw(st.sampled_from(["", ","])) + "]"


@st.composite
def reference(draw) -> str:
    kind = draw(st.sampled_from(["claim", "claim-spaced", "claim-quoted", "client", "resource", "now"]))
    if kind == "claim":
        return "claims." + ".".join(draw(st.lists(names, min_size=1, max_size=3)))
    if kind == "claim-spaced":
        return "claims" + "".join(" . " + m for m in draw(st.lists(member, min_size=1, max_size=3)))
    if kind == "claim-quoted":
        return f"claims[{draw(strings)}]"
    if kind == "client":
        return draw(st.sampled_from(["client.", "client . "])) + draw(member)
    if kind == "resource":
        return draw(st.sampled_from(["resource.", "resource . "])) + draw(member)
    return "now"


def operand(depth: int) -> st.SearchStrategy[str]:
    plain = st.one_of(reference(), literal(), names)
    if depth >= 3:
        return plain
    return st.one_of(plain, condition(depth + 1).map(lambda c: f"({c})"))


@st.composite
def comparison(draw, depth: int) -> str:
    op = draw(
        st.sampled_from(
            [
                "==",
                "!=",
                "<",
                "<=",
                ">",
                ">=",
                "in",
                "not in",
                "contains",
                "starts with",
                "ends with",
                "like",
                "has",
                "",
            ]
        )
    )
    if op == "has":
        return "has " + draw(reference())
    left = draw(operand(depth))
    if op == "":
        return left
    return f"{left} {op} {draw(operand(depth))}"


@st.composite
def condition(draw, depth: int = 0) -> str:
    shape = draw(st.sampled_from(["cmp", "cmp", "not", "and", "or"]))
    if shape == "cmp" or depth >= 3:
        return draw(comparison(depth))
    if shape == "not":
        return "not " + draw(condition(depth + 1))
    items = draw(st.lists(condition(depth + 1), min_size=2, max_size=3))
    return f" {shape}{draw(gap)}".join(items)


@st.composite
def rule(draw) -> str:
    effect = draw(st.sampled_from(grammar.EFFECTS))
    scopes = draw(
        st.one_of(st.just("any scope"), st.lists(st.one_of(names, strings), min_size=1, max_size=3).map(", ".join))
    )
    target = draw(
        st.one_of(
            st.just("any resource"),
            strings.map(lambda s: f"resource {s}"),
            st.tuples(strings, st.sampled_from(["", ' name "n"', ' name like "p/*"'])).map(
                lambda t: f"type {t[0]}{t[1]}"
            ),
            strings.map(lambda s: f"name {s}"),
            strings.map(lambda s: f"name like {s}"),
        )
    )
    text = f"{effect} {scopes}{draw(gap)}on {target}"
    if draw(st.booleans()):
        text += f"{draw(gap)}when {draw(condition())}"
    if draw(st.booleans()):
        text += f"{draw(gap)}unless {draw(condition())}"
    text += draw(st.sampled_from(["", " for 30d", " until 2030-01-01", " for 2x"]))
    return text


@st.composite
def declaration(draw) -> str:
    kind = draw(st.sampled_from(["group", "claims", "type"]))
    if kind == "group":
        return f"group {draw(names)} = {draw(literal(1).filter(lambda x: x.startswith('[')) | st.just('[]'))}"
    if kind == "claims":
        claims = ", ".join(draw(st.lists(st.one_of(names, strings), min_size=1, max_size=3)))
        token_format = draw(st.sampled_from(["id_token", "jwt", '"jwt"']))
        return f"claims {claims} from {draw(strings)} as {token_format}"
    scopes = ", ".join(draw(st.lists(st.one_of(names, strings), min_size=1, max_size=3)))
    return f"type {draw(strings)} has scopes {scopes}"


@st.composite
def policy(draw) -> str:
    header = draw(st.sampled_from(['owner "alice"\n', "global\n", "", "# a comment\n"]))
    items = draw(st.lists(st.one_of(rule(), declaration()), max_size=5))
    return header + "".join(item + draw(st.sampled_from(["\n", "\n\n", "  # why\n"])) for item in items)


@st.composite
def mistake(draw) -> str:
    """A generated policy with a few characters deleted, inserted or two words run together."""
    text = draw(policy())
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "join"]))
        if op == "delete":
            text = text[:k] + text[k + 1 :]
        elif op == "insert":
            text = text[:k] + draw(st.sampled_from(list(' \n\t."#[]()=<>,-_abz0925\\@\r'))) + text[k:]
        else:  # the blank after the next word removed: two words run together
            space = text.find(" ", k)
            text = text if space < 0 else text[:space] + text[space + 1 :]
    return text


@PROPERTY
@given(policy())
@example('owner "alice"\npermit view on any resource when client . when == 1 and claims . type == 2\n')
def test_generated_policies_build_the_same_ast_in_both_backends(text):
    assert read(text, "compiled") == read(text, "lark")


@PROPERTY
@given(mistake())
@example(H + "permitview on any resource\n")
@example(H + "permit view on any resourcewhen claims.x == 1\n")
def test_generated_mistakes_give_the_same_answer_in_both_backends(text):
    """Errors included: the same diagnostics (or the same file, where the mistake still reads)."""
    assert read(text, "compiled") == read(text, "lark")


@PROPERTY
@given(policy())
def test_the_compiled_backend_reads_generated_policies_itself(text):
    """A text that reads (the generator makes a few that do not: ``for 2x``) is
    handed to Lark's reader only where a keyword stands as a name (``client .
    when``); an error always is. Each hand-over is counted."""
    before = R.rereads()
    pf, _ = parse(text, "g.policy", "alice")
    handed = R.rereads() - before
    keyword_as_name = any(f". {w}" in text for w in grammar.KEYWORDS)
    assert handed == (1 if pf is None else handed if keyword_as_name else 0)


def test_a_hand_over_is_counted_and_logged(caplog):
    before = R.rereads()
    with caplog.at_level(logging.DEBUG, logger="policy_lang.syntax"):
        pf, diags = parse(H + "permit view on any resource when claims.x = 1\n", "h.policy")
    assert pf is None and [d.code for d in diags] == ["E114"]
    assert R.rereads() == before + 1
    assert any("h.policy" in r.getMessage() and "Lark's reader" in r.getMessage() for r in caplog.records)


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="no such reader backend"):
        parse(H, "x.policy", backend="fast")  # type: ignore[arg-type]


# ------------------------------------------------------------------ whole words


@pytest.mark.parametrize("backend", R.BACKENDS)
@pytest.mark.parametrize(
    "text,word,meant",
    [
        ("permitview on any resource\n", "permitview", "permit view"),
        ("permit view on any resourcewhen claims.x == 1\n", "resourcewhen", "resource when"),
        ("permit view on anyresource\n", "anyresource", "any resource"),
        ('permit view on type "t" namelike "n*"\n', "namelike", "name like"),
        ("permit view on any resource when claims.x == 1 andclaims.y == 2\n", "andclaims", "and claims"),
        ("forbids view on any resource\n", "forbids", "forbid"),
    ],
)
def test_keywords_run_together_are_an_error_naming_the_word(backend, text, word, meant):
    pf, diags = parse(H + text, "w.policy", backend=backend)
    assert pf is None and [d.code for d in diags] == ["E120"]
    (d,) = diags
    assert d.message == f"'{word}' is not a word of the language: did you mean '{meant}'?"
    assert d.line == 2 and d.source_line[d.column - 1 : d.end_column - 1] == word


def test_keywords_run_together_are_refused_by_load_and_check(tmp_path, capsys):
    with pytest.raises(PolicyError) as e:
        policy_lang.loads(H + "permitview on any resource\n", "w.policy")
    assert [d.code for d in e.value.diagnostics] == ["E120"]
    (tmp_path / "w.policy").write_text(H + "permit view on any resourcewhen claims.x == 1\n")
    assert cli_main(["check", str(tmp_path / "w.policy")]) == 1
    assert "error[E120]: 'resourcewhen' is not a word of the language" in capsys.readouterr().out


def test_keywords_still_read_as_names_where_only_a_name_goes():
    """Whole words change nothing where the grammar expects a name: after 'client .'."""
    ps = policy_lang.loads(H + 'permit view on any resource when client . when == "x"\n', "n.policy")
    assert (
        ps.decide({"resource": {"id": "r", "owner": "alice"}, "scopes": ["view"], "client": {"when": "x"}}).decision
        == "permit"
    )


def test_every_keyword_list_comes_from_the_grammar():
    from policy_lang import fmt
    from policy_lang.check import RESERVED

    words = set(grammar.KEYWORDS)
    assert {"permit", "forbid", "ask", "on", "when", "claims", "true"} <= words
    assert words == RESERVED and fmt.keywords() == words
    assert grammar.EFFECTS == ("permit", "forbid", "ask")


def test_the_language_page_lists_the_words_of_the_grammar():
    page = (Path(__file__).resolve().parents[2] / "docs" / "policy-language.md").read_text(encoding="utf-8")
    listed = page.split("<!-- keywords: begin -->")[1].split("<!-- keywords: end -->")[0]
    assert listed.split() == [f"`{w}`" for w in grammar.KEYWORDS]


# ------------------------------------------------------------------ nesting


def nested(kind: str, n: int) -> str:
    body = {
        "not": "not " * n + "claims.a == 1",
        "parens-or": "(claims.a == 2 or " * n + "claims.a == 1" + ")" * n,
        "parens-and-not": "(not claims.a == 2 and " * n + "claims.a == 1" + ")" * n,
        "list": "claims.a in " + "[" * n + "]" * n,
    }[kind]
    return H + "permit view on any resource when " + body + "\n"


@pytest.mark.parametrize("kind", ["not", "parens-or", "parens-and-not", "list"])
@pytest.mark.parametrize("n", [MAX_DEPTH * 2, 1_000, 50_000])
def test_nesting_beyond_the_limit_is_a_located_syntax_error_everywhere(kind, n, tmp_path, capsys):
    text = nested(kind, n)
    for backend in R.BACKENDS:
        pf, diags = parse(text, "deep.policy", backend=backend)
        assert pf is None and [(d.code, d.line) for d in diags] == [("E116", 2)]
        assert diags[0].column > 1 and "nested more than 64 levels" in diags[0].message
    with pytest.raises(PolicyError) as e:
        policy_lang.loads(text, "deep.policy")
    assert [d.code for d in e.value.diagnostics] == ["E116"]
    (tmp_path / "deep.policy").write_text(text)
    assert cli_main(["check", str(tmp_path / "deep.policy")]) == 1
    assert "error[E116]" in capsys.readouterr().out


def test_the_library_leaves_the_interpreter_as_it_found_it():
    limit = sys.getrecursionlimit()
    policy_lang.loads(nested("not", MAX_DEPTH - 2), "ok.policy")  # 62 nots, a comparison, its operands
    with pytest.raises(PolicyError):
        policy_lang.loads(nested("not", 50_000), "deep.policy")
    assert sys.getrecursionlimit() == limit
