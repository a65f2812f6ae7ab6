"""The compiled parser (lark-cython's LALR loop fed by a one-pass lexer) and the
reference parser read every text alike.

policy_lang.parser takes the items from the compiled parser only when it reads
the text without error; these tests hold it to the reference parser on the
shipped policies, the language page's example and generated texts, and hold
the one-pass lexer to Lark's contextual lexer in every parser state.
"""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policy_lang.syntax.reader as P
from tests.policy_lang.language_page import SECTION_1_EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
# every form of the language in one file
EVERY_FORM = """owner "o"  # every form of the language
group g = ["a", 1, -2.5, true, false, 2027-01-01, 30d, ["nested"], ]
claims email, "https://x/y" from "https://idp.example" as id_token
claims role from "https://idp.example" as "jwt"
type "t" has scopes view, "edit-all"
permit view, "edit-all" on type "t" name "n" when claims.a in g and not (client.id == "c")
forbid any scope on type "t" name like "p/*" unless claims . a . b != 1 or has claims["https://x/y"]
ask edit on name "n" when claims.a contains "x" and claims.a starts with "y" for 3d
permit view on name like "x*" when claims.a ends with "z" or claims.a like "a*" until 2030-01-01T00:00:00Z
permit view on resource "r" when resource.type not in ["a"] and client . id <= 3 and resource . name > 2
permit view on any resource when now < 2030-01-01 and claims.n >= 1.5 and claims.x == 1h
"""
TOKENS = [
    'owner "a"\n',
    "global\n",
    "permit",
    "forbid",
    "ask",
    " view",
    ",",
    " download",
    " any scope",
    " on",
    " any resource",
    ' type "t"',
    ' name "n"',
    ' name like "p/*"',
    ' resource "r"',
    " when",
    " unless",
    " claims.email",
    ' claims["https://x/y"]',
    " client.id",
    " resource.name",
    " now",
    " ==",
    " !=",
    " <",
    " in",
    " not in",
    " contains",
    " starts with",
    " ends with",
    " like",
    " has",
    " and",
    " or",
    " not",
    " (",
    " )",
    ' "s"',
    " 3",
    " true",
    " false",
    " 2027-01-01",
    " 30d",
    " for",
    " until",
    " [",
    " ]",
    " family",
    "\n",
    '\ngroup family = ["a"]\n',
    " # note\n",
    '"',
    "=",
    "@",
    # keywords where a name goes, words run together, references broken over lines
    " name",
    " type",
    " group",
    "permitview",
    " claims",
    " client",
    " .",
    "\n.",
    " x",
    "\t",
    "\r\n",
    ' "a\\"b"',
    " -1.5",
]


def read(text: str, parse) -> str | type:
    """(the items read, positions included, and the comments kept) by ``parse``, or
    the error type."""
    ctx = P._CTX
    ctx.file, ctx.text, ctx.owner, ctx.comments, ctx.diags = "<policy>", text, None, [], []
    try:
        return repr((parse(text), ctx.comments))
    except Exception as e:
        return type(e).__mro__[-2]
    finally:
        ctx.file = ctx.text = ctx.owner = ctx.comments = ctx.diags = None


def both(text: str):
    """What the compiled parser and the reference parser read."""
    return [read(text, P._fast_parser().parse), read(text, P._comment_parser().parse)]


def one_pass(text: str):
    """What the compiled parser reads from the one-pass lexer's tokens alone."""
    return read(text, P._fast_parser().one_pass)


def test_the_compiled_parser_is_in_use():
    """(If a Lark upgrade defeated the one-pass lexer or the lean tables, the parser
    would still work, with lark-cython as it comes: these tests say so.)"""
    assert isinstance(P._fast_parser(), P._FastReader)


def test_the_compiled_parser_reduces_with_plain_rule_objects():
    """_lean_tables is in place: no Lark rule objects left in the compiled parser's
    reductions. (Lark's own wrappers around the callbacks stay: replacing them paid
    about 2% of a load, and they were generated with eval.)"""
    callbacks = P._fast_parser().lark.parser.parser.parser_conf.callbacks
    assert {type(rule) for rule in callbacks if not isinstance(rule, str)} == {P._LeanRule}


def test_the_one_pass_lexer_reads_each_word_as_the_contextual_lexer_would():
    """In every parser state, a keyword the state accepts is read as that keyword by
    Lark's contextual lexer too, and a plain word as a name where names are accepted:
    so wherever the parser accepts a token of the one-pass lexer, it is the token the
    contextual lexer would have made (its other terminals are tried in Lark's order)."""
    from lark.lexer import LexerState
    from lark.utils import TextSlice

    reader = P._fast_parser()
    lark = P._comment_parser()  # the same grammar: the same states (numbered otherwise)
    states = lark.parser.parser._parse_table.states
    lexers = lark.parser.lexer.lexers
    assert sorted(sorted(map(str, a)) for a in states.values()) == sorted(
        sorted(map(str, a)) for a in reader.lark.parser.parser._parse_table.states.values()
    )
    checked = 0
    for state, actions in states.items():
        accepts = set(map(str, actions))
        words = [(w, t) for w, t in reader.keywords.items() if t in accepts]
        if "NAME" in accepts:
            words.append(("zq_plain-word", "NAME"))
        for word, terminal in words:
            tok = lexers[state].next_token(LexerState(TextSlice.cast_from(word + " ")))
            assert (tok.type, tok.value) == (terminal, word), (state, word)
            checked += 1
    assert checked > 100


def test_texts_the_one_pass_lexer_cannot_read_are_read_by_the_contextual_lexers():
    """A keyword used as a name, words run together, a reference broken over two lines,
    a character that starts no token: the one-pass tokens are refused, and the text is
    read as the reference parser reads it (or refused by both)."""
    for text in [
        "permit permit on any resource\n",
        'group type = ["a"]\npermit view on any resource when claims.a in type\n',
        "permitview on any resource\n",
        "permit view on any resource when claims.email\n.x == 1\n",
        'permit view on any resource when claims.a == "x" @\n',
        " " * 100_000 + "@",
    ]:
        assert isinstance(one_pass(text), type), text
        fast, ref = both(text)
        assert fast == ref, text


def test_shipped_policies_and_the_language_page_parse_alike():
    texts = [SECTION_1_EXAMPLE, EVERY_FORM] + [p.read_text() for p in sorted((ROOT / "policies").glob("*.policy"))]
    assert len(texts) > 1
    for text in texts:
        fast, ref = both(text)
        assert fast == ref
        assert P.parse(text, "x.policy")[1] == []


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_generated_texts_parse_alike_or_fail_alike(parts):
    text = "".join(parts)
    fast, ref = both(text)
    quick = one_pass(text)
    if not isinstance(quick, type):
        assert quick == ref  # whatever the one-pass lexer reads, it reads as the reference does
    if isinstance(ref, type):
        # the reference parser refuses: so does the compiled one (and parse() reports it)
        assert isinstance(fast, type)
        pf, diags = P.parse(text, "g.policy")
        assert pf is None and diags and diags[0].line >= 1
    else:
        assert fast == ref


def test_a_reference_reads_the_same_as_one_token_or_spaced_out():
    """claims.email, client.id and resource.type written without spaces are one token
    (fewer tokens to read on large sets); written with spaces they take the longer rule.
    Both give the same reference, keyword-like names included."""
    from policy_lang.syntax import ast as A

    def condition(ref: str):
        pf, diags = P.parse(f'permit view on any resource when {ref} == "x"\n', "r.policy")
        assert diags == [] and pf is not None
        left = pf.rules[0].when.left
        assert (left.pos.column, left.pos.end_column) == (34, 34 + len(ref))  # the whole reference
        return type(left), getattr(left, "path", None), getattr(left, "entity", None), left.name

    for tight, spaced in [
        ("claims.email", "claims . email"),
        ("claims.a.b-c", "claims.a . b-c"),
        ("claims.type", "claims .type"),
        ("client.when", "client . when"),
        ("resource.name", "resource. name"),
    ]:
        assert condition(tight) == condition(spaced)
        assert condition(tight)[0] in (A.ClaimRef, A.AttrRef)
    # a reference broken off after a dot is still reported where the name is missing
    _, diags = P.parse('permit view on any resource when claims.x. == "x"\n', "r.policy")
    assert [(d.code, d.column) for d in diags] == [("E100", 44)]


def test_ast_nodes_are_made_quickly_yet_stay_frozen_and_compare_without_positions():
    """AST nodes: same fields, same defaults, same equality and hash (positions
    excluded), frozen. (ast._quick_init, which replaced the dataclasses'
    generated __init__, is gone: it paid nothing measurable on a whole load.)"""
    import dataclasses

    import pytest

    from policy_lang.syntax import ast as A

    here, there = A.Pos("a", 1, 1, 1, 5), A.Pos("b", 9, 9, 9, 9)
    one = A.Compare("==", A.ClaimRef("email", ("email",), False, here), A.Literal("x", "string", here), here)
    two = A.Compare("==", A.ClaimRef("email", ("email",), False, there), A.Literal("x", "string", there), there)
    assert one == two and hash(one) == hash(two) and one.left.name == "email"
    assert A.Target("any").pos == A.NOWHERE and A.Literal(1, "number", here).text == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.op = "!="  # type: ignore[misc]
    with pytest.raises(TypeError):
        A.Not()  # type: ignore[call-arg]


def test_the_reference_page_shows_the_grammar_the_parser_uses():
    """docs/policy-language.md section 7 quotes grammar.lark verbatim."""
    page = (ROOT / "docs" / "policy-language.md").read_text()
    start = page.index("```lark\n") + len("```lark\n")
    grammar = (ROOT / "policy_lang" / "syntax" / "grammar.lark").read_text()
    assert page[start : page.index("```", start)] == grammar


def test_mutated_policies_parse_alike_diagnostics_and_comments_included():
    """Shipped policies with characters deleted, inserted or copied at random (seeded):
    parse() gives the same file, comments and diagnostics whichever parser reads."""
    import random

    rng = random.Random(20261127)
    base = [SECTION_1_EXAMPLE, EVERY_FORM] + [p.read_text() for p in sorted((ROOT / "policies").glob("*.policy"))]
    fast_parser = P._fast_parser

    def parse_with(parser_of, text):
        P._fast_parser = parser_of
        try:
            pf, diags = P.parse(text, "m.policy", "o1")
        finally:
            P._fast_parser = fast_parser
        return repr(pf), repr(diags), pf.comments if pf else None

    read_in_one_pass = 0
    for _ in range(600):
        text = rng.choice(base)
        for _ in range(rng.randint(1, 3)):
            k, op = rng.randrange(len(text) + 1), rng.random()
            if op < 0.4:
                text = text[:k] + text[k + 1 :]
            elif op < 0.8:
                text = text[:k] + rng.choice(' \n\t."#[]()=<>,-_abz0925\\@\r') + text[k:]
            else:
                j = rng.randrange(len(text) + 1)
                text = text[:k] + text[j : j + 20] + text[k:]
        assert parse_with(fast_parser, text) == parse_with(P._comment_parser, text), text
        read_in_one_pass += not isinstance(one_pass(text), type)
    assert read_in_one_pass > 120  # the one-pass lexer was exercised, not only the fallbacks
