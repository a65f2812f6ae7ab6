"""Malformed UMA token requests: each gets the spec's error and status, never a 500 (G-15, G-16, G-37…G-39, O-02, O-05, O-10)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.server.grant_support import *

POLICY = 'permit view on type "photo-album"'


@dataclass
class Case:
    name: str
    build: Callable[[Any, str], dict[str, Any]]  # (flow, fresh ticket) -> httpx request kwargs
    status: int
    error: str


def _form(flow, **params):
    data = {"grant_type": UMA_GRANT, **params}
    return {"data": data, "auth": flow.client.basic_auth}


CASES = [
    Case("missing ticket G-15", lambda f, t: _form(f), 400, "invalid_request"),
    Case("claim_token without format G-16", lambda f, t: _form(f, ticket=t, claim_token="abc"), 400, "invalid_request"),
    Case(
        "claim_token_format without token G-16",
        lambda f, t: _form(f, ticket=t, claim_token_format=ID_TOKEN),
        400,
        "invalid_request",
    ),
    Case(
        "repeated ticket O-02",
        lambda f, t: {
            "content": f"grant_type={UMA_GRANT}&ticket={t}&ticket={t}",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "auth": f.client.basic_auth,
        },
        400,
        "invalid_request",
    ),
    Case(
        "JSON body O-02",
        lambda f, t: {"json": {"grant_type": UMA_GRANT, "ticket": t}, "auth": f.client.basic_auth},
        400,
        "invalid_request",
    ),
    Case(
        "not UTF-8 O-02",
        lambda f, t: {
            "content": b"grant_type=" + UMA_GRANT.encode() + b"&ticket=\xff\xfe",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "auth": f.client.basic_auth,
        },
        400,
        "invalid_request",
    ),
    Case(
        "grant type misspelled O-10",
        lambda f, t: {"data": {"grant_type": UMA_GRANT + "x", "ticket": t}, "auth": f.client.basic_auth},
        400,
        "unsupported_grant_type",
    ),
    Case(
        "no client authentication O-03",
        lambda f, t: {"data": {"grant_type": UMA_GRANT, "ticket": t}},
        401,
        "invalid_client",
    ),
    Case(
        "wrong client secret O-03",
        lambda f, t: {"data": {"grant_type": UMA_GRANT, "ticket": t}, "auth": (f.client.client_id, "wrong")},
        401,
        "invalid_client",
    ),
    Case("unknown ticket G-38", lambda f, t: _form(f, ticket="x" * 43), 400, "invalid_grant"),
    Case("very long ticket G-38", lambda f, t: _form(f, ticket="x" * 10000), 400, "invalid_grant"),
    Case("non-ASCII ticket G-38", lambda f, t: _form(f, ticket='tïcket\u2028"\\'), 400, "invalid_grant"),
    Case("unknown scope G-39", lambda f, t: _form(f, ticket=t, scope="delete"), 400, "invalid_scope"),
    Case(
        "scope with characters RFC 6749 forbids",
        lambda f, t: _form(f, ticket=t, scope='de"l\\ete\u00e9'),
        400,
        "invalid_request",
    ),
    Case(
        "unsupported claim token format G-17",
        lambda f, t: _form(f, ticket=t, claim_token="a.b.c", claim_token_format='urn:x:"quoted"'),
        403,
        "need_info",
    ),
    Case("NUL in ticket G-38", lambda f, t: _form(f, ticket="ab\x00cd"), 400, "invalid_grant"),
    Case(
        "NUL in client_id O-02",
        lambda f, t: {"data": {"grant_type": UMA_GRANT, "ticket": t, "client_id": "a\x00b"}},
        400,
        "invalid_request",
    ),
    Case(
        "NUL in pct, rpt and claim token A5",
        lambda f, t: _form(f, ticket=t, pct="p\x00", rpt="r\x00", claim_token="a\x00.b.c", claim_token_format=ID_TOKEN),
        403,
        "need_info",
    ),
    Case("garbage pct and rpt A5", lambda f, t: _form(f, ticket=t, pct="\u00e9" * 50, rpt="r" * 70000), 200, ""),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_token_requests_table_G_37(uma, case):
    flow = uma.flow(POLICY)
    ticket = flow.ticket(("album", ["view"]))
    r = uma.http.post("/token", **case.build(flow, ticket))
    assert r.status_code == case.status, r.text
    body = r.json()
    if case.error:
        assert body["error"] == case.error
        assert all(0x20 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in body.get("error_description", ""))
    else:
        assert body["access_token"]
    assert r.headers["Cache-Control"] == "no-store"
    if case.status == 401:
        assert "WWW-Authenticate" in r.headers or "Authorization" not in r.request.headers


def test_client_not_registered_for_the_uma_grant_is_unauthorized_client_O_10(uma):
    flow = uma.flow(POLICY, grant_types=["refresh_token"])
    r = flow.token(flow.ticket(("album", ["view"])))
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


def test_ticket_asking_no_scope_is_request_denied_F_33(uma):
    flow = uma.flow("permit any scope on any resource")
    r = flow.token(flow.ticket(("album", [])))
    assert r.status_code == 403 and r.json()["error"] == "request_denied"


def test_get_on_the_token_endpoint_is_not_allowed(uma):
    r = uma.http.get("/token", params={"grant_type": UMA_GRANT, "ticket": "x"})
    assert r.status_code == 405


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "a\x00b", "ticket": "t"},
        {"client_id": "x" * 5000, "ticket": "t"},
        {"ticket": "t\x00", "claims_redirect_uri": "\x00"},
    ],
)
def test_odd_claims_interaction_input_gets_an_error_page_G_46(uma, params):
    r = uma.http.get("/uma/claims", params=params)
    assert r.status_code == 400 and "Location" not in r.headers


def test_odd_ticket_at_claims_interaction_redirects_with_invalid_request_A4(uma):
    flow = uma.flow(POLICY)
    r = uma.http.get("/uma/claims", params={"client_id": flow.client.client_id, "ticket": "t\x00" * 3000})
    assert r.status_code == 303 and "error=invalid_request" in r.headers["Location"]


def test_an_engine_failure_fails_closed_with_request_denied(uma, monkeypatch, caplog):
    from app.grant import bridge

    def broken(*args, **kwargs):
        raise ValueError("engine bug")

    flow = uma.flow(POLICY)
    ticket = flow.ticket(("album", ["view"]))
    monkeypatch.setattr(bridge, "decide", broken)
    r = flow.token(ticket)
    assert r.status_code == 403 and r.json()["error"] == "request_denied"
    assert "policy engine failed" in caplog.text
