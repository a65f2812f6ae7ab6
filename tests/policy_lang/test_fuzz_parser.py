"""Property tests: no text makes the parser or the checker raise.

Random texts over policy-ish tokens (keywords, punctuation, quotes, digits,
unicode and control characters) and mutated versions of valid policies must
give either a clean parse or located diagnostics, never an exception. When a
text checks without errors it must also compile and decide.

Deterministic in CI: ``derandomize=True`` draws the same examples every run.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policy_lang
from policy_lang import Source, check_sources
from policy_lang.diagnostics import CODES, Diagnostic, PolicyError
from policy_lang.syntax import grammar, parse

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEYWORDS = [*grammar.KEYWORDS, "id_token", "jwt", "allow", "deny"]  # the words of the language, and some near them
PUNCT = [
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    ",",
    ".",
    "(",
    ")",
    "[",
    "]",
    '"',
    "'",
    "#",
    "\\",
    "*",
    "?",
    "&&",
    "||",
    "!",
    ";",
    "{",
    "}",
    "-",
    ":",
    "\u201c",
    "\u201d",
]
VALUES = [
    '"alice"',
    '"bob@example.com"',
    '"photo-album"',
    '"private/*"',
    '""',
    '"a\\"b"',
    '"\\q"',
    '"https://idp.example.com"',
    "0",
    "5",
    "-3",
    "2.5",
    "1.2.3",
    "30d",
    "0d",
    "12h",
    "30x",
    "2026-12-31",
    "2026-12-31T23:59:59Z",
    "2026-02-30",
    "2026-01-01T10:00",
    "claims.email",
    "claims.a.b",
    'claims["https://x/role"]',
    "client.id",
    "resource.name",
    "resource.scopes",
    "resource.nme",
    "family",
    "famly",
    "view",
    "download",
]
ODD = [
    "\n",
    "\n",
    " ",
    "  ",
    "\t",
    "\r\n",
    "\x00",
    "\x01",
    "\x0b",
    "\x0c",
    "\x7f",
    "\u00e9",
    "\u5199",
    "\u200b",
    "\u2028",
    "\U0001f600",
    "\ufeff",
    "\x85",
]
PIECES = KEYWORDS + PUNCT + VALUES + ODD

VALID = [
    """owner "alice"
group family = ["bob@example.com", "carol@example.com"]
claims email, email_verified from "https://idp.example.com" as id_token
permit view, download
  on type "photo-album"
  when claims.email in family and claims.email_verified == true
permit read on name like "health/labs/*" when claims.role == "physician" and client.id == "clinic-app" for 30d
ask view on type "photo-album" when claims.email ends with "@acme.example"
forbid any scope on name like "private/*" unless client.id in ["alice-phone", "alice-laptop"]
permit view on name "summer-2026" when claims.email == "dave@example.com" until 2026-12-31T23:59:59Z
""",
    """global
type "photo-album" has scopes view, download, print
forbid any scope on type "medical" when not (claims.age >= 18 or has claims.guardian)
permit "https://photoz.example/scopes/print" on resource "r1" when now < 2027-01-01 and resource.scopes contains "print"
""",
    """# comment first
owner "bob"   # trailing comment
permit view on type "doc" name like "q?-*" when claims["https://example.com/groups"] contains "staff"
  unless claims.address.country != "NL"
ask edit on any resource when (claims.level > 2.5) == true and resource.name starts with "draft/"
""",
]


def _texts() -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(PIECES), st.text(max_size=3))
    sep = st.sampled_from([" ", " ", "", "\n", "\t"])
    return st.lists(st.tuples(piece, sep), max_size=40).map(lambda parts: "".join(p + s for p, s in parts))


@st.composite
def _mutated(draw) -> str:
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        op = draw(st.sampled_from(["delete", "insert", "swap", "token", "cut", "duplicate", "drop-word"]))
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(PUNCT + ODD + ["a", "1", " "])) + text[i:]
        elif op == "swap" and i + 1 < len(text):
            text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        elif op == "token":
            text = text[:i] + " " + draw(st.sampled_from(PIECES)) + " " + text[i:]
        elif op == "cut":
            text = text[:i]
        elif op == "duplicate":
            j = draw(st.integers(i, min(len(text), i + 40)))
            text = text[:j] + text[i:j] + text[j:]
        elif op == "drop-word":
            words = text.split(" ")
            k = draw(st.integers(0, len(words) - 1))
            text = " ".join(words[:k] + words[k + 1 :])
    return text


def _located(d: Diagnostic, name: str, text: str) -> None:
    assert isinstance(d, Diagnostic)
    assert d.code in CODES and d.severity in ("error", "warning")
    assert d.file == name
    assert d.line >= 1 and d.column >= 1, d
    assert d.line <= text.count("\n") + 1, d
    line = text.split("\n")[d.line - 1].rstrip("\r")
    assert d.source_line == line, d
    assert d.column <= len(line) + 1, d
    assert d.end_column == 0 or d.end_column > d.column, d
    assert d.message and "Traceback" not in d.message
    d.render()  # never raises


def _no_crash(text: str, owner: str | None = None) -> None:
    pf, diags = parse(text, "f.policy", owner)
    for d in diags:
        _located(d, "f.policy", text)
    if pf is None:
        assert any(d.is_error for d in diags)
    all_diags = check_sources([Source("f.policy", text, owner)])
    for d in all_diags:
        _located(d, "f.policy", text)
    if not any(d.is_error for d in all_diags):
        try:
            ps = policy_lang.loads(text, "f.policy", owner)
        except PolicyError as e:  # pragma: no cover - a check/compile disagreement is a bug
            raise AssertionError(f"checked clean but did not compile: {e}") from e
        ps.decide(
            {
                "resource": {"id": "r1", "owner": owner or "alice", "type": "photo-album", "name": "private/x"},
                "scopes": ["view"],
                "claims": {"email": "bob@example.com", "age": 20},
            }
        )


@FUZZ
@given(_texts())
def test_random_token_soup_never_raises(text):
    _no_crash(text)


@FUZZ
@given(_mutated())
def test_mutated_valid_policies_never_raise(text):
    _no_crash(text)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(max_size=60), st.sampled_from([None, "alice", "bob"]))
def test_arbitrary_unicode_text_never_raises(text, owner):
    _no_crash(text, owner)


def test_the_valid_seeds_are_valid():
    for text in VALID:
        assert not any(d.is_error for d in check_sources([Source("f.policy", text)])), text


# ------------------------------------------------------------------ the type checker is sound

LITERALS = [
    '"a"',
    '"n"',
    '""',
    "1",
    "2.5",
    "-3",
    "true",
    "false",
    "2026-01-01",
    "2026-01-01T10:00:00Z",
    "30d",
    "0s",
    '["a", "b"]',
    "[1, 2]",
    "[]",
    '["n"]',
]
REFS = [
    "client.id",
    "client.tier",
    "resource.id",
    "resource.name",
    "resource.type",
    "resource.owner",
    "resource.scopes",
    "resource.description",
    "now",
    "gs",
    "gn",
]
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "starts with", "ends with", "like"]


def _conditions() -> st.SearchStrategy[str]:
    operand = st.sampled_from(LITERALS + REFS)
    compare = st.builds(lambda a, op, b: f"{a} {op} {b}", operand, st.sampled_from(OPS), operand)
    leaf = st.one_of(compare, operand, st.sampled_from(["has client.id", "has resource.name", "has client.tier"]))
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda a: f"not {a}", inner),
            st.builds(lambda a, b: f"({a} and {b})", inner, inner),
            st.builds(lambda a, b: f"({a} or {b})", inner, inner),
            st.builds(lambda a, op, b: f"({a}) {op} {b}", inner, st.sampled_from(["==", "!="]), operand),
        ),
        max_leaves=6,
    )


@settings(
    max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(_conditions(), st.sampled_from(["permit", "forbid", "ask"]))
def test_a_policy_the_checker_accepts_has_no_type_errors_at_run_time(cond, effect):
    """Without claims every value has its static kind, so a clean check means the
    engine never meets a type mismatch (Decision.errors stays empty)."""
    text = f'owner "alice"\ngroup gs = ["a", "n"]\ngroup gn = [1, 2]\n{effect} view on any resource when {cond}\n'
    diags = check_sources([Source("t.policy", text)])
    for d in diags:
        _located(d, "t.policy", text)
    if any(d.is_error for d in diags):
        return
    ps = policy_lang.loads(text, "t.policy")
    got = ps.decide(
        {
            "resource": {
                "id": "r1",
                "owner": "alice",
                "type": "t",
                "name": "n",
                "scopes": ["view"],
                "description": "d",
            },
            "client": {"id": "app"},
            "scopes": ["view"],
            "approvals": [],
            "time": "2026-06-01T00:00:00Z",
        }
    )
    assert got.errors == [], (cond, got.errors)
    if any(d.code == "W306" for d in diags):  # "never true": the rule cannot have decided
        assert not got.reasons or all(r.get("rule") is None for r in got.reasons), cond
