"""A table of malformed requests for every endpoint: each gets the spec's error code and
status, never a 500 (O-02, O-05, F-29, F-36, O-16, O-29, O-35, O-08)."""

from __future__ import annotations

import pytest

from tests.support.server import unique

BIG = "x" * 100_000


@pytest.fixture(scope="module")
def ctx(make_rs, pat_for):
    rs = make_rs()
    pat = pat_for(unique("alice"), rs=rs)
    return {"rs": rs, "pat": pat}


def basic(ctx):
    return ctx["rs"].basic_auth


def bearer(ctx):
    return {"Authorization": f"Bearer {ctx['pat'].token}"}


FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# (name, method, path, request kwargs builder, status, error)
CASES = [
    (
        "token: not UTF-8",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "content": b"grant_type=\xff\xfe", "headers": FORM},
        400,
        "invalid_request",
    ),
    (
        "token: JSON body",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "json": {"grant_type": "client_credentials"}},
        400,
        "invalid_request",
    ),
    ("token: empty body", "POST", "/token", lambda c: {"auth": basic(c), "content": b""}, 400, "invalid_request"),
    (
        "token: quote in grant_type",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "data": {"grant_type": 'a"b\\'}},
        400,
        "invalid_request",
    ),
    (
        "token: non-ASCII scope",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "data": {"grant_type": "client_credentials", "scope": "\u00e9t\u00e9"}},
        400,
        "invalid_request",
    ),
    (
        "token: huge grant_type",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "data": {"grant_type": BIG}},
        400,
        "unsupported_grant_type",
    ),
    (
        "token: code grant without code",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "data": {"grant_type": "authorization_code"}},
        400,
        "invalid_request",
    ),
    (
        "token: unknown code",
        "POST",
        "/token",
        lambda c: {
            "auth": basic(c),
            "data": {"grant_type": "authorization_code", "code": "nope", "redirect_uri": "https://rs.example.net/cb"},
        },
        400,
        "invalid_grant",
    ),
    (
        "token: refresh without token",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "data": {"grant_type": "refresh_token"}},
        400,
        "invalid_request",
    ),
    (
        "token: unknown refresh token",
        "POST",
        "/token",
        lambda c: {"auth": basic(c), "data": {"grant_type": "refresh_token", "refresh_token": BIG}},
        400,
        "invalid_grant",
    ),
    (
        "token: NUL in client_id",
        "POST",
        "/token",
        lambda c: {"data": {"grant_type": "client_credentials", "client_id": "a\x00b", "client_secret": "s"}},
        400,
        "invalid_request",
    ),
    (
        "token: garbage Basic header",
        "POST",
        "/token",
        lambda c: {"headers": {"Authorization": "Basic !!!not-base64"}, "data": {"grant_type": "client_credentials"}},
        401,
        "invalid_client",
    ),
    (
        "token: Basic credentials not UTF-8",
        "POST",
        "/token",
        lambda c: {"headers": {"Authorization": "Basic //46/Q=="}, "data": {"grant_type": "client_credentials"}},
        401,
        "invalid_client",
    ),
    (
        "revoke: Basic credentials not UTF-8",
        "POST",
        "/revoke",
        lambda c: {"headers": {"Authorization": "Basic //46/Q=="}, "data": {"token": "x"}},
        401,
        "invalid_client",
    ),
    (
        "introspect: Basic credentials not UTF-8",
        "POST",
        "/uma/introspect",
        lambda c: {"headers": {"Authorization": "Basic //46/Q=="}, "data": {"token": "x"}},
        401,
        "invalid_client",
    ),
    (
        "token: Basic without colon",
        "POST",
        "/token",
        lambda c: {"headers": {"Authorization": "Basic bm9jb2xvbg=="}, "data": {"grant_type": "client_credentials"}},
        401,
        "invalid_client",
    ),
    (
        "token: no client at all",
        "POST",
        "/token",
        lambda c: {"data": {"grant_type": "client_credentials"}},
        401,
        "invalid_client",
    ),
    ("token: GET", "GET", "/token", lambda c: {}, 405, None),
    (
        "revoke: JSON body",
        "POST",
        "/revoke",
        lambda c: {"auth": basic(c), "json": {"token": "x"}},
        400,
        "invalid_request",
    ),
    (
        "revoke: repeated token",
        "POST",
        "/revoke",
        lambda c: {"auth": basic(c), "content": b"token=a&token=b", "headers": FORM},
        400,
        "invalid_request",
    ),
    ("revoke: huge token", "POST", "/revoke", lambda c: {"auth": basic(c), "data": {"token": BIG}}, 200, None),
    ("revoke: GET", "GET", "/revoke", lambda c: {}, 405, None),
    (
        "introspect: JSON body",
        "POST",
        "/uma/introspect",
        lambda c: {"headers": bearer(c), "json": {"token": "x"}},
        400,
        "invalid_request",
    ),
    (
        "introspect: huge token",
        "POST",
        "/uma/introspect",
        lambda c: {"headers": bearer(c), "data": {"token": BIG}},
        200,
        None,
    ),
    (
        "introspect: NUL token",
        "POST",
        "/uma/introspect",
        lambda c: {"headers": bearer(c), "data": {"token": "a\x00b"}},
        200,
        None,
    ),
    (
        "introspect: no credentials",
        "POST",
        "/uma/introspect",
        lambda c: {"data": {"token": "x"}},
        401,
        "invalid_client",
    ),
    (
        "register: text body",
        "POST",
        "/register",
        lambda c: {"content": b"redirect_uris=x", "headers": {"Content-Type": "text/plain"}},
        400,
        "invalid_request",
    ),
    (
        "register: huge name",
        "POST",
        "/register",
        lambda c: {"json": {"client_name": 5, "redirect_uris": ["https://a.example/cb"]}},
        400,
        "invalid_client_metadata",
    ),
    ("register: GET", "GET", "/register", lambda c: {}, 405, None),
    ("resources: NUL in id", "GET", "/uma/resources/a%00b", lambda c: {"headers": bearer(c)}, 404, "not_found"),
    ("resources: huge id", "GET", "/uma/resources/" + "y" * 5000, lambda c: {"headers": bearer(c)}, 404, "not_found"),
    ("resources: nested path", "DELETE", "/uma/resources/a/b/c", lambda c: {"headers": bearer(c)}, 404, "not_found"),
    ("resources: PAT in query only", "GET", "/uma/resources?access_token=abc", lambda c: {}, 401, None),
    (
        "permission: huge scopes",
        "POST",
        "/uma/permission",
        lambda c: {"headers": bearer(c), "json": {"resource_id": "r", "resource_scopes": [BIG]}},
        400,
        "invalid_resource_id",
    ),
    (
        "permission: deep JSON",
        "POST",
        "/uma/permission",
        lambda c: {
            "headers": {**bearer(c), "Content-Type": "application/json"},
            "content": b"[" * 50000 + b"]" * 50000,
        },
        400,
        "invalid_request",
    ),
    (
        "permission: too large body",
        "POST",
        "/uma/permission",
        lambda c: {"headers": {**bearer(c), "Content-Type": "application/json"}, "content": b" " * (2 * 1024 * 1024)},
        413,
        "invalid_request",
    ),
    (
        "resources: lone surrogate in a scope",
        "POST",
        "/uma/resources/",
        lambda c: {
            "headers": {**bearer(c), "Content-Type": "application/json"},
            "content": b'{"resource_scopes": ["\\ud800"]}',
        },
        400,
        "invalid_request",
    ),
    (
        "resources: lone surrogate in an extension member",
        "POST",
        "/uma/resources/",
        lambda c: {
            "headers": {**bearer(c), "Content-Type": "application/json"},
            "content": b'{"resource_scopes": [], "x": {"\\udfff": 1}}',
        },
        400,
        "invalid_request",
    ),
    (
        "permission: lone surrogate in resource_id",
        "POST",
        "/uma/permission",
        lambda c: {
            "headers": {**bearer(c), "Content-Type": "application/json"},
            "content": b'{"resource_id": "\\ud800", "resource_scopes": []}',
        },
        400,
        "invalid_request",
    ),
    (
        "register: lone surrogate in client_name",
        "POST",
        "/register",
        lambda c: {
            "headers": {"Content-Type": "application/json"},
            "content": b'{"client_name": "\\ud800", "redirect_uris": ["https://a.example/cb"]}',
        },
        400,
        "invalid_request",
    ),
    ("discovery: POST", "POST", "/.well-known/uma2-configuration", lambda c: {}, 405, None),
    ("jwks: DELETE", "DELETE", "/jwks", lambda c: {}, 405, None),
    ("unknown path", "GET", "/no/such/endpoint", lambda c: {}, 404, "not_found"),
]


@pytest.mark.parametrize("name, method, path, build, status, error", CASES, ids=[c[0] for c in CASES])
def test_malformed_request_gets_its_error_never_500(http, ctx, name, method, path, build, status, error):
    response = http.request(method, path, **build(ctx))
    assert response.status_code == status, (name, response.status_code, response.text[:300])
    if error is not None:
        assert response.json()["error"] == error
    assert response.status_code < 500


AUTHORIZE_CASES = [
    ("no parameters", {}),
    ("unknown client", {"response_type": "code", "client_id": "nope"}),
    ("NUL client", {"response_type": "code", "client_id": "a\x00b"}),
    ("quote in redirect_uri", {"response_type": "code", "redirect_uri": 'https://rs.example.net/cb"x'}),
    ("foreign redirect_uri", {"response_type": "code", "redirect_uri": "https://evil.example/cb"}),
    ("huge state and redirect", {"response_type": "code", "redirect_uri": "https://e.example/" + BIG[:5000]}),
]


@pytest.mark.parametrize("name, params", AUTHORIZE_CASES, ids=[c[0] for c in AUTHORIZE_CASES])
def test_authorize_errors_without_a_trusted_redirect_are_pages_O_08(http, ctx, name, params):
    params = dict(params)
    if "client_id" not in params and params:
        params["client_id"] = ctx["rs"].client_id
    response = http.get("/authorize", params=params, headers={"Accept": "text/html"})
    assert response.status_code == 400, response.text[:300]
    assert "location" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"  # O-55


def test_authorize_errors_after_the_redirect_uri_is_trusted_are_redirects_O_08(http, ctx):
    response = http.get(
        "/authorize",
        params={
            "response_type": "token",
            "client_id": ctx["rs"].client_id,
            "redirect_uri": "https://rs.example.net/cb",
            "state": "s1",
        },
    )
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("https://rs.example.net/cb?") and "error=unsupported_response_type" in location
    assert "state=s1" in location
