"""Every surface form of the language page parses to the right AST and means
what its comment says.

The section-1 example file is copied verbatim below (CI has no access to the
shared design folder). ASTs are compared with dataclass equality: positions
and source spellings are excluded from node equality, so the expected trees
are written without them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import policy_lang
from policy_lang import PolicyError, Source
from policy_lang.syntax import ast as A
from policy_lang.syntax import parse
from tests.policy_lang.language_page import SECTION_1_EXAMPLE

# Section 1 of the language page, verbatim (the first line is the page's caption
# naming the file; as a comment it is part of the text here).
SECTION1_EXAMPLE = SECTION_1_EXAMPLE  # the name these tests use

# Section 4 of the language page: the request and its decision, verbatim.
SECTION4_REQUEST = {
    "resource": {
        "id": "r1",
        "owner": "alice",
        "type": "photo-album",
        "name": "summer-2026",
        "scopes": ["view", "download", "print"],
    },
    "scopes": ["view"],
    "claims": {"email": "bob@example.com", "email_verified": True},
    "client": {"id": "photo-app"},
    "time": "2026-11-27T10:00:00Z",
    "approvals": [],
}
SECTION4_DECISION = {
    "decision": "permit",
    "granted": [{"resource_id": "r1", "scopes": ["view"], "expires_at": None}],
    "denied": [],
    "submitted": [],
    "required_claims": [],
    "reasons": [{"scope": "view", "effect": "permit", "rule": "policies/alice.policy:9"}],
}

P = A.NOWHERE
T = "2026-11-27T10:00:00Z"
UTC = UTC


# ---------------------------------------------------------------- helpers


def lit(value, kind: str) -> A.Literal:
    return A.Literal(value, kind, P)


def s(value: str) -> A.Literal:
    return lit(value, "string")


def n(value) -> A.Literal:
    return lit(value, "number")


def lst(*items: A.Literal) -> A.Literal:
    return lit(tuple(items), "list")


def claim(name: str, *path: str) -> A.ClaimRef:
    if path:
        return A.ClaimRef(name, (name, *path), False, P)
    return A.ClaimRef(name, (name,), False, P)


def qclaim(uri: str) -> A.ClaimRef:
    return A.ClaimRef(uri, (uri,), True, P)


def client(name: str) -> A.AttrRef:
    return A.AttrRef("client", name, P)


def resource(name: str) -> A.AttrRef:
    return A.AttrRef("resource", name, P)


def cmp(op: str, left, right) -> A.Compare:
    return A.Compare(op, left, right, P)


def parse_ok(text: str, file: str = "t.policy", owner: str | None = None) -> A.PolicyFile:
    pf, diags = parse(text, file, owner)
    assert pf is not None, [d.render() for d in diags]
    assert not [d for d in diags if d.is_error], [d.render() for d in diags]
    return pf


def one_rule(text: str) -> A.Rule:
    pf = parse_ok('owner "alice"\n' + text)
    assert len(pf.rules) == 1
    return pf.rules[0]


def when_of(cond: str) -> A.Expr:
    return one_rule(f"permit view on any resource when {cond}\n").when


def request(scopes=("view",), claims=None, client=None, resource=None, **extra) -> dict:
    res = {
        "id": "r1",
        "owner": "alice",
        "type": "photo-album",
        "name": "summer-2026",
        "scopes": ["view", "download", "print"],
    }
    res.update(resource or {})
    out = {
        "resource": res,
        "scopes": list(scopes),
        "claims": claims or {},
        "client": client if client is not None else {"id": "photo-app"},
        "time": T,
    }
    out.update(extra)
    return out


def decide(ps: policy_lang.PolicySet, **kw) -> dict:
    return ps.decide(request(**kw)).to_json()


def owner_policy(body: str) -> policy_lang.PolicySet:
    return policy_lang.loads('owner "alice"\n' + body, "alice.policy")


def grants(cond: str, **kw) -> bool:
    """Does ``permit view on any resource when COND`` grant this request?"""
    d = decide(owner_policy(f"permit view on any resource when {cond}\n"), **kw)
    assert d["errors"] == [], d["errors"]
    assert d["decision"] in ("permit", "deny"), d
    return d["decision"] == "permit"


# ---------------------------------------------------------------- the section-1 file


def test_section1_example_parses_to_the_right_ast():
    pf = parse_ok(SECTION1_EXAMPLE, "policies/alice.policy")
    assert pf.owner == "alice" and not pf.is_global
    assert pf.groups == [A.GroupDecl("family", lst(s("bob@example.com"), s("carol@example.com")), P)]
    assert pf.claims == [A.ClaimsDecl(("email", "email_verified"), "https://idp.example.com", "id_token", P)]
    assert [r.ref for r in pf.rules] == [
        "policies/alice.policy:10",
        "policies/alice.policy:15",
        "policies/alice.policy:21",
        "policies/alice.policy:26",
        "policies/alice.policy:31",
    ]
    family, clinic, coworkers, private, oneoff = pf.rules
    assert family == A.Rule(
        "permit",
        ("view", "download"),
        A.Target("type", type="photo-album"),
        A.And(
            (cmp("in", claim("email"), A.GroupRef("family", P)), cmp("==", claim("email_verified"), lit(True, "bool"))),
            P,
        ),
        None,
        None,
        P,
    )
    assert clinic == A.Rule(
        "permit",
        ("read",),
        A.Target("name_like", pattern="health/labs/*"),
        A.And((cmp("==", claim("role"), s("physician")), cmp("==", client("id"), s("clinic-app"))), P),
        None,
        A.Expiry("for", timedelta(days=30), None, "30d", P),
        P,
    )
    assert coworkers == A.Rule(
        "ask",
        ("view",),
        A.Target("type", type="photo-album"),
        cmp("ends with", claim("email"), s("@acme.example")),
        None,
        None,
        P,
    )
    assert private == A.Rule(
        "forbid",
        None,
        A.Target("name_like", pattern="private/*"),
        None,
        cmp("in", client("id"), lst(s("alice-phone"), s("alice-laptop"))),
        None,
        P,
    )
    assert oneoff == A.Rule(
        "permit",
        ("view",),
        A.Target("name", name="summer-2026"),
        cmp("==", claim("email"), s("dave@example.com")),
        None,
        A.Expiry("until", None, datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "2026-12-31T23:59:59Z", P),
        P,
    )
    assert all(r.owner == "alice" for r in pf.rules)
    # every comment is kept (for fmt), including the trailing one on the owner line
    assert len(pf.comments) == 8
    assert pf.comments[1][2] == "# whose resources these rules govern"


@pytest.fixture(scope="module")
def alice() -> policy_lang.PolicySet:
    ps = policy_lang.loads(SECTION1_EXAMPLE, "policies/alice.policy")
    assert not [d for d in ps.diagnostics if d.is_error]
    return ps


ALBUM = {"id": "a1", "type": "photo-album", "name": "holidays"}


def test_section1_family_may_view_and_download_photo_albums(alice):
    for email in ("bob@example.com", "carol@example.com"):
        d = decide(alice, scopes=["view", "download"], resource=ALBUM, claims={"email": email, "email_verified": True})
        assert d["decision"] == "permit"
        assert d["granted"] == [{"resource_id": "a1", "scopes": ["view", "download"], "expires_at": None}]
        assert {r["rule"] for r in d["reasons"]} == {"policies/alice.policy:10"}
    # not family, not verified, not an album: no
    assert (
        decide(alice, resource=ALBUM, claims={"email": "eve@example.com", "email_verified": True})["decision"] == "deny"
    )
    assert (
        decide(alice, resource=ALBUM, claims={"email": "bob@example.com", "email_verified": False})["decision"]
        == "deny"
    )
    assert (
        decide(
            alice,
            resource={"id": "d1", "type": "document", "name": "cv"},
            claims={"email": "bob@example.com", "email_verified": True},
        )["decision"]
        == "deny"
    )
    # print is not granted to family
    d = decide(
        alice, scopes=["view", "print"], resource=ALBUM, claims={"email": "bob@example.com", "email_verified": True}
    )
    assert d["decision"] == "partial"


def test_section1_family_need_info_uses_the_claims_declaration(alice):
    d = decide(alice, scopes=["download"], resource=ALBUM)
    assert d["decision"] == "need_info"
    assert d["required_claims"] == [
        {
            "name": name,
            "friendly_name": name,
            "claim_token_format": ["http://openid.net/specs/openid-connect-core-1_0.html#IDToken"],
            "issuer": ["https://idp.example.com"],
        }
        for name in ("email", "email_verified")
    ]


def test_section1_clinic_app_may_read_lab_results_for_30_days(alice):
    labs = {"id": "l1", "type": "lab-result", "name": "health/labs/2026-11-blood"}
    d = decide(alice, scopes=["read"], resource=labs, claims={"role": "physician"}, client={"id": "clinic-app"})
    assert d["decision"] == "permit"
    assert d["granted"] == [{"resource_id": "l1", "scopes": ["read"], "expires_at": "2026-12-27T10:00:00Z"}]
    assert (
        decide(alice, scopes=["read"], resource=labs, claims={"role": "physician"}, client={"id": "other-app"})[
            "decision"
        ]
        == "deny"
    )
    assert (
        decide(alice, scopes=["read"], resource=labs, claims={"role": "nurse"}, client={"id": "clinic-app"})["decision"]
        == "deny"
    )
    assert (
        decide(
            alice,
            scopes=["read"],
            resource=dict(labs, name="health/imaging/x"),
            claims={"role": "physician"},
            client={"id": "clinic-app"},
        )["decision"]
        == "deny"
    )


def test_section1_coworkers_must_ask_first(alice):
    who = {"email": "joe@acme.example"}
    d = decide(alice, resource=ALBUM, claims=who)
    assert d["decision"] == "request_submitted"
    assert d["submitted"] == [{"resource_id": "a1", "scopes": ["view"]}]
    assert (
        decide(alice, resource=ALBUM, claims=who, approvals=[{"scope": "view", "answer": "approved"}])["decision"]
        == "permit"
    )
    assert (
        decide(alice, resource=ALBUM, claims=who, approvals=[{"scope": "view", "answer": "denied"}])["decision"]
        == "deny"
    )
    # coworkers may only ask for view
    assert decide(alice, scopes=["download"], resource=ALBUM, claims=who)["decision"] == "deny"


def test_section1_nothing_under_private_leaves_alices_devices(alice):
    private_album = {"id": "p1", "type": "photo-album", "name": "private/2026"}
    family = {"email": "bob@example.com", "email_verified": True}
    d = decide(alice, resource=private_album, claims=family)
    assert d["decision"] == "deny"
    assert [r["rule"] for r in d["reasons"]] == ["policies/alice.policy:26"]
    for device in ("alice-phone", "alice-laptop"):
        assert decide(alice, resource=private_album, claims=family, client={"id": device})["decision"] == "permit"
    # any scope, even one no rule names
    assert (
        decide(alice, scopes=["delete"], resource=private_album, client={"id": "x"})["reasons"][0]["rule"]
        == "policies/alice.policy:26"
    )


def test_section1_one_off_share_stops_at_the_end_of_the_year(alice):
    dave = {"email": "dave@example.com"}
    res = {"id": "s1", "type": "album-link", "name": "summer-2026"}
    d = decide(alice, resource=res, claims=dave)
    assert d["decision"] == "permit"
    assert d["granted"][0]["expires_at"] == "2026-12-31T23:59:59Z"
    assert decide(alice, resource=res, claims=dave, time="2026-12-31T23:59:59Z")["decision"] == "permit"
    assert decide(alice, resource=res, claims=dave, time="2027-01-01T00:00:00Z")["decision"] == "deny"


def test_section4_request_gives_the_section4_decision():
    text = SECTION1_EXAMPLE.split("\n", 1)[1]  # the file without the page's caption line
    ps = policy_lang.compile_sources([Source("policies/alice.policy", text)])
    got = ps.decide(SECTION4_REQUEST).to_json()
    want = dict(SECTION4_DECISION, errors=[])
    # reasons also name the resource (several resources share one decision)
    want["reasons"] = [dict(r, resource_id="r1") for r in SECTION4_DECISION["reasons"]]
    assert got == want


# ---------------------------------------------------------------- targets

TARGETS = [
    ("any resource", A.Target("any"), [{"id": "x", "type": "t", "name": "n"}, {"id": "y"}], []),
    ('resource "r9"', A.Target("id", resource_id="r9"), [{"id": "r9"}], [{"id": "r8"}]),
    (
        'type "photo-album"',
        A.Target("type", type="photo-album"),
        [{"type": "photo-album", "name": "a"}],
        [{"type": "document"}, {"type": None}],
    ),
    (
        'name "summer-2026"',
        A.Target("name", name="summer-2026"),
        [{"name": "summer-2026"}],
        [{"name": "summer-2027"}, {"name": None}],
    ),
    (
        'name like "health/*"',
        A.Target("name_like", pattern="health/*"),
        [{"name": "health/labs/1"}, {"name": "health/"}],
        [{"name": "wealth/x"}, {"name": None}],
    ),
    (
        'type "lab" name like "health/*"',
        A.Target("type_name_like", type="lab", pattern="health/*"),
        [{"type": "lab", "name": "health/x"}],
        [{"type": "scan", "name": "health/x"}, {"type": "lab", "name": "other"}],
    ),
    (
        'type "photo-album" name "summer-2026"',
        A.Target("type_name", type="photo-album", name="summer-2026"),
        [{"type": "photo-album", "name": "summer-2026"}],
        [{"type": "photo-album", "name": "winter"}, {"type": "doc", "name": "summer-2026"}],
    ),
]


@pytest.mark.parametrize("text,target,hits,misses", TARGETS, ids=[t[0] for t in TARGETS])
def test_target_forms(text, target, hits, misses):
    rule = one_rule(f"permit view on {text}\n")
    assert rule.target == target
    ps = owner_policy(f"permit view on {text}\n")
    for res in hits:
        assert decide(ps, resource={"id": "r0", "type": None, "name": None, **res})["decision"] == "permit"
    for res in misses:
        assert decide(ps, resource={"id": "r0", "type": None, "name": None, **res})["decision"] == "deny"


# ---------------------------------------------------------------- scopes


def test_scope_names_quoted_uris_and_any_scope():
    uri = "https://photoz.example/scopes/print"
    rule = one_rule(f'permit view, "{uri}", download on any resource\n')
    assert rule.scopes == ("view", uri, "download")
    assert one_rule("forbid any scope on any resource\n").scopes is None
    ps = owner_policy(f'permit view, "{uri}" on any resource\n')
    assert decide(ps, scopes=["view", uri])["decision"] == "permit"
    assert decide(ps, scopes=["download"])["decision"] == "deny"
    ps2 = owner_policy("permit any scope on any resource\n")
    assert decide(ps2, scopes=["view", uri, "whatever-else"])["decision"] == "permit"


# ---------------------------------------------------------------- what conditions read


def test_claims_name_and_quoted_uri_and_nested():
    assert when_of('claims.email == "a"') == cmp("==", claim("email"), s("a"))
    uri = "https://example.com/claims/role"
    assert when_of(f'claims["{uri}"] == "x"') == cmp("==", qclaim(uri), s("x"))
    assert when_of('claims.address.country == "DE"') == cmp("==", claim("address", "country"), s("DE"))
    assert grants(f'claims["{uri}"] == "physician"', claims={uri: "physician"})
    assert not grants(f'claims["{uri}"] == "physician"', claims={uri: "nurse", "role": "physician"})


def test_client_id_and_client_metadata():
    assert when_of('client.id == "x"') == cmp("==", client("id"), s("x"))
    assert when_of('client.client_name starts with "Photo"') == cmp("starts with", client("client_name"), s("Photo"))
    assert grants('client.id == "photo-app"', client={"id": "photo-app"})
    assert not grants('client.id == "photo-app"', client={"id": "other"})
    assert grants('client.client_name starts with "Photo"', client={"id": "c", "client_name": "Photo Printer"})
    assert grants(
        '"https://c.example/cb" in client.redirect_uris', client={"id": "c", "redirect_uris": ["https://c.example/cb"]}
    )


RESOURCE_ATTRS = [
    ("id", 'resource.id == "r1"', {}, {"id": "r2"}),
    ("name", 'resource.name starts with "summer"', {}, {"name": "winter"}),
    ("type", 'resource.type == "photo-album"', {}, {"type": "doc"}),
    ("owner", 'resource.owner == "alice"', {}, None),
    ("scopes", 'resource.scopes contains "print"', {}, {"scopes": ["view"]}),
    (
        "description",
        'resource.description contains "beach"',
        {"description": "at the beach"},
        {"description": "mountains"},
    ),
]


@pytest.mark.parametrize("attr,cond,yes,no", RESOURCE_ATTRS, ids=[r[0] for r in RESOURCE_ATTRS])
def test_every_resource_attribute(attr, cond, yes, no):
    assert when_of(cond).left == resource(attr)
    assert grants(cond, resource=yes)
    if no is not None:
        assert not grants(cond, resource=no)


def test_resource_owner_attribute_reads_the_owner():
    # a global rule sees every owner's resources: resource.owner tells them apart
    ps = policy_lang.loads('global\npermit view on any resource when resource.owner == "alice"\n', "g.policy")
    assert decide(ps)["decision"] == "permit"
    assert decide(ps, resource={"owner": "bob"})["decision"] == "deny"


def test_now():
    assert when_of("now < 2027-01-01") == cmp("<", A.NowRef(P), lit(datetime(2027, 1, 1, tzinfo=UTC), "timestamp"))
    assert grants("now < 2027-01-01")
    assert not grants("now < 2027-01-01", time="2027-02-01T00:00:00Z")


# ---------------------------------------------------------------- operators

OPERATORS = [
    # (condition, AST op, claims that make it true, claims that make it false)
    ("claims.x == 1", "==", {"x": 1}, {"x": 2}),
    ('claims.x != "a"', "!=", {"x": "b"}, {"x": "a"}),
    ("claims.x < 5", "<", {"x": 4}, {"x": 5}),
    ("claims.x <= 5", "<=", {"x": 5}, {"x": 6}),
    ("claims.x > 5", ">", {"x": 6}, {"x": 5}),
    ("claims.x >= 5", ">=", {"x": 5}, {"x": 4}),
    ('claims.x in ["a", "b"]', "in", {"x": "b"}, {"x": "c"}),
    ('claims.x in "abcdef"', "in", {"x": "cde"}, {"x": "xyz"}),
    ('claims.x not in ["a", "b"]', "not in", {"x": "c"}, {"x": "a"}),
    ('claims.x contains "admin"', "contains", {"x": ["user", "admin"]}, {"x": ["user"]}),
    ('claims.x contains "@"', "contains", {"x": "a@b"}, {"x": "ab"}),
    ('claims.x starts with "ab"', "starts with", {"x": "abc"}, {"x": "cab"}),
    ('claims.x ends with "@acme.example"', "ends with", {"x": "j@acme.example"}, {"x": "j@acme.example.org"}),
    ('claims.x like "a*c?"', "like", {"x": "abbbcd"}, {"x": "abbbc"}),
    ('"x" < claims.x', "<", {"x": "y"}, {"x": "a"}),
]


@pytest.mark.parametrize("cond,op,yes,no", OPERATORS, ids=[o[0] for o in OPERATORS])
def test_comparison_operators(cond, op, yes, no):
    node = when_of(cond)
    assert isinstance(node, A.Compare) and node.op == op
    assert grants(cond, claims=yes)
    assert not grants(cond, claims=no)


def test_has_operator():
    assert when_of("has claims.x") == A.Has(claim("x"), P)
    assert when_of("has client.logo_uri") == A.Has(client("logo_uri"), P)
    assert when_of("has resource.description") == A.Has(resource("description"), P)
    assert grants("has claims.x", claims={"x": "anything"})
    assert grants("has client.logo_uri", client={"id": "c", "logo_uri": "https://x"})
    assert not grants("has client.logo_uri", client={"id": "c"})


def test_and_or_not_and_parentheses():
    a, b, c = (cmp("==", claim(x), n(1)) for x in "abc")
    assert when_of("claims.a == 1 and claims.b == 1 and claims.c == 1") == A.And((a, b, c), P)
    assert when_of("claims.a == 1 or claims.b == 1 or claims.c == 1") == A.Or((a, b, c), P)
    assert when_of("not claims.a == 1") == A.Not(a, P)
    assert when_of("not not claims.a == 1") == A.Not(A.Not(a, P), P)
    # precedence: not binds tighter than and, and tighter than or
    assert when_of("claims.a == 1 or claims.b == 1 and claims.c == 1") == A.Or((a, A.And((b, c), P)), P)
    assert when_of("not claims.a == 1 and claims.b == 1") == A.And((A.Not(a, P), b), P)
    assert when_of("(claims.a == 1 or claims.b == 1) and claims.c == 1") == A.And((A.Or((a, b), P), c), P)
    assert when_of("not (claims.a == 1 or claims.b == 1)") == A.Not(A.Or((a, b), P), P)
    assert grants("claims.a == 1 or claims.b == 1 and claims.c == 1", claims={"a": 1, "b": 1, "c": 2})
    assert not grants("(claims.a == 1 or claims.b == 1) and claims.c == 1", claims={"a": 1, "b": 1, "c": 2})
    assert grants("not (claims.a == 1 or claims.b == 1)", claims={"a": 2, "b": 2})


def test_bare_operand_condition_is_a_boolean_test():
    rule = one_rule("permit view on any resource when claims.email_verified\n")
    assert rule.when == claim("email_verified")
    assert grants("claims.email_verified", claims={"email_verified": True})
    assert not grants("claims.email_verified", claims={"email_verified": False})


def test_when_and_unless_together():
    rule = one_rule('permit view on any resource when claims.a == 1 unless client.id == "bad"\n')
    assert rule.when == cmp("==", claim("a"), n(1))
    assert rule.unless == cmp("==", client("id"), s("bad"))
    ps = owner_policy('permit view on any resource when claims.a == 1 unless client.id == "bad"\n')
    assert decide(ps, claims={"a": 1})["decision"] == "permit"
    assert decide(ps, claims={"a": 1}, client={"id": "bad"})["decision"] == "deny"
    ps2 = owner_policy('permit view on any resource unless client.id == "bad"\n')
    assert decide(ps2)["decision"] == "permit"
    assert decide(ps2, client={"id": "bad"})["decision"] == "deny"


# ---------------------------------------------------------------- literals

LITERALS = [
    ('"plain"', s("plain")),
    (
        r'"quote \" backslash \\ newline \n tab \t unicode \u00e9"',
        s('quote " backslash \\ newline \n tab \t unicode é'),
    ),
    ('""', s("")),
    ('"# not a comment"', s("# not a comment")),
    ("42", n(42)),
    ("-3", n(-3)),
    ("2.5", n(2.5)),
    ("0", n(0)),
    ("true", lit(True, "bool")),
    ("false", lit(False, "bool")),
    ("[]", lst()),
    ('["a", 1, true]', lst(s("a"), n(1), lit(True, "bool"))),
    ('["a", "b",]', lst(s("a"), s("b"))),
    ("2027-01-01", lit(datetime(2027, 1, 1, tzinfo=UTC), "timestamp")),
    ("2027-01-01T09:00:00Z", lit(datetime(2027, 1, 1, 9, tzinfo=UTC), "timestamp")),
    ("2027-01-01T09:00Z", lit(datetime(2027, 1, 1, 9, tzinfo=UTC), "timestamp")),
    ("2027-01-01T09:00:00+02:00", lit(datetime(2027, 1, 1, 7, tzinfo=UTC), "timestamp")),
    ("2027-01-01T09:00:00-05:30", lit(datetime(2027, 1, 1, 14, 30, tzinfo=UTC), "timestamp")),
    ("2027-01-01T09:00:00.250Z", lit(datetime(2027, 1, 1, 9, 0, 0, 250000, tzinfo=UTC), "timestamp")),
    ("15s", lit(timedelta(seconds=15), "duration")),
    ("15m", lit(timedelta(minutes=15), "duration")),
    ("12h", lit(timedelta(hours=12), "duration")),
    ("30d", lit(timedelta(days=30), "duration")),
    ("2w", lit(timedelta(weeks=2), "duration")),
]


@pytest.mark.parametrize("text,node", LITERALS, ids=[x[0] for x in LITERALS])
def test_literals(text, node):
    got = when_of(f"claims.x == {text}")
    assert got == cmp("==", claim("x"), node)
    assert got.right.kind == node.kind


def test_string_escapes_are_decoded_before_comparing():
    assert grants(r'claims.x == "say \"hi\" \\ \u00e9"', claims={"x": 'say "hi" \\ é'})


def test_number_and_boolean_literals_do_not_coerce():
    assert grants("claims.x == 2.5", claims={"x": 2.5})
    assert grants("claims.x == 3", claims={"x": 3.0})
    assert not grants("claims.x == true", claims={"x": 1})
    assert not grants('claims.x == "1"', claims={"x": 1})
    assert grants("claims.x == false", claims={"x": False})


def test_timestamp_literals_compare_in_utc():
    assert grants("claims.t < 2027-01-01T09:00:00+02:00", claims={"t": "2027-01-01T06:59:59Z"})
    assert not grants("claims.t < 2027-01-01T09:00:00+02:00", claims={"t": "2027-01-01T07:00:00Z"})
    assert grants("claims.t == 2027-01-01", claims={"t": "2027-01-01T00:00:00Z"})


@pytest.mark.parametrize(
    "text,code",
    [
        ("2027-01-01T09:00:00", "E103"),  # a time needs a zone
        ("2027-02-30", "E103"),  # no such date
        ("9999-12-31T23:59:59-05:00", "E103"),  # after the last representable instant in UTC
        ("0001-01-01T00:00:00+01:00", "E103"),  # before the first
        (r'"bad \q escape"', "E109"),
        ("15y", "E104"),
    ],
)
def test_bad_literals_are_located_errors(text, code):
    pf, diags = parse(f'owner "alice"\npermit view on any resource when claims.x == {text}\n', "t.policy")
    errors = [d for d in diags if d.is_error]
    assert [d.code for d in errors] == [code]
    assert errors[0].line == 2 and errors[0].column > 30


# ---------------------------------------------------------------- declarations


def test_group_declaration_is_a_list():
    pf = parse_ok('owner "alice"\ngroup team = ["a@x", "b@x"]\npermit view on any resource when claims.email in team\n')
    assert pf.groups == [A.GroupDecl("team", lst(s("a@x"), s("b@x")), P)]
    assert pf.rules[0].when == cmp("in", claim("email"), A.GroupRef("team", P))
    ps = owner_policy('group team = ["a@x", "b@x"]\npermit view on any resource when claims.email in team\n')
    assert decide(ps, claims={"email": "b@x"})["decision"] == "permit"
    assert decide(ps, claims={"email": "c@x"})["decision"] == "deny"


@pytest.mark.parametrize(
    "fmt_text,fmt,uri",
    [
        ("id_token", "id_token", "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"),
        ("jwt", "jwt", "urn:ietf:params:oauth:token-type:jwt"),
        ('"urn:example:claims-token"', "urn:example:claims-token", "urn:example:claims-token"),
    ],
)
def test_claims_declaration_formats(fmt_text, fmt, uri):
    text = (
        f'claims email, "https://example.com/claims/role" from "https://idp.example.com" as {fmt_text}\n'
        'permit view on any resource when claims.email == "bob@example.com"\n'
    )
    pf = parse_ok('owner "alice"\n' + text)
    assert pf.claims == [A.ClaimsDecl(("email", "https://example.com/claims/role"), "https://idp.example.com", fmt, P)]
    d = decide(owner_policy(text))
    assert d["required_claims"] == [
        {"name": "email", "friendly_name": "email", "claim_token_format": [uri], "issuer": ["https://idp.example.com"]}
    ]


def test_type_declaration():
    pf = parse_ok('owner "alice"\ntype "photo-album" has scopes view, download, "https://x/print"\n')
    assert pf.types == [A.TypeDecl("photo-album", ("view", "download", "https://x/print"), P)]


def test_for_and_until():
    r = one_rule("permit view on any resource for 30d\n")
    assert r.expiry == A.Expiry("for", timedelta(days=30), None, "30d", P)
    r = one_rule("permit view on any resource until 2027-01-01\n")
    assert r.expiry == A.Expiry("until", None, datetime(2027, 1, 1, tzinfo=UTC), "2027-01-01", P)
    r = one_rule("permit view on any resource when claims.a == 1 unless claims.b == 1 for 12h\n")
    assert r.expiry.duration == timedelta(hours=12) and r.when is not None and r.unless is not None


def test_rules_span_lines_freely_and_comments_are_ignored():
    text = (
        'owner "alice"  # trailing comment\n'
        "# a full-line comment\n"
        "permit   view ,download   # after the scopes\n"
        "    on\n"
        '  type "photo-album"   # after the target\n'
        '        when claims.email == "a#b"  # the # inside the string is not a comment\n'
    )
    pf = parse_ok(text)
    assert pf.rules[0].scopes == ("view", "download")
    assert pf.rules[0].when == cmp("==", claim("email"), s("a#b"))
    assert pf.rules[0].ref == "t.policy:3"
    assert [c[0] for c in pf.comments] == [1, 2, 3, 5, 6]


def test_global_file():
    pf = parse_ok('global\nforbid any scope on name like "private/*"\npermit view on type "public"\n')
    assert pf.is_global and pf.owner is None
    assert all(r.owner is None for r in pf.rules)
    ps = policy_lang.loads('global\nforbid any scope on name like "private/*"\n', "g.policy")
    assert decide(ps, resource={"owner": "anyone", "name": "private/x"})["decision"] == "deny"


def test_header_only_first():
    pf, diags = parse('permit view on any resource\nowner "alice"\n', "t.policy")
    assert pf is None and [d.code for d in diags] == ["E108"]


def test_file_without_owner_is_refused_unless_uploaded():
    with pytest.raises(PolicyError) as e:
        policy_lang.loads("permit view on any resource\n", "t.policy")
    assert [d.code for d in e.value.errors] == ["E203"]


def test_owner_upload_fills_a_missing_owner():
    ps = policy_lang.loads("permit view on any resource\n", "upload.policy", owner="alice")
    assert ps.files[0].owner == "alice" and ps.files[0].owner_filled
    assert ps.rules[0].owner == "alice"
    assert decide(ps)["decision"] == "permit"
    assert decide(ps, resource={"owner": "bob"})["decision"] == "deny"
    # naming oneself is fine
    ps2 = policy_lang.loads('owner "alice"\npermit view on any resource\n', "u.policy", owner="alice")
    assert ps2.files[0].owner == "alice" and not ps2.files[0].owner_filled


def test_owner_upload_naming_someone_else_is_refused():
    with pytest.raises(PolicyError) as e:
        policy_lang.loads('owner "bob"\npermit view on any resource\n', "u.policy", owner="alice")
    assert [d.code for d in e.value.errors] == ["E202"]
    assert e.value.errors[0].line == 1
    with pytest.raises(PolicyError) as e:
        policy_lang.loads("global\npermit view on any resource\n", "u.policy", owner="alice")
    assert [d.code for d in e.value.errors] == ["E212"]


# ---------------------------------------------------------------- the reference page

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "policy-language.md"
_FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)


def _reference_blocks() -> list[tuple[str, str, str]]:
    return [
        (m.group(1), m.group(2).strip(), m.group(3)) for m in _FENCE.finditer(REFERENCE.read_text(encoding="utf-8"))
    ]


def test_reference_policy_blocks_parse_and_check():
    blocks = [b for b in _reference_blocks() if b[0] == "policy"]
    assert len(blocks) >= 10
    for _, _, text in blocks:
        name = text.split("\n", 1)[0].lstrip("# ").strip()
        ps = policy_lang.loads(text, name)  # raises PolicyError on any error
        assert ps.rules
    # the section-1 file is shown verbatim
    assert blocks[0][2] == SECTION1_EXAMPLE


def test_reference_worked_examples_are_the_engines_output():
    policies: dict[str, str] = {}
    pending: tuple[str, dict] | None = None
    checked = 0
    for lang, info, body in _reference_blocks():
        if lang == "policy":
            policies[body.split("\n", 1)[0].lstrip("# ").strip()] = body
        elif lang == "json" and info.startswith("request"):
            names = info.split()[1:]
            pending = (" ".join(names), json.loads(body))
        elif lang == "json" and info == "decision":
            assert pending is not None, "a decision block without its request"
            names, req = pending
            ps = policy_lang.compile_sources([Source(n, policies[n]) for n in names.split()])
            assert ps.decide(req).to_json() == json.loads(body), names
            pending = None
            checked += 1
    assert checked >= 15


def test_a_duration_too_long_to_represent_is_one_located_error():
    pf, diags = parse('owner "alice"\npermit view on any resource for 99999999999999999999d\n', "t.policy")
    assert [(d.code, d.line, d.column) for d in diags] == [("E104", 2, 33)]
    assert "too long" in diags[0].hint
    with pytest.raises(PolicyError) as e:
        policy_lang.loads('owner "alice"\npermit view on any resource for 99999999999999999999d\n')
    assert [d.code for d in e.value.errors] == ["E104"]
