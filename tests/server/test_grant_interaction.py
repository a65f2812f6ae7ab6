"""The claims interaction endpoint driven over HTTP like a browser (G-44…G-52, A4, O-43, O-44, O-54)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.server.grant_support import *
from tests.support.server import consent_form

POLICY = 'permit view on type "photo-album" when claims.email == "carol@example.com" and claims.email_verified == true'


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


@pytest.fixture()
def browser(uma):
    with httpx.Client(base_url=uma.url, timeout=30, follow_redirects=False) as client:
        yield client


def _query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def _start(browser, flow, ticket, state="st-123", **extra):
    params = {"client_id": flow.client.client_id, "ticket": ticket, "claims_redirect_uri": CLAIMS_CB, "state": state}
    params.update(extra)
    return browser.get("/uma/claims", params={k: v for k, v in params.items() if v is not None})


def _login_and_see_consent(browser, r, person) -> str:
    """Follow the interaction to the consent page through the login page; returns the consent HTML."""
    assert r.status_code == 303, r.text
    consent_url = r.headers["Location"]
    r = browser.get(consent_url)
    assert r.status_code == 303 and "/login" in r.headers["Location"]
    login = browser.get(r.headers["Location"])
    assert login.status_code == 200
    r = browser.post(
        "/login",
        data={
            "csrf_token": _csrf(login.text),
            "username": person.username,
            "password": person.password,
            "next": _field(login.text, "next"),
        },
    )
    assert r.status_code == 303, r.text
    page = browser.get(r.headers["Location"])
    assert page.status_code == 200, page.text
    return page.text


def _carol(uma):
    return uma.user(claims={"email": "carol@example.com", "email_verified": True})


def test_need_info_offers_redirect_user_then_interaction_gives_rpt_G_40_G_47(uma, browser):
    flow = uma.flow(POLICY)
    first = flow.token(flow.ticket(("album", ["view"])))
    body = first.json()
    assert body["error"] == "need_info" and body["redirect_user"] == uma.url + "/uma/claims"
    assert {m["name"] for m in body["required_claims"]} == {"email", "email_verified"}
    page = _login_and_see_consent(browser, _start(browser, flow, body["ticket"]), _carol(uma))
    assert "carol@example.com" in page and "email_verified" in page and flow.client.row.client_name in page
    r = browser.post("/uma/claims/consent", data=consent_form(page, remember=True))
    assert r.status_code == 303
    location = r.headers["Location"]
    assert location.startswith(CLAIMS_CB + "?")
    query = _query(location)
    assert query["state"] == ["st-123"] and query["ticket"][0] != body["ticket"]
    rpt = flow.token(query["ticket"][0])
    assert rpt.status_code == 200, rpt.text
    assert rpt.json()["pct"]
    assert flow.introspect(rpt.json()["access_token"])["sub"]


def test_interaction_with_the_initial_ticket_G_44(uma, browser):
    flow = uma.flow(POLICY)
    carol = _carol(uma)
    page = _login_and_see_consent(browser, _start(browser, flow, flow.ticket(("album", ["view"])), state=None), carol)
    r = browser.post("/uma/claims/consent", data=consent_form(page))
    query = _query(r.headers["Location"])
    assert "state" not in query  # G-47: only when the client sent one
    assert flow.token(query["ticket"][0]).status_code == 200


def test_refusal_redirects_with_access_denied_and_no_ticket_G_48_A4(uma, browser):
    flow = uma.flow(POLICY)
    page = _login_and_see_consent(browser, _start(browser, flow, flow.ticket(("album", ["view"]))), _carol(uma))
    r = browser.post("/uma/claims/consent", data=consent_form(page, "refuse"))
    assert r.status_code == 303
    query = _query(r.headers["Location"])
    assert query["error"] == ["access_denied"] and query["state"] == ["st-123"] and "ticket" not in query


def test_consent_needs_the_csrf_token_G_51(uma, browser):
    flow = uma.flow(POLICY)
    page = _login_and_see_consent(browser, _start(browser, flow, flow.ticket(("album", ["view"]))), _carol(uma))
    r = browser.post("/uma/claims/consent", data={"interaction": _field(page, "interaction"), "decision": "allow"})
    assert r.status_code == 400 and "Location" not in r.headers


def test_interaction_continues_only_once_G_59(uma, browser):
    flow = uma.flow(POLICY)
    page = _login_and_see_consent(browser, _start(browser, flow, flow.ticket(("album", ["view"]))), _carol(uma))
    form = consent_form(page)
    assert "ticket" in _query(browser.post("/uma/claims/consent", data=form).headers["Location"])
    second = _query(browser.post("/uma/claims/consent", data=form).headers["Location"])
    assert second["error"] == ["invalid_request"] and "ticket" not in second


def test_used_or_unknown_ticket_redirects_with_invalid_request_A4(uma, browser):
    flow = uma.flow(POLICY)
    ticket = flow.ticket(("album", ["view"]))
    assert _start(browser, flow, ticket).status_code == 303
    for presented in (ticket, "unknown-ticket"):
        r = _start(browser, flow, presented)
        assert r.status_code == 303
        query = _query(r.headers["Location"])
        assert r.headers["Location"].startswith(CLAIMS_CB)
        assert query["error"] == ["invalid_request"] and query["state"] == ["st-123"] and "ticket" not in query


def test_ticket_presented_at_interaction_is_spent_G_60(uma, browser):
    flow = uma.flow(POLICY)
    ticket = flow.ticket(("album", ["view"]))
    _start(browser, flow, ticket)
    assert flow.token(ticket).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "change",
    [
        {"claims_redirect_uri": "https://evil.example/cb"},
        {"claims_redirect_uri": CLAIMS_CB + "/"},
        {"claims_redirect_uri": CLAIMS_CB + "?x=1"},
        {"client_id": "no-such-client"},
        {"client_id": None},
    ],
)
def test_bad_client_or_redirect_uri_shows_error_page_never_redirects_G_45_G_46(uma, browser, change):
    flow = uma.flow(POLICY)
    r = _start(browser, flow, flow.ticket(("album", ["view"])), **change)
    assert r.status_code == 400 and "Location" not in r.headers
    assert "text/html" in r.headers["Content-Type"]


def test_redirect_uri_may_be_omitted_when_exactly_one_is_registered_G_45(uma, browser):
    flow = uma.flow(POLICY)
    r = browser.get(
        "/uma/claims", params={"client_id": flow.client.client_id, "ticket": flow.ticket(("album", ["view"]))}
    )
    assert r.status_code == 303 and r.headers["Location"].startswith("/uma/claims/consent")


def test_client_without_claims_redirect_uris_cannot_interact_G_11(uma, browser):
    flow = uma.flow(POLICY, claims_redirect_uris=())
    body = flow.token(flow.ticket(("album", ["view"]))).json()
    assert body["error"] == "need_info" and "redirect_user" not in body
    r = browser.get("/uma/claims", params={"client_id": flow.client.client_id, "ticket": body["ticket"]})
    assert r.status_code == 400 and "Location" not in r.headers


def test_ticket_of_another_client_is_refused_at_interaction_A6(uma, browser):
    flow = uma.flow(POLICY)
    successor = flow.token(flow.ticket(("album", ["view"]))).json()["ticket"]
    other = uma.client()
    r = browser.get("/uma/claims", params={"client_id": other.client_id, "ticket": successor, "state": "s"})
    assert r.status_code == 303 and _query(r.headers["Location"])["error"] == ["invalid_request"]


def test_tampered_interaction_handle_is_an_error_page(uma, browser):
    person = _carol(uma)
    login = browser.get("/login")
    browser.post(
        "/login",
        data={"csrf_token": _csrf(login.text), "username": person.username, "password": person.password, "next": "/"},
    )
    r = browser.get("/uma/claims/consent", params={"interaction": "forged.handle"})
    assert r.status_code == 400 and "Location" not in r.headers


def test_only_the_claims_the_decision_needs_are_released_and_the_party_is_still_known_issue14_4(uma, browser):
    """Data minimisation: the account's other claims stay here; the RPT is decided from the
    released ones; the owner still learns who asked (the account's name), without a claim for it."""
    flow = uma.flow('ask view on type "photo-album" when claims.email ends with "@example.com"')
    body = flow.token(flow.ticket(("album", ["view"]))).json()
    assert [m["name"] for m in body["required_claims"]] == ["email"]
    erin = uma.user(claims={"email": "erin@example.com", "email_verified": True, "phone_number": "+1 555 0142"})
    page = _login_and_see_consent(browser, _start(browser, flow, body["ticket"]), erin)
    assert 'name="claim" value="email" checked' in page
    assert "email_verified" not in page and "+1 555 0142" not in page
    r = browser.post("/uma/claims/consent", data=consent_form(page))
    submitted = flow.token(_query(r.headers["Location"])["ticket"][0])
    assert submitted.status_code == 403 and submitted.json()["error"] == "request_submitted"
    from sqlalchemy import select
    from sqlmodel import Session

    from app.db import get_engine
    from app.models import AuditRecord, PendingRequest

    with uma.app.app_context(), Session(get_engine()) as s:
        pending = s.execute(select(PendingRequest).where(PendingRequest.owner == flow.owner.username)).scalar_one()
        released = s.execute(
            select(AuditRecord).where(
                AuditRecord.owner == flow.owner.username, AuditRecord.outcome == "claims_released"
            )
        ).scalar_one()
    assert pending.requesting_party == erin.username
    assert released.claims == ["email"] and released.requesting_party == erin.username
    owner_view = uma.http.get("/owner/audit", auth=(flow.owner.username, flow.owner.password)).json()
    assert any(r["outcome"] == "claims_released" and r["claims"] == ["email"] for r in owner_view["records"])


def test_no_pct_unless_the_party_agrees_G_67(uma, browser):
    flow = uma.flow(POLICY)
    body = flow.token(flow.ticket(("album", ["view"]))).json()
    page = _login_and_see_consent(browser, _start(browser, flow, body["ticket"]), _carol(uma))
    r = browser.post("/uma/claims/consent", data=consent_form(page))
    granted = flow.token(_query(r.headers["Location"])["ticket"][0])
    assert granted.status_code == 200 and "pct" not in granted.json()


def _heading(page: str) -> str:
    match = re.search(r'<h1 id="consent-heading">(.*?)</h1>', page, re.S)
    assert match, page
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(1))).strip()


def test_the_consent_heading_names_the_details_it_releases_and_to_whom_issue15_G_49(uma, browser):
    """Issue 15 point 6: the heading says what Share releases — the details the rules need that
    this sign-in can give, to the owner's rules — not "your details" to the application."""
    flow = uma.flow(POLICY)
    body = flow.token(flow.ticket(("album", ["view"]))).json()
    page = _login_and_see_consent(browser, _start(browser, flow, body["ticket"]), _carol(uma))
    assert _heading(page) == f"Share your email, email_verified with {flow.owner.username}'s sharing rules?"
    assert "Share and continue" in page

    # A sign-in that gives only the email: the heading names only the email.
    with httpx.Client(base_url=uma.url, timeout=30, follow_redirects=False) as other:
        body = flow.token(flow.ticket(("album", ["view"]))).json()
        dora = uma.user(claims={"email": "dora@example.com"})
        page = _login_and_see_consent(other, _start(other, flow, body["ticket"]), dora)
    assert _heading(page) == f"Share your email with {flow.owner.username}'s sharing rules?"


def test_the_consent_heading_says_nothing_is_shared_when_the_rules_need_no_detail_issue15(uma, browser):
    flow = uma.flow('ask view on type "photo-album"')
    body = flow.token(flow.ticket(("album", ["view"]))).json()
    assert body["error"] == "request_submitted"
    # A ticket the party brings to the interaction anyway: the rules need no detail of them.
    page = _login_and_see_consent(browser, _start(browser, flow, flow.ticket(("album", ["view"]))), _carol(uma))
    name = flow.client.row.client_name or flow.client.client_id
    assert _heading(page) == f"Continue {name}'s request without sharing any detail?"
    assert "carol@example.com" not in page
    assert ">Continue</button>" in page
