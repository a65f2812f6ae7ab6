"""OAuth 2.0 flows over real HTTP: authorization code + PKCE through login and consent,
client credentials, refresh, revocation."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.support.server import csrf_from

REDIRECT = "https://rs.example.net/cb"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(client_id: str, challenge: str | None, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "uma_protection",
        "state": "st-123",
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return "/authorize?" + urlencode(params)


def consent(http: httpx.Client, url: str, decision: str = "approve") -> httpx.Response:
    """Open the consent page (must already be logged in) and post the decision."""
    page = http.get(url)
    assert page.status_code == 200, page.text
    assert "uma_protection" in page.text
    return http.post(url, data={"csrf_token": csrf_from(page.text), "decision": decision})


def code_from(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


@pytest.fixture()
def owner(make_user):
    return make_user()


@pytest.fixture()
def rs(make_rs):
    return make_rs()


def test_pat_via_authorization_code_pkce_login_and_consent_O_09_O_45_F_06(http, owner, rs, login):
    verifier, challenge = pkce_pair()
    url = authorize_url(rs.client_id, challenge)
    first = http.get(url)
    assert first.status_code == 303
    assert first.headers["location"].startswith("/login?next=")

    login_page = http.get(first.headers["location"])
    assert login_page.status_code == 200
    before = http.cookies.get("uma_session")
    logged_in = http.post(
        "/login",
        data={
            "username": owner.username,
            "password": owner.password,
            "csrf_token": csrf_from(login_page.text),
            "next": url,
        },
    )
    assert logged_in.status_code == 303 and logged_in.headers["location"] == url
    assert http.cookies.get("uma_session") != before  # session renewed on login
    set_cookie = logged_in.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie

    code = code_from(consent(http, url))
    token = http.post(
        "/token",
        auth=rs.basic_auth,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
    )
    assert token.status_code == 200, token.text
    assert token.headers["cache-control"] == "no-store" and token.headers["pragma"] == "no-cache"
    body = token.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "uma_protection"
    assert body["expires_in"] > 0 and "refresh_token" in body

    listed = http.get("/uma/resources", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200 and listed.json() == []

    # O-09: a second use of the code is refused and revokes what the first one produced.
    again = http.post(
        "/token",
        auth=rs.basic_auth,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    revoked = http.get("/uma/resources", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert revoked.status_code == 401


def test_consent_denied_redirects_with_access_denied_O_08(http, owner, rs, login):
    login(http, owner)
    response = consent(http, authorize_url(rs.client_id, pkce_pair()[1]), decision="deny")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-123"] and "code" not in query


def test_consent_post_without_csrf_token_is_refused_O_12(http, owner, rs, login):
    login(http, owner)
    url = authorize_url(rs.client_id, pkce_pair()[1])
    assert http.get(url).status_code == 200
    response = http.post(url, data={"decision": "approve"})
    assert response.status_code == 400
    assert "location" not in response.headers


def test_login_with_wrong_password_fails(http, owner):
    page = http.get("/login")
    response = http.post(
        "/login", data={"username": owner.username, "password": "nope", "csrf_token": csrf_from(page.text), "next": "/"}
    )
    assert response.status_code == 401 and "wrong password" in response.text


def test_login_next_is_never_an_open_redirect_O_44(http, owner):
    page = http.get("/login")
    response = http.post(
        "/login",
        data={
            "username": owner.username,
            "password": owner.password,
            "csrf_token": csrf_from(page.text),
            "next": "https://evil.example/x",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/"


@pytest.mark.parametrize(
    "extra",
    [{"redirect_uri": "https://rs.example.net/cb/other"}, {"redirect_uri": "https://evil.example/cb"}],
)
def test_redirect_uri_must_match_exactly_no_redirect_O_43_O_08(http, owner, rs, login, extra):
    login(http, owner)
    response = http.get(authorize_url(rs.client_id, pkce_pair()[1], **extra))
    assert response.status_code == 400
    assert "location" not in response.headers


def test_unknown_client_gets_an_error_page_not_a_redirect_O_08(http, owner, login):
    login(http, owner)
    response = http.get(authorize_url("no-such-client", pkce_pair()[1]))
    assert response.status_code == 400 and "location" not in response.headers


def test_public_client_needs_s256_pkce_O_41_O_45(http, owner, make_client, login):
    public = make_client(
        grant_types=["authorization_code"],
        redirect_uris=[REDIRECT],
        token_endpoint_auth_method="none",
        scope="uma_protection",
    )
    login(http, owner)
    missing = http.get(authorize_url(public.client_id, None))
    assert missing.status_code == 302
    assert parse_qs(urlsplit(missing.headers["location"]).query)["error"] == ["invalid_request"]
    plain = http.get(authorize_url(public.client_id, None, code_challenge="a" * 43, code_challenge_method="plain"))
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]

    verifier, challenge = pkce_pair()
    code = code_from(consent(http, authorize_url(public.client_id, challenge)))
    wrong = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": public.client_id,
            "redirect_uri": REDIRECT,
            "code_verifier": pkce_pair()[0],
        },
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    code = code_from(consent(http, authorize_url(public.client_id, challenge)))
    ok = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": public.client_id,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert ok.status_code == 200, ok.text


def test_verifier_without_challenge_is_refused_O_45(http, owner, rs, login):
    login(http, owner)
    code = code_from(consent(http, authorize_url(rs.client_id, None)))
    response = http.post(
        "/token",
        auth=rs.basic_auth,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": pkce_pair()[0],
        },
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_confidential_client_without_pkce_and_redirect_uri_check_O_09(http, owner, rs, login):
    login(http, owner)
    code = code_from(consent(http, authorize_url(rs.client_id, None)))
    other = http.post(
        "/token",
        auth=rs.basic_auth,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "https://rs.example.net/cb2"},
    )
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
    code = code_from(consent(http, authorize_url(rs.client_id, None)))
    ok = http.post(
        "/token", auth=rs.basic_auth, data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    )
    assert ok.status_code == 200


def test_code_is_bound_to_its_client_O_09(http, owner, rs, make_rs, login):
    login(http, owner)
    code = code_from(consent(http, authorize_url(rs.client_id, None)))
    thief = make_rs()
    response = http.post(
        "/token",
        auth=thief.basic_auth,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def introspect(http, pat: str, token: str) -> dict:
    response = http.post("/uma/introspect", headers={"Authorization": f"Bearer {pat}"}, data={"token": token})
    assert response.status_code == 200, response.text
    return response.json()


def test_client_credentials_pat_for_configured_owner_F_06(http, make_rs, owner):
    rs = make_rs(owner=owner.username)
    response = http.post("/token", auth=rs.basic_auth, data={"grant_type": "client_credentials"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "uma_protection" and "refresh_token" not in body  # O-11
    info = introspect(http, body["access_token"], body["access_token"])
    assert info["active"] is True and info["sub"] == owner.username and info["client_id"] == rs.client_id


def test_client_credentials_pat_for_the_rs_itself_with_client_secret_post_O_03(http, rs):
    response = http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "uma_protection",
            "client_id": rs.client_id,
            "client_secret": rs.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    pat = response.json()["access_token"]
    assert introspect(http, pat, pat)["sub"] == rs.client_id


def test_client_credentials_errors_O_05_O_10(http, rs, make_client):
    wrong = http.post("/token", auth=(rs.client_id, "wrong"), data={"grant_type": "client_credentials"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    scope = http.post("/token", auth=rs.basic_auth, data={"grant_type": "client_credentials", "scope": "admin"})
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    no_cc = make_client(grant_types=["authorization_code"], redirect_uris=[REDIRECT])
    refused = http.post("/token", auth=no_cc.basic_auth, data={"grant_type": "client_credentials"})
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    unknown = http.post("/token", auth=rs.basic_auth, data={"grant_type": "password"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unsupported_grant_type"


def test_token_endpoint_reads_form_without_content_type_and_empty_values_are_absent_O_02(http, rs):
    body = b"grant_type=client_credentials&scope="
    response = http.post("/token", auth=rs.basic_auth, content=body, headers={"Content-Type": ""})
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "uma_protection"


def test_token_endpoint_refuses_repeated_parameters_O_02(http, rs):
    response = http.post(
        "/token",
        auth=rs.basic_auth,
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def _pat_with_refresh(http, owner, rs, login) -> dict:
    login(http, owner)
    code = code_from(consent(http, authorize_url(rs.client_id, None)))
    response = http.post(
        "/token", auth=rs.basic_auth, data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    )
    assert response.status_code == 200
    return response.json()


def test_refresh_rotates_and_reuse_revokes_the_chain_O_06_O_47(http, owner, rs, login):
    first = _pat_with_refresh(http, owner, rs, login)
    refreshed = http.post(
        "/token", auth=rs.basic_auth, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"] and second["scope"] == "uma_protection"
    assert introspect(http, second["access_token"], second["access_token"])["sub"] == owner.username

    reuse = http.post(
        "/token", auth=rs.basic_auth, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    after = http.get("/uma/resources", headers={"Authorization": f"Bearer {second['access_token']}"})
    assert after.status_code == 401


def test_concurrent_replays_of_one_pat_refresh_token_give_one_success_and_no_500_O_47(
    http, live_server, owner, rs, login
):
    """Issue 10, point 3: several processes' worth of concurrent uses of one PAT refresh token
    (this used to deadlock on PostgreSQL and answer 500): exactly one 200, the rest 400
    ``invalid_grant``; the reuse revokes the family, so the one winner's PAT is dead too."""
    from concurrent.futures import ThreadPoolExecutor

    first = _pat_with_refresh(http, owner, rs, login)

    def refresh(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server.url, timeout=30) as own:
            return own.post(
                "/token",
                auth=rs.basic_auth,
                data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(refresh, range(8)))
    assert sorted(r.status_code for r in answers) == [200] + [400] * 7, [r.text for r in answers]
    assert all(r.json()["error"] == "invalid_grant" for r in answers if r.status_code == 400)
    [won] = [r.json() for r in answers if r.status_code == 200]
    assert http.get("/uma/resources", headers={"Authorization": f"Bearer {won['access_token']}"}).status_code == 401


def test_refresh_token_belongs_to_its_client_and_scope_cannot_grow_O_06(http, owner, rs, make_rs, login):
    tokens = _pat_with_refresh(http, owner, rs, login)
    other = make_rs()
    stolen = http.post(
        "/token", auth=other.basic_auth, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    wider = http.post(
        "/token",
        auth=rs.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "scope": "uma_protection admin"},
    )
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_revocation_of_a_pat_O_29_O_31(http, rs):
    pat = http.post("/token", auth=rs.basic_auth, data={"grant_type": "client_credentials"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {pat}"}
    assert http.get("/uma/resources", headers=headers).status_code == 200
    response = http.post("/revoke", auth=rs.basic_auth, data={"token": pat, "token_type_hint": "refresh_token"})
    assert response.status_code == 200
    assert http.get("/uma/resources", headers=headers).status_code == 401


def test_revocation_answers_200_for_unknown_tokens_and_hints_O_30(http, rs):
    unknown = http.post("/revoke", auth=rs.basic_auth, data={"token": "never-issued", "token_type_hint": "weird"})
    assert unknown.status_code == 200
    missing = http.post("/revoke", auth=rs.basic_auth, data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    anonymous = http.post("/revoke", data={"token": "x"})
    assert anonymous.status_code in (400, 401) and anonymous.json()["error"] == "invalid_client"


def test_a_client_cannot_revoke_another_clients_token_O_29(http, rs, make_rs):
    pat = http.post("/token", auth=rs.basic_auth, data={"grant_type": "client_credentials"}).json()["access_token"]
    other = make_rs()
    response = http.post("/revoke", auth=other.basic_auth, data={"token": pat})
    assert response.status_code == 400
    assert http.get("/uma/resources", headers={"Authorization": f"Bearer {pat}"}).status_code == 200
