"""Property: no request a client can send gets a 500 from the OAuth and protection endpoints."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import unique

PATHS = [
    "/token",
    "/revoke",
    "/register",
    "/uma/introspect",
    "/uma/resources",
    "/uma/resources/",
    "/uma/resources/x",
    "/uma/permission",
    "/authorize",
    "/login",
    "/logout",
    "/jwks",
    "/.well-known/uma2-configuration",
]
PARAMS = [
    "grant_type",
    "code",
    "redirect_uri",
    "client_id",
    "client_secret",
    "scope",
    "refresh_token",
    "token",
    "token_type_hint",
    "code_verifier",
    "state",
    "response_type",
    "code_challenge",
    "code_challenge_method",
    "csrf_token",
    "decision",
    "username",
    "password",
    "next",
]

text = st.text(max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resource_id",
                    "resource_scopes",
                    "name",
                    "redirect_uris",
                    "grant_types",
                    "scope",
                    "token_endpoint_auth_method",
                    "claims_redirect_uris",
                    "icon_uri",
                    "jwks",
                ]
            )
            | text,
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
forms = st.lists(st.tuples(st.sampled_from(PARAMS) | text, text), max_size=6)


@pytest.fixture(scope="module")
def fuzz_credentials(make_rs, pat_for):
    rs = make_rs()
    pat = pat_for(unique("fuzz-owner"), rs=rs)
    return rs.client_id, rs.client_secret, pat.token


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(PATHS),
    auth=st.integers(0, 3),
    junk=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=30),
    kind=st.sampled_from(["form", "json", "raw", "query"]),
    form=forms,
    body=json_values,
    raw=st.binary(max_size=60),
)
def test_no_input_gets_a_500(app, fuzz_credentials, method, path, auth, junk, kind, form, body, raw):
    client_id, secret, pat = fuzz_credentials
    headers = {}
    if auth == 1:
        headers["Authorization"] = f"Bearer {pat}"
    elif auth == 2:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    elif auth == 3:
        headers["Authorization"] = junk
    kwargs: dict = {}
    if kind == "form":
        kwargs["data"] = dict(form)
    elif kind == "json":
        kwargs["data"] = json.dumps(body)
        headers["Content-Type"] = "application/json"
    elif kind == "raw":
        kwargs["data"] = raw
    else:
        kwargs["query_string"] = form
    response = app.test_client().open(path, method=method, headers=headers, **kwargs)
    assert response.status_code < 500, (method, path, headers, kwargs, response.data[:300])
