"""The owner API's authentication and policy endpoints (Basic, Bearer uma_owner, session + CSRF header)."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import Session

from app.oauth.tokens import issue_token
from tests.server.grant_support import *


def _owner_token(engine, settings, owner: str, scope: str) -> str:
    with Session(engine) as session:
        body, _ = issue_token(
            session,
            settings,
            client_id="owner-app",
            subject=owner,
            scope=scope,
            grant_type="authorization_code",
            include_refresh=False,
        )
        session.commit()
    return body["access_token"]


def test_basic_authentication_with_the_owner_password(uma):
    owner = uma.user()
    assert uma.http.get("/owner/requests", auth=(owner.username, owner.password)).status_code == 200
    r = uma.http.get("/owner/requests", auth=(owner.username, "wrong"))
    assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
    r = uma.http.get("/owner/requests", headers={"Authorization": "Basic !!!"})
    assert r.status_code == 401
    assert uma.http.get("/owner/requests").status_code == 401


def test_bearer_token_with_scope_uma_owner(uma, engine):
    owner = uma.user()
    token = _owner_token(engine, uma.settings, owner.username, "uma_owner")
    r = uma.http.put(
        "/owner/policy", content=b'permit view on type "photo-album"', headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200 and r.json()["owner"] == owner.username
    pat = _owner_token(engine, uma.settings, owner.username, "uma_protection")
    r = uma.http.get("/owner/policy", headers={"Authorization": f"Bearer {pat}"})
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    r = uma.http.get("/owner/policy", headers={"Authorization": "Bearer unknown"})
    assert r.status_code == 401


def test_session_of_the_owner_pages_needs_the_csrf_header_for_changes(uma):
    owner = uma.user()
    with httpx.Client(base_url=uma.url, follow_redirects=False) as browser:
        login = browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        assert (
            browser.post(
                "/login", data={"csrf_token": csrf, "username": owner.username, "password": owner.password, "next": "/"}
            ).status_code
            == 303
        )
        assert browser.get("/owner/requests").status_code == 200
        home = browser.get("/")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)
        body = {"text": 'permit view on type "photo-album"'}
        assert browser.put("/owner/policy", json=body).status_code == 403
        r = browser.put("/owner/policy", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["version"] == 1


@pytest.mark.parametrize(
    "body,headers",
    [
        (b'{"text": 5}', {"Content-Type": "application/json"}),
        (b"not json", {"Content-Type": "application/json"}),
        (b"\xff\xfe", {"Content-Type": "text/plain"}),
    ],
)
def test_malformed_policy_uploads_are_invalid_request(uma, body, headers):
    owner = uma.user()
    r = uma.http.put("/owner/policy", content=body, headers=headers, auth=(owner.username, owner.password))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_unknown_versions_and_requests_are_404(uma):
    owner = uma.user()
    auth = (owner.username, owner.password)
    assert uma.http.get("/owner/policy/versions/9", auth=auth).status_code == 404
    assert uma.http.post("/owner/policy/versions/9/restore", auth=auth).status_code == 404
    assert uma.http.post("/owner/requests/999999/deny", auth=auth).status_code == 404
    assert uma.http.get("/owner/requests", params={"status": "bogus"}, auth=auth).status_code == 400


def test_owner_token_obtained_by_authorization_code_with_pkce(uma, make_client):
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlsplit

    owner = uma.user()
    app = make_client(
        grant_types=["authorization_code"], redirect_uris=["https://owner-app.example/cb"], scope="uma_owner"
    )
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": "https://owner-app.example/cb",
        "scope": "uma_owner",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=uma.url, follow_redirects=False) as browser:
        login = browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        browser.post(
            "/login", data={"csrf_token": csrf, "username": owner.username, "password": owner.password, "next": "/"}
        )
        page = browser.get("/authorize", params=params)
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
        r = browser.post(action, data={"csrf_token": csrf, "decision": "approve"})
        assert r.status_code in (302, 303), r.text
        code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    token = uma.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://owner-app.example/cb",
            "code_verifier": verifier,
        },
        auth=app.basic_auth,
    )
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    r = uma.http.get("/owner/requests", headers=bearer)
    assert r.status_code == 200 and r.json() == {"requests": []}


@pytest.mark.parametrize(
    "method,path,kwargs,status",
    [
        ("POST", "/owner/requests/99999999999999999999/deny", {}, 404),
        ("GET", "/owner/policy/versions/99999999999999999999", {}, 404),
        (
            "PUT",
            "/owner/policy",
            {"content": b"# \x00\npermit view on any resource", "headers": {"Content-Type": "text/plain"}},
            400,
        ),
        ("PUT", "/owner/policy", {"json": {"text": "# \x00"}}, 400),
        ("GET", "/owner/audit?resource_id=a%00b", {}, 400),
        ("GET", "/owner/audit?before=99999999999999999999", {}, 400),
        ("GET", "/owner/audit?limit=lots", {}, 400),
        (
            "POST",
            "/owner/requests/1/approve",
            {"content": b"[1,2]", "headers": {"Content-Type": "application/json"}},
            404,
        ),
    ],
)
def test_odd_owner_api_input_is_answered_never_500(uma, method, path, kwargs, status):
    owner = uma.user()
    r = uma.http.request(method, path, auth=(owner.username, owner.password), **kwargs)
    assert r.status_code == status, r.text
