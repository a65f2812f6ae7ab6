"""Every endpoint that takes a body reads it with the one strict reader (app/body.py): invalid
UTF-8, lone surrogates, NUL characters, duplicate keys, huge numbers and deep nesting are
refused with 400 ``invalid_request`` (F-29), never a 500.

The endpoints are found in the app's URL map (every rule with an unsafe method), so an endpoint
added later is fuzzed without being listed here. Each request goes over HTTP to the live server
with every kind of credentials the server takes at once where they do not clash: the session of
a signed-in owner with its anti-CSRF token (pages, owner API), and in turn a PAT (protection
API), an RS client's Basic credentials (OAuth endpoints) or none.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from app.models import PendingRequest
from tests.pages.pages_support import sign_in
from tests.support.server import unique

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


#: (what, content type, body): each is sent to every endpoint.
NASTY: list[tuple[str, str, bytes]] = [
    ("invalid UTF-8 in JSON", JSON, b'{"text": "\xff\xfe", "resource_scopes": ["\xc3"]}'),
    ("encoded surrogate in JSON", JSON, b'{"text": "\xed\xa0\x80", "resource_scopes": []}'),
    ("escaped lone surrogate", JSON, b'{"text": "\\ud800", "resource_scopes": ["\\udfff"], "scopes": ["\\ud800"]}'),
    ("surrogate in a key", JSON, b'{"\\udc00": 1, "resource_scopes": []}'),
    ("NUL in a string", JSON, b'{"text": "permit\\u0000", "resource_scopes": ["a\\u0000"], "scopes": ["\\u0000"]}'),
    (
        "duplicate keys",
        JSON,
        b'{"text": "permit view on any resource", "text": "x", "resource_scopes": [], "resource_scopes": ["a"]}',
    ),
    ("duplicate keys inside", JSON, b'{"resource_scopes": [], "x": {"a": 1, "a": 2}}'),
    ("huge integer", JSON, b'{"resource_scopes": [], "scopes": [1' + b"0" * 5000 + b'], "n": ' + b"9" * 400 + b"}"),
    ("integer past 2^53", JSON, b'{"resource_scopes": [], "resource_id": 9007199254740993}'),
    ("huge float", JSON, b'{"resource_scopes": [], "x": 1e999999, "y": -1e400}'),
    ("NaN and Infinity", JSON, b'{"resource_scopes": [NaN], "x": Infinity}'),
    ("nested 33 deep", JSON, b'{"resource_scopes": [], "x": ' + _nested(32) + b"}"),
    ("nested 1,000 deep", JSON, b'{"text": ' + _nested(1000) + b"}"),
    ("nested 5,000 deep objects", JSON, b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("nested 100,000 deep", JSON, _nested(100_000)),
    ("BOM", JSON, b'\xef\xbb\xbf{"resource_scopes": []}'),
    ("two documents", JSON, b'{"resource_scopes": []} {"resource_scopes": []}'),
    ("invalid UTF-8 in a form", FORM, b"text=\xff\xfe&grant_type=client_credentials&token=\xc3"),
    ("percent-escaped invalid UTF-8", FORM, b"text=%ff%fe&grant_type=%c3&token=%80"),
    ("percent-escaped surrogate", FORM, b"text=%ED%A0%80&grant_type=client_credentials"),
    ("a form of 5,000 fields", FORM, "&".join(f"f{i}=1" for i in range(5000)).encode()),
    (
        "multipart with invalid UTF-8",
        "multipart/form-data; boundary=XX",
        b'--XX\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\xfe\r\n--XX--\r\n',
    ),
    ("invalid UTF-8 text", "text/plain", b"permit view on any resource \xff"),
    ("encoded surrogate text", "text/plain", b"permit view on any resource \xed\xa0\x80"),
    ("invalid UTF-8 untyped", "", b"\xff\xfe{"),
]


@pytest.fixture(scope="module")
def world(live_server, make_user, make_rs, pat_for, engine) -> dict:
    """An owner signed in (session and anti-CSRF token), a PAT, an RS client, a registered resource,
    an uploaded policy (version 1) and a pending request: so that the ids in paths exist and
    bodies are read rather than refused as "not found"."""
    owner = make_user(unique("fuzz-owner"))
    rs = make_rs()
    pat = pat_for(owner.username, rs=rs)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        r = http.put(
            "/owner/policy",
            content=b"permit view on any resource",
            headers={"Content-Type": "text/plain"},
            auth=(owner.username, owner.password),
        )
        assert r.status_code == 200, r.text
        r = http.post("/uma/resources", json={"name": "fuzz", "resource_scopes": ["view"]}, headers=pat.headers)
        assert r.status_code == 201, r.text
        resource_id = r.json()["_id"]
    with Session(engine) as db:
        row = PendingRequest(
            owner=owner.username,
            requesting_party="fuzz-party",
            client_id=rs.client_id,
            rs_client_id=rs.client_id,
            resource_id=resource_id,
            scopes_requested=["view"],
        )
        db.add(row)
        db.commit()
        request_id = row.id
    return {
        "owner": owner,
        "pat": pat,
        "rs": rs,
        "values": {"resource_id": resource_id, "request_id": str(request_id), "number": "1", "rpt_id": "1"},
    }


def body_endpoints(app, values: dict[str, str]) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of every rule of the URL map with an unsafe method; path
    arguments filled with the world's ids (``1`` for an argument no test knows yet)."""
    out = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values.get(m.group(1), "1"), rule.rule)
        for method in sorted(set(rule.methods or ()) & UNSAFE):
            out.append((rule.endpoint, method, path))
    # Changes that end what later requests need (the session, the resource) go last.
    return sorted(out, key=lambda e: (e[0] == "web.logout", e[1] == "DELETE", e))


def _auths(world: dict) -> list[dict[str, str]]:
    basic = base64.b64encode(":".join(world["rs"].basic_auth).encode()).decode()
    return [
        {},  # the session alone (pages, owner API)
        world["pat"].headers,  # protection API
        {"Authorization": f"Basic {basic}"},  # OAuth endpoints
    ]


@pytest.fixture()
def signed_in(live_server, world) -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(base_url=live_server.url, timeout=60, follow_redirects=False) as browser:
        yield browser, sign_in(browser, world["owner"])


def _send(browser: httpx.Client, csrf: str, method: str, path: str, ctype: str, body: bytes, auth: dict):
    headers = {"X-CSRF-Token": csrf, **auth}
    if ctype:
        headers["Content-Type"] = ctype
    return browser.request(method, path, content=body, headers=headers)


def test_the_url_map_yields_every_endpoint_that_takes_a_body(app, world):
    found = {e[0] for e in body_endpoints(app, world["values"])}
    # A few of each kind; every other endpoint with a body is found the same way.
    assert {
        "owner_api.put_policy",
        "owner_api.approve",
        "web.check_policy",
        "web.save_policy",
        "web.try_request",
        "resources.update_resource",
        "permissions.request_permission",
        "oauth_api.token",
        "oauth_api.register",
        "introspection.introspect",
        "claims.consent",
    } <= found


def _credentials_taken(browser, csrf, method: str, path: str, auths: list[dict[str, str]]) -> list[dict[str, str]]:
    """The credentials among ``auths`` that the endpoint takes (all of them when it takes none)."""
    taken = [a for a in auths if _send(browser, csrf, method, path, JSON, b"{}", a).status_code not in (401, 403)]
    return taken[:1] or auths


def test_nasty_bodies_to_every_endpoint_never_get_a_500_F_29(app, world, signed_in):
    browser, csrf = signed_in
    failures = []
    for endpoint, method, path in body_endpoints(app, world["values"]):
        for auth in _credentials_taken(browser, csrf, method, path, _auths(world)):
            for what, ctype, body in NASTY:
                r = _send(browser, csrf, method, path, ctype, body, auth)
                if r.status_code >= 500:
                    failures.append((endpoint, method, what, list(auth), r.status_code, r.text[:200]))
    assert failures == []


# -- random bodies ------------------------------------------------------------------

_names = st.sampled_from(["text", "scopes", "resource_scopes", "resource_id", "name", "redirect_uris", "token"])
_odd_text = st.text(max_size=12) | st.sampled_from(["\\ud800", "\\udfff", "\\u0000", "\\ud83d\\ude00", "\\\\"])
_numbers = st.sampled_from(["1" + "0" * 30, "-9007199254740993", "1e400", "-1e999", "NaN", "Infinity", "0.5e-400"])


def _string(s: str) -> str:
    text = json.dumps(s, ensure_ascii=False)
    return text.replace("\\\\u", "\\u")  # let the sampled escapes through unescaped


@st.composite
def json_text(draw) -> str:
    """JSON-like text: objects with repeated members, odd escapes, huge numbers, deep nesting."""

    def value(depth: int) -> str:
        kind = draw(st.integers(0, 5 if depth < 4 else 2))
        if kind == 0:
            return _string(draw(_odd_text))
        if kind == 1:
            return draw(_numbers | st.integers(-(2**70), 2**70).map(str))
        if kind == 2:
            return draw(st.sampled_from(["true", "false", "null"]))
        if kind == 3:
            return "[" + ", ".join(value(depth + 1) for _ in range(draw(st.integers(0, 3)))) + "]"
        if kind == 4:
            members = [(draw(_names | _odd_text), value(depth + 1)) for _ in range(draw(st.integers(0, 4)))]
            if members and draw(st.booleans()):
                members.append((members[0][0], value(depth + 1)))  # a member given twice
            return "{" + ", ".join(f"{_string(k)}: {v}" for k, v in members) + "}"
        n = draw(st.integers(30, 3000))
        return "[" * n + value(4) + "]" * n

    return value(0)


bodies = st.one_of(
    json_text().map(lambda t: (JSON, t.encode("utf-8", "surrogatepass"))),
    st.binary(max_size=80).map(lambda b: (JSON, b)),
    st.lists(st.tuples(_names | st.text(max_size=8), st.text(max_size=12)), max_size=5).map(
        lambda pairs: (FORM, "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass"))
    ),
    st.binary(max_size=80).map(lambda b: (FORM, b)),
    st.binary(max_size=80).map(lambda b: ("text/plain", b)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), body=bodies, auth=st.integers(0, 2))
def test_random_bodies_to_every_endpoint_never_get_a_500_F_29(app, world, signed_in, data, body, auth):
    browser, csrf = signed_in
    endpoints = [e for e in body_endpoints(app, world["values"]) if e[0] != "web.logout"]
    endpoint, method, path = data.draw(st.sampled_from(endpoints))
    ctype, raw = body
    r = _send(browser, csrf, method, path, ctype, raw, _auths(world)[auth])
    assert r.status_code < 500, (endpoint, method, ctype, raw[:200], r.text[:300])
