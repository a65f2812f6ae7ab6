"""Federated identity (issue 14): this server as a relying party of real OpenID Providers.

Every provider here is a real one (``oidc-provider-mock``, tests/support/oidc_provider.py) served
over HTTP; every flow goes through HTTP as a browser would: the AS sends the browser to the
provider, the person signs in there, the provider sends the browser back, the AS exchanges the
code and verifies the ID token against the provider's JWKS. Nothing is mocked.

The server under test (fixture ``fed``) knows these providers:

==============  ==============================================================
``Acme ID``     confidential client; ``create_accounts = true``;
                ``claim_mapping = {groups = "roles"}``
``Partner ID``  confidential client; ``create_accounts`` left false
``Public ID``   a public client (no secret): PKCE alone; this provider takes no such client
``Later ID``    nobody listens on its port at start (a provider down when the server starts)
``Mismatch ID`` Acme's provider under its issuer with a final ``/``: discovery names another issuer
``Nowhere ID``  a path of Acme's provider without a discovery document (HTTP 404)
==============  ==============================================================
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from sqlalchemy import select, update
from sqlmodel import Session
from werkzeug.serving import make_server

from app import create_app
from app.models import AuditRecord, FederatedIdentity, Pct, PermissionTicket, Rpt, UpstreamSignIn, User
from app.users import NO_PASSWORD
from tests.server.grant_support import CLAIMS_CB, ID_TOKEN, Uma
from tests.support.oidc_provider import OpenIDProvider, authorize
from tests.support.server import consent_form, csrf_from, unique

ACME, PARTNER, PUBLIC, LATER = "Acme ID", "Partner ID", "Public ID", "Later ID"
RP_CLIENT_ID = "uma-as-rp"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def acme() -> Iterator[OpenIDProvider]:
    op = OpenIDProvider()
    yield op
    op.close()


@pytest.fixture(scope="module")
def partner() -> Iterator[OpenIDProvider]:
    op = OpenIDProvider()
    yield op
    op.close()


@pytest.fixture(scope="module")
def public_op() -> Iterator[OpenIDProvider]:
    op = OpenIDProvider()
    yield op
    op.close()


@dataclass
class Fed:
    uma: Uma
    url: str
    engine: Any
    acme: OpenIDProvider
    partner: OpenIDProvider
    later_port: int

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)

    def rows(self, model: Any, *where: Any) -> list[Any]:
        with Session(self.engine) as s:
            return list(s.execute(select(model).where(*where)).scalars())


def serve(config: dict[str, Any]) -> tuple[str, Any, Any, threading.Thread]:
    """``create_app(config)`` served over HTTP on a free port (its issuer is its own URL)."""

    class Dispatch:
        app: Any = None

        def __call__(self, environ: Any, start_response: Any) -> Any:
            return self.app(environ, start_response)

    dispatch = Dispatch()
    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    dispatch.app = create_app(
        {"issuer": url, "secret_key": secrets.token_hex(32), "purge_interval": 0, "TESTING": True, **config}
    )
    thread = threading.Thread(target=server.serve_forever, name="federated-as", daemon=True)
    thread.start()
    return url, dispatch.app, server, thread


def provider(name: str, issuer: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "issuer": issuer, "client_id": RP_CLIENT_ID, "client_secret": "rp-secret", **extra}


@pytest.fixture(scope="module")
def fed(
    engine, database_url, acme, partner, public_op, make_user, make_client, make_rs, pat_for, tmp_path_factory
) -> Iterator[Fed]:
    later_port = _free_port()
    url, app, server, thread = serve(
        {
            "database_url": database_url,
            "instance_path": str(tmp_path_factory.mktemp("fed-instance")),
            "rpt_format": "jwt",
            "jwks_refresh_cooldown": 0,  # a key rotated at a provider is fetched at once (the cooldown: below)
            "identity_providers": [
                provider(ACME, acme.issuer, create_accounts=True, claim_mapping={"groups": "roles"}),
                provider(PARTNER, partner.issuer, scopes="openid email"),
                {"name": PUBLIC, "issuer": public_op.issuer, "client_id": "uma-as-public"},
                provider(LATER, f"http://127.0.0.1:{later_port}"),
                provider("Mismatch ID", acme.issuer + "/"),
                provider("Nowhere ID", acme.issuer + "/nowhere"),
            ],
        }
    )
    uma = Uma(url, app, make_user, make_client, make_rs, pat_for)
    try:
        yield Fed(uma, url, engine, acme, partner, later_port)
    finally:
        uma.http.close()
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["uma_db"].dispose()


# -- driving a browser through a sign-in -------------------------------------------------


def start(browser: httpx.Client, name: str, next_path: str = "/") -> httpx.Response:
    """Press "Sign in with <name>" on the login page."""
    page = browser.get("/login", params={"next": next_path})
    assert page.status_code == 200
    link = f'href="/login/upstream/{name.replace(" ", "%20")}?next='
    assert link in page.text, page.text
    return browser.get(f"/login/upstream/{name}", params={"next": next_path})


def sign_in(browser: httpx.Client, name: str, sub: str, next_path: str = "/") -> httpx.Response:
    """The whole round trip: login page → provider (signing in as ``sub``) → back at the AS."""
    r = start(browser, name, next_path)
    assert r.status_code == 303, r.text
    return browser.get(authorize(browser, r.headers["Location"], sub))


def signed_in_as(browser: httpx.Client) -> str | None:
    page = browser.get("/")
    found = page.text.split('<form class="who"', 1)
    if len(found) == 1:
        return None
    return found[1].split("<span>", 1)[1].split("</span>", 1)[0]


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# -- 1. the authorization request ------------------------------------------------------


def test_authorization_request_has_pkce_s256_state_and_nonce_even_unadvertised_issue14_1(fed, acme):
    metadata = httpx.get(acme.issuer + "/.well-known/openid-configuration").json()
    assert "code_challenge_methods_supported" not in metadata  # the provider does not advertise PKCE
    with fed.browser() as browser:
        r = start(browser, ACME)
    assert r.status_code == 303
    location = r.headers["Location"]
    assert location.startswith(metadata["authorization_endpoint"] + "?")
    q = query(location)
    assert q["response_type"] == ["code"] and q["client_id"] == [RP_CLIENT_ID]
    assert q["redirect_uri"] == [fed.url + "/login/upstream/Acme%20ID/callback"]
    assert q["scope"] == ["openid email profile"]
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43
    assert len(q["state"][0]) >= 43 and len(q["nonce"][0]) == 43 and q["nonce"] != q["state"]
    # The state is stored hashed, never in clear, with an expiry.
    rows = fed.rows(UpstreamSignIn, UpstreamSignIn.provider == ACME, UpstreamSignIn.used_at.is_(None))
    assert q["state"][0] not in json.dumps([r.model_dump() for r in rows])


# -- 2. owners sign in upstream --------------------------------------------------------


def test_first_sign_in_creates_an_account_when_the_provider_allows_then_signs_in_to_it_issue14_2(fed, acme):
    sub = unique("erin")
    acme.set_user(sub, email=f"{sub}@example.com", email_verified=True)
    with fed.browser() as browser:
        r = sign_in(browser, ACME, sub, next_path="/my/resources")
        assert r.status_code == 303 and r.headers["Location"] == "/my/resources", r.text
        name = signed_in_as(browser)
    assert name == f"{sub}@127.0.0.1"  # from the subject and the provider's host, never from a claim
    [link] = fed.rows(FederatedIdentity, FederatedIdentity.issuer == acme.issuer, FederatedIdentity.subject == sub)
    [user] = fed.rows(User, User.id == link.user_id)
    assert user.username == name and user.password_hash == NO_PASSWORD and user.claims == {}
    with fed.browser() as again:  # a second sign-in opens the same account
        assert sign_in(again, ACME, sub).status_code == 303
        assert signed_in_as(again) == name
    assert len(fed.rows(FederatedIdentity, FederatedIdentity.user_id == user.id)) == 1
    # An account without password cannot be opened with one.
    with fed.browser() as browser:
        page = browser.get("/login")
        r = browser.post(
            "/login", data={"csrf_token": csrf_from(page.text), "username": name, "password": "!", "next": "/"}
        )
        assert r.status_code == 401


def test_first_sign_in_is_refused_when_create_accounts_is_false_even_if_an_email_matches_issue14_2(fed, partner):
    sub = unique("bob")
    local = fed.uma.user(claims={"email": f"{sub}@example.com", "email_verified": True})
    partner.set_user(sub, email=f"{sub}@example.com", email_verified=True)
    with fed.browser() as browser:
        r = sign_in(browser, PARTNER, sub)
        assert r.status_code == 403 and "no account here is linked to this Partner ID account" in r.text
        assert "Back to sign in" in r.text
        assert signed_in_as(browser) is None
    assert fed.rows(FederatedIdentity, FederatedIdentity.issuer == partner.issuer) == []
    assert local.username != sub


def test_an_email_claim_alone_never_links_a_new_account_to_a_local_one_issue14_2(fed, acme):
    sub = unique("carol")
    local = fed.uma.user(claims={"email": f"{sub}@example.com", "email_verified": True})
    acme.set_user(sub, email=f"{sub}@example.com", email_verified=True, preferred_username=local.username)
    with fed.browser() as browser:
        assert sign_in(browser, ACME, sub).status_code == 303
        name = signed_in_as(browser)
    assert name != local.username  # a new account of its own
    [link] = fed.rows(FederatedIdentity, FederatedIdentity.subject == sub)
    [local_row] = fed.rows(User, User.username == local.username)
    assert link.user_id != local_row.id


def _sign_in_locally(browser: httpx.Client, user: Any) -> None:
    page = browser.get("/login")
    r = browser.post(
        "/login",
        data={"csrf_token": csrf_from(page.text), "username": user.username, "password": user.password, "next": "/"},
    )
    assert r.status_code == 303, r.text


def _link(browser: httpx.Client, name: str, sub: str) -> httpx.Response:
    page = browser.get("/account")
    assert page.status_code == 200 and f"Link {name}" in page.text

    r = browser.post(f"/account/link/{name}", data={"csrf_token": csrf_from(page.text)})
    assert r.status_code == 303, r.text
    return browser.get(authorize(browser, r.headers["Location"], sub))


def test_linking_is_an_explicit_step_of_a_signed_in_owner_then_the_provider_opens_the_account_issue14_2(fed, partner):
    owner = fed.uma.user(claims={"email": "frank@example.com"})
    sub = unique("frank")
    partner.set_user(sub, email="frank@example.com")
    with fed.browser() as browser:
        _sign_in_locally(browser, owner)
        # "Link" posts here and is redirected to the provider: the page's form-action allows it.
        form_action = browser.get("/account").headers["Content-Security-Policy"].split("form-action", 1)[1]
        assert partner.issuer in form_action and fed.acme.issuer in form_action
        r = _link(browser, PARTNER, sub)
        assert r.status_code == 303 and r.headers["Location"] == "/account"
        page = browser.get("/account")
        assert "now signs in to this account" in page.text and sub in page.text
    with fed.browser() as browser:  # now Partner ID opens the local account
        assert sign_in(browser, PARTNER, sub).status_code == 303
        assert signed_in_as(browser) == owner.username
    # The same upstream account cannot be linked to a second local account.
    other = fed.uma.user()
    with fed.browser() as browser:
        _sign_in_locally(browser, other)
        r = _link(browser, PARTNER, sub)
        assert r.status_code == 409 and "already signs in to another account" in r.text
    # Unlinking ends it (the account has a password, so it keeps a way in).
    with fed.browser() as browser:
        _sign_in_locally(browser, owner)
        page = browser.get("/account")
        [row] = fed.rows(FederatedIdentity, FederatedIdentity.subject == sub)
        r = browser.post(f"/account/unlink/{row.id}", data={"csrf_token": csrf_from(page.text)})
        assert r.status_code == 303 and "The link was removed" in browser.get("/account").text
    with fed.browser() as browser:
        assert sign_in(browser, PARTNER, sub).status_code == 403


def test_linking_needs_a_signed_in_owner_and_the_pages_token_issue14_2(fed):
    with fed.browser() as browser:
        r = browser.post(f"/account/link/{PARTNER}")
        assert r.status_code == 400  # no anti-CSRF token: refused before anything starts
        login = browser.get("/login")
        r = browser.post(f"/account/link/{PARTNER}", data={"csrf_token": csrf_from(login.text)})
        assert r.status_code == 303 and r.headers["Location"].startswith("/login")  # not signed in


def test_the_last_way_into_an_account_cannot_be_unlinked_issue14_2(fed, acme):
    sub = unique("gail")
    acme.set_user(sub)
    with fed.browser() as browser:
        assert sign_in(browser, ACME, sub).status_code == 303
        page = browser.get("/account")
        assert "has no password here" in page.text
        [row] = fed.rows(FederatedIdentity, FederatedIdentity.subject == sub)
        r = browser.post(f"/account/unlink/{row.id}", data={"csrf_token": csrf_from(page.text)})
        assert r.status_code == 303
        assert "only way to sign in" in browser.get("/account").text
    assert len(fed.rows(FederatedIdentity, FederatedIdentity.subject == sub)) == 1


# -- 5. clear failures -----------------------------------------------------------------


def _fails(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert "text/html" in r.headers["Content-Type"] and words in r.text, r.text
    assert "Sign-in with" in r.text and 'class="btn" href="' in r.text  # says what happened, leads back


def test_state_from_another_browser_is_refused_and_the_first_browser_still_finishes_issue14_5(fed, acme, caplog):
    sub = unique("hal")
    acme.set_user(sub)
    with fed.browser() as mine, fed.browser() as other:
        back = authorize(mine, start(mine, ACME).headers["Location"], sub)
        with caplog.at_level("WARNING", logger="app.web.upstream"):
            _fails(other.get(back), 400, "not belong to a sign-in started in this browser (state mismatch)")
        assert any(
            r.levelname == "WARNING"
            and "sign-in with Acme ID failed" in r.getMessage()
            and "state mismatch" in r.getMessage()
            for r in caplog.records
        )
        assert signed_in_as(other) is None
        assert mine.get(back).status_code == 303 and signed_in_as(mine) is not None


def test_state_is_single_use_even_with_a_replayed_cookie_issue14_5(fed, acme):
    sub = unique("ida")
    acme.set_user(sub)
    with fed.browser() as browser:
        back = authorize(browser, start(browser, ACME).headers["Location"], sub)
        cookies = dict(browser.cookies.items())  # the cookie as it was before the answer
        assert browser.get(back).status_code == 303
    with httpx.Client(base_url=fed.url, cookies=cookies, timeout=30) as replay:
        _fails(replay.get(back), 400, "expired or was already used")
        assert signed_in_as(replay) is None


def test_state_expires_issue14_5(fed, acme):
    sub = unique("jon")
    acme.set_user(sub)
    with fed.browser() as browser:
        location = start(browser, ACME).headers["Location"]
        state = query(location)["state"][0]
        from app.security import hash_token

        with Session(fed.engine) as s:
            s.execute(update(UpstreamSignIn).where(UpstreamSignIn.state_hash == hash_token(state)).values(expires_at=1))
            s.commit()
        _fails(browser.get(authorize(browser, location, sub)), 400, "expired or was already used")


def test_unknown_or_missing_state_and_a_foreign_iss_are_refused_issue14_5(fed, acme):
    with fed.browser() as browser:
        _fails(browser.get("/login/upstream/Acme ID/callback", params={"code": "x"}), 400, "has no state")
        _fails(browser.get("/login/upstream/Acme ID/callback", params={"code": "x", "state": "forged"}), 400, "state")
        sub = unique("kim")
        acme.set_user(sub)
        back = authorize(browser, start(browser, ACME).headers["Location"], sub)
        _fails(browser.get(back + "&iss=http%3A%2F%2Fevil.example"), 400, "another issuer")  # RFC 9207 mix-up
        _fails(browser.get("/login/upstream/Nobody/callback", params={"state": "x"}), 404, "no identity provider")


def test_cancel_at_the_provider_is_a_page_with_the_way_back_issue14_5(fed, acme):
    with fed.browser() as browser:
        location = start(browser, ACME, "/my/policy").headers["Location"]
        back = authorize(browser, location, None, deny=True)
        assert query(back)["error"] == ["access_denied"]  # this provider sends no state with it
        _fails(browser.get(back), 403, "the sign-in was cancelled at Acme ID")
        # A provider that sends the state back with its error (RFC 6749 §4.1.2.1): the sign-in is
        # taken (single use) and the way back leads where it started.
        state = query(location)["state"][0]
        r = browser.get("/login/upstream/Acme ID/callback", params={"error": "access_denied", "state": state})
        _fails(r, 403, "the sign-in was cancelled at Acme ID")
        assert 'href="/login?next=/my/policy"' in r.text
        r = browser.get("/login/upstream/Acme ID/callback", params={"error": "access_denied", "state": state})
        _fails(r, 400, "(state mismatch)")  # taken: no longer this browser's


@pytest.mark.parametrize(
    "claims, words",
    [
        ({"nonce": "another-sign-in"}, "does not carry the nonce of this sign-in"),
        ({"aud": "another-client"}, "not meant for this server or client (aud)"),
        ({"aud": ["another-client", RP_CLIENT_ID]}, "azp"),  # several audiences: azp must name this client
        ({"iss": "http://evil.example"}, "issuer is not trusted"),
        ({"exp": 1_000_000_000}, "has expired"),
    ],
    ids=["nonce", "aud", "aud-list-without-azp", "iss", "exp"],
)
def test_an_invalid_id_token_is_refused_issue14_1_issue14_5(fed, acme, claims, words):
    sub = unique("lou")
    acme.set_user(sub, **claims)  # the provider copies these into the ID token over its own
    with fed.browser() as browser:
        r = sign_in(browser, ACME, sub)
        _fails(r, 502, words)
        assert signed_in_as(browser) is None
    assert fed.rows(FederatedIdentity, FederatedIdentity.subject == sub) == []


def test_an_audience_list_holding_this_client_with_azp_is_accepted_issue14_1(fed, acme):
    sub = unique("max")
    acme.set_user(sub, aud=["another-client", RP_CLIENT_ID], azp=RP_CLIENT_ID)
    with fed.browser() as browser:
        assert sign_in(browser, ACME, sub).status_code == 303
        assert signed_in_as(browser) == f"{sub}@127.0.0.1"


def test_a_provider_down_at_start_shows_unavailable_then_works_once_it_is_up_issue14_1_issue14_5(fed):
    with fed.browser() as browser:
        r = start(browser, LATER)  # nobody listens: the server started all the same
        _fails(r, 503, "Later ID is unavailable: the provider could not be reached")
        op = OpenIDProvider(port=fed.later_port)
        try:
            sub = unique("ned")
            op.set_user(sub)
            assert fed.uma.settings.identity_provider(LATER).issuer == op.issuer
            r = start(browser, LATER)
            assert r.status_code == 303, r.text
            back = authorize(browser, r.headers["Location"], sub)
            # Later ID may not create accounts: the sign-in itself worked, the account is refused.
            _fails(browser.get(back), 403, "no account here is linked")
        finally:
            op.close()


def test_an_invalid_discovery_document_is_a_page_not_a_500_issue14_5(fed, acme):
    with fed.browser() as browser:
        _fails(start(browser, "Mismatch ID"), 502, "names the issuer")
        _fails(start(browser, "Nowhere ID"), 502, "answered HTTP 404")
        _fails(browser.get("/login/upstream/Nobody"), 404, "no identity provider is called")


def test_a_public_client_sends_pkce_without_secret_and_a_refusal_is_a_page_issue14_1_issue14_5(fed, public_op):
    sub = unique("olga")
    public_op.set_user(sub)
    with fed.browser() as browser:
        r = start(browser, PUBLIC)
        q = query(r.headers["Location"])
        assert q["client_id"] == ["uma-as-public"] and q["code_challenge_method"] == ["S256"]
        # This provider does not take public clients at its token endpoint: it says invalid_client.
        _fails(
            browser.get(authorize(browser, r.headers["Location"], sub)),
            502,
            "refused the sign-in code (invalid_client)",
        )


# -- 1. keys: rotation, tokens without kid ------------------------------------------------


def _id_token_from(op: OpenIDProvider, sub: str, client_id: str) -> str:
    """An ID token the provider issues to ``client_id`` (a code flow driven over HTTP)."""
    with httpx.Client(timeout=30) as browser:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CLAIMS_CB,
            "scope": "openid email",
            "state": "s",
            "nonce": "n-" + secrets.token_hex(8),
        }
        back = authorize(browser, f"{op.issuer}/oauth2/authorize?{urlencode(params)}", sub)
        token = httpx.post(
            f"{op.issuer}/oauth2/token",
            data={"grant_type": "authorization_code", "code": query(back)["code"][0], "redirect_uri": CLAIMS_CB},
            auth=(client_id, "any"),
            timeout=30,
        )
        assert token.status_code == 200, token.text
        return token.json()["id_token"]


def test_id_tokens_without_kid_verify_with_the_providers_one_key_issue14_1(fed, acme):
    sub = unique("pat")
    acme.set_user(sub)
    assert "kid" not in jwt.get_unverified_header(_id_token_from(acme, sub, RP_CLIENT_ID))
    assert len(acme.jwks()["keys"]) == 1
    with fed.browser() as browser:
        assert sign_in(browser, ACME, sub).status_code == 303


def test_a_key_rotated_at_the_provider_is_fetched_and_verifies_issue14_1(fed, partner):
    owner = fed.uma.user()
    sub = unique("quinn")
    partner.set_user(sub)
    with fed.browser() as browser:
        _sign_in_locally(browser, owner)
        assert _link(browser, PARTNER, sub).status_code == 303  # the JWKS is cached now
    before = partner.jwks()
    partner.rotate_key()
    assert partner.jwks() != before
    with fed.browser() as browser:
        assert sign_in(browser, PARTNER, sub).status_code == 303
        assert signed_in_as(browser) == owner.username


def test_a_rotated_key_is_not_refetched_within_the_cooldown_issue14_1(engine, database_url, tmp_path):
    """Keys are fetched early at most once per jwks_refresh_cooldown: a flood of tokens signed by
    unknown keys does not hammer the provider (here: a second rotation waits for the cooldown)."""
    op = OpenIDProvider()
    url, app, server, thread = serve(
        {
            "database_url": database_url,
            "instance_path": str(tmp_path / "instance"),
            "jwks_refresh_cooldown": 3600,
            "identity_providers": [provider(ACME, op.issuer, create_accounts=True)],
        }
    )
    try:
        sub = unique("rita")
        op.set_user(sub)
        with httpx.Client(base_url=url, timeout=30) as browser:
            assert sign_in(browser, ACME, sub).status_code == 303  # the keys are fetched and cached
        op.rotate_key()
        with httpx.Client(base_url=url, timeout=30) as browser:
            assert sign_in(browser, ACME, sub).status_code == 303  # one early fetch: the new key
        op.rotate_key()
        with httpx.Client(base_url=url, timeout=30) as browser:
            _fails(sign_in(browser, ACME, sub), 502, "signature does not verify")  # not again so soon
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["uma_db"].dispose()
        op.close()


# -- 3 and 4. requesting parties at the claims interaction, minimal claims ---------------------


def _policy(issuer: str) -> str:
    return (
        f'claims email, email_verified from "{issuer}" as id_token\n'
        'permit view on type "photo-album" when claims.email == "dana@example.com" and claims.email_verified == true\n'
    )


def _dana(op: OpenIDProvider) -> str:
    sub = unique("dana")
    op.set_user(
        sub,
        email="dana@example.com",
        email_verified=True,
        name="Dana Scully",
        phone_number="+1 555 0100",
        roles="physician",
    )
    return sub


def _need_info(flow: Any) -> dict[str, Any]:
    body = flow.token(flow.ticket(("album", ["view"]))).json()
    assert body["error"] == "need_info", body
    return body


def _interaction_upstream(fed: Fed, browser: httpx.Client, flow: Any, ticket: str, name: str, sub: str) -> str:
    """From the client's redirect to the consent page, signing in at provider ``name``; returns its HTML."""
    params = {"client_id": flow.client.client_id, "ticket": ticket, "claims_redirect_uri": CLAIMS_CB, "state": "st"}
    r = browser.get("/uma/claims", params=params)
    assert r.status_code == 303
    consent = r.headers["Location"]
    r = browser.get(consent)
    assert r.status_code == 303 and r.headers["Location"].startswith("/login?")  # nobody signed in yet
    login_next = query(r.headers["Location"])["next"][0]
    r = sign_in(browser, name, sub, next_path=login_next)
    assert r.status_code == 303 and r.headers["Location"] == consent, r.text
    page = browser.get(consent)
    assert page.status_code == 200, page.text
    return page.text


def _rpt_row(fed: Fed, access_token: str) -> Rpt:
    jti = jwt.decode(access_token, options={"verify_signature": False})["jti"]
    [row] = fed.rows(Rpt, Rpt.jti == jti)
    return row


def test_requesting_party_signs_in_upstream_and_only_the_needed_claims_reach_the_rpt_issue14_3_4_G_47_G_49(fed, acme):
    flow = fed.uma.flow(_policy(acme.issuer))
    need = _need_info(flow)
    # The claims must come from the provider's issuer: the claims interaction can gather them.
    assert need["redirect_user"] == fed.url + "/uma/claims"
    assert {(m["name"], tuple(m["issuer"])) for m in need["required_claims"]} == {
        ("email", (acme.issuer,)),
        ("email_verified", (acme.issuer,)),
    }
    sub = _dana(acme)
    with fed.browser() as browser:
        page = _interaction_upstream(fed, browser, flow, need["ticket"], ACME, sub)
        # Data minimisation: the page lists what the decision needs, nothing else of the ID token.
        assert "Signed in with Acme ID as <strong>dana@example.com</strong>" in page
        assert 'name="claim" value="email" checked' in page and 'name="claim" value="email_verified" checked' in page
        assert "+1 555 0100" not in page and "Dana Scully" not in page and "physician" not in page
        assert "sees none of them" in page and 'name="remember" value="yes">' in page
        r = browser.post("/uma/claims/consent", data=consent_form(page))
    assert r.status_code == 303 and r.headers["Location"].startswith(CLAIMS_CB + "?")
    back = query(r.headers["Location"])
    assert back["state"] == ["st"] and set(back) == {"ticket", "state"}  # no claim travels to the client (G-49)
    granted = flow.token(back["ticket"][0])
    assert granted.status_code == 200, granted.text
    assert "pct" not in granted.json()  # the party did not agree to be remembered (G-67)
    basis = _rpt_row(fed, granted.json()["access_token"]).basis
    assert basis["claims"] == {"email": "dana@example.com", "email_verified": True}
    assert basis["claim_sources"]["email"] == {"issuer": acme.issuer, "format": ID_TOKEN, "remember": False}
    # Who asked is known without a released claim; no account was made for the party.
    row = _rpt_row(fed, granted.json()["access_token"])
    assert row.requesting_party == f"{acme.issuer}#{sub}"
    assert fed.rows(FederatedIdentity, FederatedIdentity.subject == sub) == []
    # The audit says which claims were released (names, never values).
    [released] = fed.rows(
        AuditRecord, AuditRecord.owner == flow.owner.username, AuditRecord.outcome == "claims_released"
    )
    assert released.claims == ["email", "email_verified"] and released.requesting_party == row.requesting_party
    # The claims held for the interaction are gone.
    assert fed.rows(UpstreamSignIn, UpstreamSignIn.subject == sub) == []


def test_a_claim_the_party_unticks_is_not_released_issue14_4(fed, acme):
    flow = fed.uma.flow(_policy(acme.issuer))
    need = _need_info(flow)
    with fed.browser() as browser:
        page = _interaction_upstream(fed, browser, flow, need["ticket"], ACME, _dana(acme))
        r = browser.post("/uma/claims/consent", data=consent_form(page, claims=["email"]))
    ticket = query(r.headers["Location"])["ticket"][0]
    from app.security import hash_token

    [row] = fed.rows(PermissionTicket, PermissionTicket.ticket_hash == hash_token(ticket))
    assert row.claims == {"email": "dana@example.com"}
    again = flow.token(ticket).json()
    assert again["error"] == "need_info" and [m["name"] for m in again["required_claims"]] == ["email_verified"]


def test_a_pct_only_when_the_party_agrees_and_it_keeps_only_the_released_claims_G_67_issue14_4(fed, acme):
    flow = fed.uma.flow(_policy(acme.issuer))
    need = _need_info(flow)
    with fed.browser() as browser:
        page = _interaction_upstream(fed, browser, flow, need["ticket"], ACME, _dana(acme))
        r = browser.post("/uma/claims/consent", data=consent_form(page, remember=True))
    granted = flow.token(query(r.headers["Location"])["ticket"][0]).json()
    pct = granted["pct"]
    from app.security import hash_token

    [row] = fed.rows(Pct, Pct.pct_hash == hash_token(pct))
    assert row.claims == {"email": "dana@example.com", "email_verified": True}
    # The client comes back without the party.
    assert flow.token(flow.ticket(("album", ["view"])), pct=pct).status_code == 200


def test_the_same_rule_is_met_by_a_pushed_id_token_of_the_provider_issue14_3_G_17(fed, acme):
    flow = fed.uma.flow(_policy(acme.issuer))
    sub = _dana(acme)
    # The client got an ID token from the provider itself (for its own client id there).
    token = _id_token_from(acme, sub, flow.client.client_id)
    r = flow.token(flow.ticket(("album", ["view"])), claim_token=token, claim_token_format=ID_TOKEN)
    assert r.status_code == 200, r.text  # trusted without a trusted_issuers entry: JWKS from discovery
    basis = _rpt_row(fed, r.json()["access_token"]).basis
    assert basis["claim_sources"]["email"] == {"issuer": acme.issuer, "format": ID_TOKEN}
    # Another audience is refused as for any trusted issuer.
    other = _id_token_from(acme, sub, "someone-else")
    refused = flow.token(flow.ticket(("album", ["view"])), claim_token=other, claim_token_format=ID_TOKEN).json()
    assert refused["error"] == "need_info" and "(aud)" in refused["error_description"]


def test_claim_mapping_renames_upstream_claims_for_the_policy_issue14_1_issue14_3(fed, acme):
    policy = (
        f'claims groups from "{acme.issuer}" as id_token\n'
        'permit view on type "photo-album" when claims.groups == "physician"\n'
    )
    flow = fed.uma.flow(policy)
    need = _need_info(flow)
    assert [m["name"] for m in need["required_claims"]] == ["groups"]
    with fed.browser() as browser:
        page = _interaction_upstream(fed, browser, flow, need["ticket"], ACME, _dana(acme))
        assert 'name="claim" value="groups" checked' in page and "physician" in page
        r = browser.post("/uma/claims/consent", data=consent_form(page))
    granted = flow.token(query(r.headers["Location"])["ticket"][0])
    assert granted.status_code == 200, granted.text
    assert _rpt_row(fed, granted.json()["access_token"]).basis["claims"] == {"groups": "physician"}
    # The same mapping applies to a pushed ID token of that provider.
    token = _id_token_from(acme, _dana(acme), flow.client.client_id)
    assert (
        flow.token(flow.ticket(("album", ["view"])), claim_token=token, claim_token_format=ID_TOKEN).status_code == 200
    )


def test_a_local_party_is_offered_the_provider_for_claims_only_it_can_give_issue14_3(fed, acme):
    flow = fed.uma.flow(_policy(acme.issuer))
    need = _need_info(flow)
    local = fed.uma.user(claims={"email": "dana@example.com", "email_verified": True})
    with fed.browser() as browser:
        _sign_in_locally(browser, local)
        params = {"client_id": flow.client.client_id, "ticket": need["ticket"], "claims_redirect_uri": CLAIMS_CB}
        page = browser.get(browser.get("/uma/claims", params=params).headers["Location"])
    assert page.status_code == 200
    # This server's own email claim is not the one the rules accept: no box, a sign-in link instead.
    assert 'name="claim"' not in page.text
    assert f"needed from {acme.issuer}: sign in with" in page.text and "/login/upstream/Acme%20ID?next=" in page.text


def test_interaction_is_not_offered_for_an_issuer_nobody_here_can_sign_in_with_G_40(fed):
    flow = fed.uma.flow(
        'claims email from "https://elsewhere.example" as id_token\n'
        'permit view on type "photo-album" when claims.email == "dana@example.com"\n'
    )
    assert "redirect_user" not in _need_info(flow)


def test_decisions_record_the_claim_names_they_were_made_with(fed, acme):
    flow = fed.uma.flow(_policy(acme.issuer))
    token = _id_token_from(acme, _dana(acme), flow.client.client_id)
    assert (
        flow.token(flow.ticket(("album", ["view"])), claim_token=token, claim_token_format=ID_TOKEN).status_code == 200
    )
    with Session(fed.engine) as s:
        record = (
            s.execute(
                select(AuditRecord)
                .where(AuditRecord.owner == flow.owner.username, AuditRecord.outcome == "permit")
                .order_by(AuditRecord.id.desc())
            )
            .scalars()
            .first()
        )
    assert record is not None and {"email", "email_verified", "sub"} <= set(record.claims)
    assert "dana@example.com" not in json.dumps(record.claims)


def test_password_login_can_be_turned_off_for_provider_sign_in_only_issue14_2(
    engine, database_url, tmp_path, acme, make_user
):
    local = make_user()
    url, app, server, thread = serve(
        {
            "database_url": database_url,
            "instance_path": str(tmp_path / "instance"),
            "password_login": False,
            "identity_providers": [provider(ACME, acme.issuer, create_accounts=True)],
            # The page has no form, so no anti-CSRF token to send: let a post through to the view,
            # to show that the view itself refuses passwords.
            "WTF_CSRF_ENABLED": False,
        }
    )
    try:
        with httpx.Client(base_url=url, timeout=30) as browser:
            page = browser.get("/login")
            assert "Sign in with Acme ID" in page.text and 'name="password"' not in page.text
            r = browser.post("/login", data={"username": local.username, "password": local.password, "next": "/"})
            assert r.status_code == 401 and "turned off" in r.text  # even the right password
            assert signed_in_as(browser) is None
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["uma_db"].dispose()


def test_discovery_is_fetched_when_needed_cached_refreshed_and_the_last_good_copy_kept_issue14_1(
    engine, database_url, tmp_path
):
    from app.config import IdentityProvider
    from app.identity.providers import Discovery, ProviderUnavailable

    op = OpenIDProvider()
    config = IdentityProvider(**provider(ACME, op.issuer))
    discovery_path = "/.well-known/openid-configuration"
    try:
        url, app, server, thread = serve(
            {
                "database_url": database_url,
                "instance_path": str(tmp_path / "i"),
                "identity_providers": [provider(ACME, op.issuer)],
            }
        )
        try:
            assert op.requested == []  # the server started without asking the provider anything
            with httpx.Client(base_url=url, timeout=30) as browser:
                assert start(browser, ACME).status_code == 303
                assert start(browser, ACME).status_code == 303
            assert op.requested.count(discovery_path) == 1  # then kept (provider_metadata_lifetime)
        finally:
            server.shutdown()
            thread.join(timeout=10)
            app.extensions["uma_db"].dispose()
        stale = Discovery(lifetime=0.0, cooldown=0.0)  # every use refreshes
        first = stale.metadata(config)
        stale.metadata(config)
        assert op.requested.count(discovery_path) == 3
    finally:
        op.close()
    assert stale.metadata(config) == first  # the provider is gone: the last good copy serves
    with pytest.raises(ProviderUnavailable):
        Discovery(lifetime=3600, cooldown=0.0).metadata(config)  # never fetched: nothing to serve


def test_deleting_an_account_removes_its_links_so_they_open_nothing_later_issue14_2(fed, partner):
    from app.admin import delete_user

    owner = fed.uma.user()
    sub = unique("uma")
    partner.set_user(sub)
    with fed.browser() as browser:
        _sign_in_locally(browser, owner)
        assert _link(browser, PARTNER, sub).status_code == 303
    with Session(fed.engine) as s:
        assert delete_user(s, owner.username)["linked_sign_ins"] == 1
        s.commit()
    assert fed.rows(FederatedIdentity, FederatedIdentity.subject == sub) == []
    with fed.browser() as browser:
        _fails(sign_in(browser, PARTNER, sub), 403, "no account here is linked")
