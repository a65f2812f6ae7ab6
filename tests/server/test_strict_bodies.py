"""The one strict body reader (app/body.py): its rules, and what each kind of endpoint answers
when a body breaks one — 400 ``invalid_request`` for the APIs, a clear error page for a
person's browser, never a 500 (F-29; deep JSON: issue 10 point 8)."""

from __future__ import annotations

import httpx
import pytest

from app.body import MAX_DEPTH, MAX_SAFE_INTEGER, BodyError, loads_strict, parse_form
from tests.pages.pages_support import sign_in
from tests.server.grant_support import *

# -- the reader's rules ---------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded in UTF-8
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'{"a": "x\\u0000"}', "NUL"),
        (b'{"a": 1, "a": 2}', "given twice"),
        (b'[{"b": {"a": 1, "a": 1}}]', "given twice"),
        (b"[9007199254740992]", "larger than"),
        (b"[-9007199254740992]", "larger than"),
        (b"[1" + b"0" * 5000 + b"]", "larger than"),
        (b"[1e400]", "too large"),
        (b"[NaN]", "NaN is not JSON"),
        (b"[-Infinity]", "-Infinity is not JSON"),
        (_nested(MAX_DEPTH + 1).encode(), "nested more than"),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nested more than"),
        (_nested(1000).encode(), "nested more than"),
        (_nested(100_000).encode(), "nested more than"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b"{} {}", "not valid JSON"),
    ],
)
def test_the_reader_refuses_what_breaks_a_rule(raw, reason):
    with pytest.raises(BodyError, match=reason):
        loads_strict(raw)


def test_the_reader_accepts_everything_within_the_rules():
    assert loads_strict(_nested(MAX_DEPTH)) is not None
    assert loads_strict(f"[{MAX_SAFE_INTEGER}, {-MAX_SAFE_INTEGER}, 1e308, -0.5]") == [
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
        1e308,
        -0.5,
    ]
    assert loads_strict('{"a": "\\ud83d\\ude00 \\u00e9", "b": {"a": 1}}') == {"a": "😀 é", "b": {"a": 1}}


@pytest.mark.parametrize("raw", [b"a=\xff", b"a=%ff", b"a=%ED%A0%80", "&".join(["x=1"] * 1001).encode()])
def test_the_form_reader_refuses_bad_bytes_and_too_many_fields(raw):
    with pytest.raises(BodyError):
        parse_form(raw)


def test_the_form_reader_keeps_order_blanks_and_repeats():
    assert parse_form(b"a=1&b=&a=%C3%A9+x") == [("a", "1"), ("b", ""), ("a", "é x")]


# -- the owner API ----------------------------------------------------------------------


DEEP = [1000, 5000, 100_000]


@pytest.fixture()
def owner_auth(uma):
    owner = uma.user()
    return owner, (owner.username, owner.password)


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "permit view on any resource \\ud800"}',
        b'{"text": "\\udc00"}',
        b'{"text": "permit view on any resource", "text": "x"}',
        b'{"text": "permit view on any resource", "x": 1e999}',
    ],
)
def test_put_owner_policy_refuses_what_the_reader_refuses(uma, owner_auth, body):
    owner, auth = owner_auth
    r = uma.http.put("/owner/policy", content=body, headers={"Content-Type": "application/json"}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert uma.http.get("/owner/policy", auth=auth).status_code == 404  # nothing was stored


@pytest.mark.parametrize("depth", DEEP)
def test_deep_json_to_the_owner_api_is_invalid_request(uma, owner_auth, depth):
    owner, auth = owner_auth
    deep = '{"text": ' + _nested(depth) + "}"
    r = uma.http.put("/owner/policy", content=deep, headers={"Content-Type": "application/json"}, auth=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "nested more than" in r.json()["error_description"]
    r = uma.http.post(
        "/owner/requests/1/approve", content=_nested(depth), headers={"Content-Type": "application/json"}, auth=auth
    )
    assert r.status_code in (400, 404)  # no such request of this owner may be found first; never a 500


# -- the pages -------------------------------------------------------------------------


@pytest.fixture()
def browser(uma, pat_for) -> httpx.Client:
    """A signed-in owner with one registered resource; the anti-CSRF token sent with every request."""
    owner = uma.user()
    pat = pat_for(owner.username)
    r = uma.http.post("/uma/resources", json={"name": "album", "resource_scopes": ["view"]}, headers=pat.headers)
    assert r.status_code == 201
    with httpx.Client(base_url=uma.url, timeout=30, follow_redirects=False) as client:
        client.headers["X-CSRF-Token"] = sign_in(client, owner)
        client.resource_id = r.json()["_id"]  # type: ignore[attr-defined]
        yield client


@pytest.mark.parametrize("depth", DEEP)
def test_deep_json_to_the_editor_check_is_invalid_request(browser, depth):
    deep = '{"text": ' + _nested(depth) + "}"
    r = browser.post("/my/policy/check", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize("depth", [1000, 5000])  # deeper would pass the size limit of the claims field first
def test_deep_claims_in_try_a_request_are_a_clear_page(browser, depth):
    claims = '{"a": ' + _nested(depth) + "}"
    r = browser.post("/my/try", data={"resource_id": browser.resource_id, "claims": claims})
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    assert "nested more than" in r.text


def test_a_browser_gets_an_error_page_for_a_body_the_reader_refuses(browser):
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = browser.post(
        "/my/policy", content=b"text=%ff%fe", headers={**html, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    assert "invalid_request" in r.text and "not UTF-8" in r.text
    r = browser.post(
        "/my/policy/check", content=b'{"text": "\\ud800"}', headers={**html, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "lone surrogate" in r.text
    r = browser.post(
        "/my/policy",
        content=b'--X\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\r\n--X--\r\n',
        headers={**html, "Content-Type": "multipart/form-data; boundary=X"},
    )
    assert r.status_code == 415 and "multipart/form-data is not accepted" in r.text


# -- the OAuth and protection endpoints --------------------------------------------------


def test_oauth_endpoints_read_forms_with_the_same_reader(uma, make_rs):
    rs = make_rs()
    for body in (b"grant_type=client_credentials&scope=%ff", b"grant_type=client_credentials\xff"):
        r = uma.http.post(
            "/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=rs.basic_auth
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        assert "UTF-8" in r.json()["error_description"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"resource_scopes": ["view"], "resource_scopes": []}',
        b'{"resource_scopes": ["view"], "n": 9007199254740993}',
        b'{"resource_scopes": ["view"], "x": ' + _nested(MAX_DEPTH).encode() + b"}",
    ],
)
def test_resource_registration_refuses_what_the_reader_refuses(uma, pat_for, body):
    pat = pat_for(uma.user().username)
    r = uma.http.post("/uma/resources", content=body, headers={**pat.headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
