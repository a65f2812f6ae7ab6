"""The compiled parser (lark-cython) and the reference parser read every text alike.

policy_lang.parser takes a tree from the compiled parser only when it reads
the text without error; these tests hold it to the reference parser on the
shipped policies, the language page's example and generated texts.
"""
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from language_page import SECTION_1_EXAMPLE

import policy_lang.parser as P

ROOT = Path(__file__).resolve().parent.parent
TOKENS = ['owner "a"\n', "global\n", "permit", "forbid", "ask", " view", ",", " download",
          " any scope", " on", " any resource", ' type "t"', ' name "n"', ' name like "p/*"',
          ' resource "r"', " when", " unless", " claims.email", ' claims["https://x/y"]',
          " client.id", " resource.name", " now", " ==", " !=", " <", " in", " not in",
          " contains", " starts with", " ends with", " like", " has", " and", " or", " not",
          " (", " )", ' "s"', " 3", " true", " false", " 2027-01-01", " 30d", " for", " until",
          " [", " ]", " family", "\n", "\ngroup family = [\"a\"]\n", " # note\n", '"', "=", "@"]


def both(text: str):
    """(the items read, positions included, or the error type) from each parser."""
    out = []
    for parser in (P._fast_parser(), P._comment_parser()):
        try:
            out.append(repr(P._parse_with_comments(text, parser)))
        except Exception as e:  # noqa: BLE001 - compared by kind below
            out.append(type(e).__mro__[-2])
    return out


def test_the_compiled_parser_is_in_use():
    assert P._fast_parser() is not P._comment_parser()


def test_the_compiled_parser_reduces_with_plain_rule_objects():
    """The speed-up of _lean_tables is in place (if a Lark upgrade defeats it, the
    parser still works, with Lark's own tables: this test says so)."""
    callbacks = P._fast_parser().parser.parser.parser_conf.callbacks
    assert {type(rule) for rule in callbacks if not isinstance(rule, str)} == {P._LeanRule}


def test_shipped_policies_and_the_language_page_parse_alike():
    texts = [SECTION_1_EXAMPLE, P._EVERY_FORM] + [
        p.read_text() for p in sorted((ROOT / "policies").glob("*.policy"))]
    assert len(texts) > 1
    for text in texts:
        fast, ref = both(text)
        assert fast == ref
        assert P.parse(text, "x.policy")[1] == []


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_generated_texts_parse_alike_or_fail_alike(parts):
    text = "".join(parts)
    fast, ref = both(text)
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
    from policy_lang import ast as A

    def condition(ref: str):
        pf, diags = P.parse(f'permit view on any resource when {ref} == "x"\n', "r.policy")
        assert diags == [] and pf is not None
        left = pf.rules[0].when.left
        assert (left.pos.column, left.pos.end_column) == (34, 34 + len(ref))  # the whole reference
        return type(left), getattr(left, "path", None), getattr(left, "entity", None), left.name

    for tight, spaced in [("claims.email", "claims . email"), ("claims.a.b-c", "claims.a . b-c"),
                          ("claims.type", "claims .type"), ("client.when", "client . when"),
                          ("resource.name", "resource. name")]:
        assert condition(tight) == condition(spaced)
        assert condition(tight)[0] in (A.ClaimRef, A.AttrRef)
    # a reference broken off after a dot is still reported where the name is missing
    _, diags = P.parse('permit view on any resource when claims.x. == "x"\n', "r.policy")
    assert [(d.code, d.column) for d in diags] == [("E100", 44)]


def test_ast_nodes_are_made_quickly_yet_stay_frozen_and_compare_without_positions():
    """ast._quick_init replaces the dataclasses' generated __init__: same fields,
    same defaults, same equality and hash (positions excluded), still frozen."""
    import dataclasses

    import pytest

    from policy_lang import ast as A

    here, there = A.Pos("a", 1, 1, 1, 5), A.Pos("b", 9, 9, 9, 9)
    one = A.Compare("==", A.ClaimRef("email", ("email",), False, here), A.Literal("x", "string", here), here)
    two = A.Compare("==", A.ClaimRef("email", ("email",), False, there), A.Literal("x", "string", there), there)
    assert one == two and hash(one) == hash(two) and one.left.name == "email"
    assert A.Target("any").pos == A.NOWHERE and A.Literal(1, "number", here).text == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.op = "!="  # type: ignore[misc]
    with pytest.raises(TypeError):
        A.Not()  # type: ignore[call-arg]
