"""Strict browser security (issue 13 point 5, O-55): every HTML page carries one strict
Content-Security-Policy, whose ``form-action`` admits only this server and, on a page whose
form's answer redirects to a client, that client's registered redirect origin; bodies of a type
an endpoint does not read are refused with 415 naming the accepted types (app/body.py).
The same pages run in Chromium with this policy in tests/pages/test_browser.py, which fails on
any CSP violation in the console."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from app.web import _csp_source
from tests.pages.pages_support import sign_in

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"


def _csp(response: httpx.Response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] if " " in d else "" for d in (p.strip() for p in policy.split(";"))}


def _assert_strict(response: httpx.Response) -> dict[str, str]:
    assert "text/html" in response.headers["Content-Type"]
    csp = _csp(response)
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'" and csp["base-uri"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    return csp


def test_every_kind_of_html_page_has_the_strict_policy_and_posts_only_here_O_55(http, make_user):
    for response in (
        http.get("/login"),
        http.get("/no-such-page", headers=HTML),  # an error page
        http.get("/authorize?client_id=nobody", headers=HTML),  # the OAuth error page
        http.get("/uma/claims/consent?interaction=forged", headers=HTML, follow_redirects=True),
    ):
        assert _assert_strict(response)["form-action"] == "'self'", response.url
    user = make_user()
    sign_in(http, user)
    for path in ("/", "/my/policy", "/my/requests", "/my/history"):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text[:200])
        assert _assert_strict(response)["form-action"] == "'self'", path


def test_json_answers_keep_only_the_frame_policy(http):
    r = http.get("/.well-known/uma2-configuration")
    assert r.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_the_consent_page_lets_its_form_lead_to_the_registered_redirect_origin_only_O_55(http, make_user, make_rs):
    rs = make_rs(redirect_uris=["https://rs.example.net:8443/cb?x=1", "https://other.example.org/cb"])
    sign_in(http, make_user())
    query = {
        "response_type": "code",
        "client_id": rs.client_id,
        "redirect_uri": "https://rs.example.net:8443/cb?x=1",
        "scope": "uma_protection",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    r = http.get("/authorize?" + urlencode(query))
    assert r.status_code == 200, r.text
    # Only the origin of this request's redirect URI: browsers match form-action redirects by origin.
    assert _assert_strict(r)["form-action"] == "'self' https://rs.example.net:8443"


@pytest.mark.parametrize(
    "uri, source",
    [
        ("https://client.example.com/cb?a=1#x", "https://client.example.com"),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:8080"),
        ("https://[::1]:9/cb", "https://[::1]:9"),
        ("HTTPS://Client.Example.COM/cb", "https://client.example.com"),
        ("com.example.app:/oauth", "com.example.app:"),
        ("https://user@client.example.com/cb", "https://client.example.com"),
        # Nothing that could end the directive or add a source: the form then cannot go there.
        ("https://a.example;script-src *", None),
        ("https://a.example b.example/cb", None),
        ("https://a.example,b/cb", None),
        ("https://'unsafe-inline'/cb", None),
        ("/relative", None),
    ],
)
def test_a_redirect_uri_becomes_a_safe_csp_source_or_none(uri, source):
    assert _csp_source(uri) == source


def test_no_template_has_inline_script_style_or_handler():
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE)
    found = [(p.name, m.group(0)) for p in TEMPLATES.rglob("*.html") for m in inline.finditer(p.read_text())]
    assert not found, found


# -- 415 for a body of a type the endpoint does not read ----------------------------------


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "application/xml", "image/png"])
def test_the_policy_upload_refuses_other_media_types_with_415(http, make_user, ctype):
    owner = make_user()
    auth = (owner.username, owner.password)
    r = http.put("/owner/policy", content=b"permit view on any resource", headers={"Content-Type": ctype}, auth=auth)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == "invalid_request" and r.json()["accepted"] == ["text/plain", "application/json"]
    assert f"text/plain or application/json, not {ctype}" in r.json()["error_description"]
    assert http.get("/owner/policy", auth=auth).status_code == 404  # nothing stored


def test_the_policy_upload_reads_text_json_and_untyped_bodies(http, make_user):
    owner = make_user()
    auth = (owner.username, owner.password)
    for headers, body in (
        ({"Content-Type": "text/plain; charset=utf-8"}, b"permit view on any resource"),
        ({"Content-Type": "application/json"}, b'{"text": "permit view on any resource"}'),
        ({}, b"permit view on any resource"),
    ):
        r = http.put("/owner/policy", content=body, headers=headers, auth=auth)
        assert r.status_code == 200, (headers, r.text)


def test_a_json_endpoint_refuses_text_with_415(http, pat_for, make_user):
    pat = pat_for(make_user().username)
    r = http.post(
        "/uma/resources",
        content=b'{"resource_scopes": ["view"]}',
        headers={**pat.headers, "Content-Type": "text/plain"},
    )
    assert r.status_code == 415 and r.json()["accepted"] == ["application/json"], r.text
    assert "must be application/json, not text/plain" in r.json()["error_description"]
