"""The pages in a real browser: headless Chromium (Debian's package) driven by Playwright.

The main path of every page: PAT consent, claims interaction (also signing in at an upstream
OpenID Provider), a policy edit with an error then a fix, an approval that lets a polling client through, a revocation that
stops a token, history, "try a request", and the layout on a phone. Screenshots go
to a temporary folder, or to ``UMA_SCREENSHOTS_DIR`` when set (docs/screenshots is
made that way, see docs/pages.md).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests.pages.pages_support import CLAIMS_CB, make_sharing
from tests.support.browser import chromium_executable
from tests.support.oidc_provider import OpenIDProvider
from tests.support.server import serve_app, unique

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RS_CALLBACK = "https://rs.example.net/cb"
DESKTOP = {"width": 1000, "height": 720}
PHONE = {"width": 390, "height": 844}
#: The sizes the flows of issue 15 run at (point 7): a laptop and a phone.
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": PHONE}

#: Every link of the navigation, as a list of failures: cut off, hidden, or outside the viewport.
NAV_PROBLEMS = """() => [...document.querySelectorAll('nav.nav a')].flatMap(a => {
  const r = a.getBoundingClientRect();
  const hidden = r.width === 0 || r.height === 0 || getComputedStyle(a).visibility === 'hidden';
  return hidden || r.left < 0 || r.right > window.innerWidth ? [a.textContent.trim()] : [];
})"""

OWNER_POLICY = """# Family may see and download my albums.
group family = ["bob@example.com", "carol@example.com"]
permit view, download on type "photo-album" when claims.email in family

# Colleagues ask first; I approve or refuse each request.
ask view on type "photo-album" when claims.email ends with "@example.com"

# The print shop app may print, for 30 days after I allow it.
permit print on type "photo-album" when client.id == "{client}" for 30d

# Nothing under private/ leaves this server.
forbid any scope on name like "private/*"
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    executable = chromium_executable()  # installs one where it is missing (tests/support/browser.py)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    configured = os.environ.get("UMA_SCREENSHOTS_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Person:
    """One person's browser context on the live server."""

    def __init__(
        self, chromium: Any, base: str, shots: Path, viewport: dict[str, int] = DESKTOP, javascript: bool = True
    ):
        self.context = chromium.new_context(viewport=viewport, base_url=base, java_script_enabled=javascript)
        self.context.set_default_timeout(15000)
        self.page = self.context.new_page()
        self.problems: list[str] = []  # script errors and content-security-policy refusals
        self.page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        self.page.on(
            "console",
            lambda msg: (
                self.problems.append(msg.text)
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        self.base = base
        self.shots = shots
        self.landed: list[str] = []

        def land(route: Any) -> None:  # the client's and the RS's own pages: record, answer "ok"
            self.landed.append(route.request.url)
            route.fulfill(status=200, content_type="text/html", body="<p>back at the application</p>")

        self.context.route("https://rs.example.net/**", land)
        self.context.route("https://client.example.com/**", land)

    def sign_in(self, user: Any) -> None:
        self.page.fill("#username", user.username)
        self.page.fill("#password", user.password)
        self.page.click("button[type=submit]")

    def open_signed_in(self, path: str, user: Any) -> None:
        self.page.goto("/login?" + urlencode({"next": path}))
        self.sign_in(user)
        self.page.wait_for_url(re.compile(re.escape(self.base + path.split("?")[0]) + "$"))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def fits(self) -> None:
        """The page fits its viewport (issue 15 point 6): nothing scrolls sideways, and every link
        of the navigation is shown whole inside the viewport (none cut off or scrolled away)."""
        self.page.wait_for_load_state()
        where = self.page.url
        assert self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            f"{where} scrolls sideways"
        )
        nav = self.page.locator("nav.nav a")
        if nav.count():
            assert nav.count() == 7, where
            assert self.page.evaluate(NAV_PROBLEMS) == [], f"{where}: navigation links outside the viewport"

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def person(chromium, live_server, shots) -> Iterator[Any]:
    opened: list[Person] = []

    def _open(viewport: dict[str, int] = DESKTOP, javascript: bool = True) -> Person:
        p = Person(chromium, live_server.url, shots, viewport, javascript)
        opened.append(p)
        return p

    yield _open
    problems = [problem for p in opened for problem in p.problems]
    for p in opened:
        p.close()
    assert not problems, problems


@pytest.fixture()
def world(http, make_user, make_client, pat_for):
    """An owner named alice-… with a policy, resources and the client "Photo app" (readable screenshots)."""

    def _make(policy: str | None, **kw: Any):
        kw.setdefault("owner", make_user(username=unique("alice")))
        kw.setdefault("client_name", "Photo app")
        return make_sharing(http, make_user, make_client, pat_for, policy, **kw)

    return _make


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def test_pat_consent_in_the_browser_O_09_F_06(person, make_user, make_rs, http):
    owner = make_user(username=unique("alice"))
    rs = make_rs(client_name="Photo storage")
    verifier, challenge = _pkce()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": rs.client_id,
            "redirect_uri": RS_CALLBACK,
            "scope": "uma_protection",
            "state": "st-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    me = person()
    me.page.goto("/authorize?" + query)
    assert "/login" in me.page.url and me.page.is_visible("text=Sign in")
    me.shot("login")
    with me.page.expect_response(lambda r: "/authorize?" in r.url) as consent:
        me.sign_in(owner)
    # The strict policy is on (O-55, issue 13 point 5): the approval's redirect to the RS is
    # allowed by its form-action, and the person fixture fails on any CSP violation.
    assert consent.value.headers["content-security-policy"].endswith("form-action 'self' https://rs.example.net")
    me.page.wait_for_selector("text=Photo storage")
    assert me.page.is_visible("text=protecting your resources with this server")
    # issue 15 point 6: the heading says what Allow gives
    expect(me.page.locator("h1")).to_have_text("Let Photo storage protect your resources with this server?")
    me.shot("pat-consent")
    me.page.click("button[value=approve]")
    me.page.wait_for_url(RS_CALLBACK + "?*")
    back = parse_qs(urlsplit(me.landed[-1]).query)
    assert back["state"] == ["st-1"]
    token = http.post(
        "/token",
        auth=rs.basic_auth,
        data={
            "grant_type": "authorization_code",
            "code": back["code"][0],
            "redirect_uri": RS_CALLBACK,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200 and token.json()["scope"] == "uma_protection"


def test_claims_interaction_then_an_approval_lets_the_polling_client_through_then_revocation_stops_it_G_42_G_47(
    person, world, make_user
):
    w = world('ask view on type "photo-album" when claims.email ends with "@example.com"')
    need = w.token(w.ticket("summer-2026", ["view"])).json()
    assert need["error"] == "need_info" and need["redirect_user"].endswith("/uma/claims")

    # The requesting party signs in at the AS, sees what is asked and why, consents.
    dave = make_user(username=unique("dave"), claims={"email": "dave@example.com", "email_verified": True})
    party = person()
    party.page.goto(
        "/uma/claims?"
        + urlencode(
            {
                "client_id": w.client.client_id,
                "ticket": need["ticket"],
                "claims_redirect_uri": CLAIMS_CB,
                "state": "s-9",
            }
        )
    )
    party.sign_in(dave)
    party.page.wait_for_selector("text=What the application asks for")
    assert party.page.is_visible("tr.needed >> text=dave@example.com")
    party.shot("claims-interaction")
    party.page.click("button[value=allow]")
    party.page.wait_for_url(CLAIMS_CB + "?*")
    back = parse_qs(urlsplit(party.landed[-1]).query)
    assert back["state"] == ["s-9"]
    submitted = w.token(back["ticket"][0])
    assert submitted.status_code == 403 and submitted.json()["error"] == "request_submitted"

    # The owner sees the request and approves it; the polling client gets its RPT.
    me = person()
    me.open_signed_in("/my/requests", w.owner)
    card = me.page.locator("article", has_text=dave.username)
    assert card.locator("input[name=scopes][value=view]").is_checked()
    me.shot("requests")
    card.locator("text=Approve checked").click()
    me.page.wait_for_selector("text=Approved view")
    poll = w.token(submitted.json()["ticket"])
    assert poll.status_code == 200, poll.text
    rpt = poll.json()["access_token"]
    assert w.introspect(rpt)["active"] is True

    # On the resource page the grant is listed; revoking it stops the token at once.
    me.page.goto(f"/my/resources/{w.resources['summer-2026']}")
    assert me.page.is_visible("text=Withdraw approval")
    me.page.locator("form", has_text="Revoke this token").locator("button").click()
    me.page.wait_for_selector("text=Access revoked")
    assert w.introspect(rpt) == {"active": False}


def test_policy_edit_with_an_error_then_a_fix(person, world):
    w = world('permit view on type "photo-album" when claims.email == "bob@example.com"')
    me = person()
    me.open_signed_in("/my/policy", w.owner)
    editor = me.page.locator("#policy-text")
    editor.fill('permit view on type "photo-album"\npermit downlod on type "photo-album" when claims.email = "x"\n')
    me.page.wait_for_selector("#L2.error")  # the live check marks the line beside its number
    assert "1 error" in me.page.inner_text("#check-status")
    assert "Line 2" in me.page.inner_text("#diagnostics")
    me.shot("policy-error")
    me.page.get_by_role("button", name="Save").click()
    me.page.wait_for_selector("text=Nothing was changed")
    assert w.api("GET", "/owner/policy").json()["version"] == 1
    editor = me.page.locator("#policy-text")
    editor.fill(OWNER_POLICY.replace("{client}", w.client.client_id))
    me.page.wait_for_selector("#check-status.ok")
    me.page.get_by_role("button", name="Save").click()
    me.page.wait_for_selector("text=Saved as version 2")
    me.page.wait_for_selector("#check-status.ok")
    expect(me.page.locator("#diagnostics li.warning").first).to_be_visible()  # W307: type "photo-album" is not declared
    expect(me.page.locator(".versions li")).to_have_count(2)
    me.shot("policy")
    assert w.api("GET", "/owner/policy").json()["text"].startswith("# Family may see")


def test_the_editor_works_without_script(person, world):
    w = world('permit view on type "photo-album"')
    me = person(javascript=False)
    me.open_signed_in("/my/policy", w.owner)
    me.page.fill("#policy-text", 'permit view on type "photo-album"\nforbid print on type "photo-album" when\n')
    me.page.get_by_role("button", name="Save").click()
    me.page.wait_for_selector("#not-saved")
    assert me.page.locator("#L2.error").count() == 1 and "Line 2" in me.page.inner_text("#diagnostics")
    me.page.fill("#policy-text", 'permit view on type "photo-album"\nforbid print on type "photo-album"\n')
    me.page.get_by_role("button", name="Save").click()
    me.page.wait_for_selector("text=Saved as version 2")
    assert w.api("GET", "/owner/policy").json()["version"] == 2


def test_resources_history_and_try_a_request_on_desktop_and_phone(person, world, make_user):
    w = world(
        OWNER_POLICY,
        resources={
            "summer-2026": ["view", "download", "print"],
            "private/passport-scan": ["view"],
            "garden-2025": ["view", "download"],
        },
    )
    assert w.token(w.ticket("summer-2026", ["print"])).status_code == 200
    assert w.token(w.ticket("private/passport-scan", ["view"])).json()["error"] == "request_denied"
    me = person()
    me.open_signed_in("/", w.owner)
    me.shot("home")
    me.page.click("nav >> text=My resources")
    me.page.wait_for_url(re.compile(r"/my/resources$"))
    # the click starts a navigation; wait for the new page's cards rather than counting mid-load
    expect(me.page.locator("article.resource-card")).to_have_count(3)
    me.shot("resources")
    me.page.click("text=summer-2026")
    me.page.wait_for_selector("text=Who can get access")
    assert me.page.is_visible("text=Revoke this token")
    me.shot("resource")

    me.page.click("nav >> text=History")
    me.page.wait_for_url(re.compile(r"/my/history$"))
    me.page.select_option("#f-outcome", "deny")
    me.page.get_by_role("button", name="Filter").click()
    me.page.wait_for_url(re.compile(r"outcome=deny"))
    expect(me.page.locator("tbody tr")).to_have_count(1)
    me.page.goto("/my/history")
    me.shot("history")

    me.page.click("nav >> text=Try a request")
    me.page.wait_for_url(re.compile(r"/my/try$"))
    me.page.select_option("#t-resource", w.resources["summer-2026"])
    me.page.fill("#t-scopes", "view download")
    me.page.fill("#t-claims", "email = carol@example.com")
    me.page.get_by_role("button", name="Decide").click()
    me.page.wait_for_selector("#result .decision")
    assert me.page.inner_text("#result .decision").lower().startswith("permit")
    me.shot("try")

    phone = person(PHONE)
    phone.open_signed_in(f"/my/resources/{w.resources['summer-2026']}", w.owner)
    phone.fits()
    phone.shot("resource-phone")
    for path in ("/my/resources", "/my/history", "/my/policy", "/my/try", "/my/requests", "/shared", "/account", "/"):
        phone.page.goto(path)
        phone.fits()
    phone.page.goto("/my/policy")
    phone.page.wait_for_selector("#check-status.ok")
    phone.shot("policy-phone")


def test_the_login_page_says_in_words_when_sign_in_is_paused(person, make_user, settings):
    """Issue 13, point 3: after too many wrong passwords for a name, the page (in a real browser)
    says that sign-in is paused and when to try again; the right password then waits too."""
    user = make_user()
    me = person()
    me.page.goto("/login")
    for n in range(settings.lockout_account_attempts):
        me.page.fill("#username", user.username)
        me.page.fill("#password", f"wrong-{n}")
        me.page.click("button[type=submit]")
        expect(me.page.get_by_role("alert")).to_have_text("Unknown user name or wrong password.")
    me.sign_in(user)
    alert = me.page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed sign-ins")
    expect(alert).to_contain_text("try again in 15 minutes")
    assert me.page.url.endswith("/login")
    me.shot("login-paused")


def test_requesting_party_signs_in_with_an_identity_provider_in_the_browser_issue14(
    chromium, shots, world, database_url, tmp_path
):
    """Issue 14 in Chromium: the requesting party signs in at a real OpenID Provider from the claims
    interaction, sees only the claims the owner's rule needs, lets the server remember them, and
    the client gets its RPT and a PCT."""
    op = OpenIDProvider()
    try:
        sub = unique("dana")
        op.set_user(sub, email="dana@example.com", email_verified=True, phone_number="+1 555 0100")
        w = world(
            f'claims email, email_verified from "{op.issuer}" as id_token\n'
            'permit view on type "photo-album" when claims.email == "dana@example.com" and claims.email_verified == true\n'
        )
        need = w.token(w.ticket("summer-2026", ["view"])).json()
        assert need["error"] == "need_info"
        acme = {"name": "Acme ID", "issuer": op.issuer, "client_id": "uma-as", "client_secret": "rp-secret"}
        config = {"database_url": database_url, "instance_path": str(tmp_path / "i"), "identity_providers": [acme]}
        with serve_app(config) as url:
            party = Person(chromium, url, shots)
            try:
                party.page.goto(
                    "/uma/claims?"
                    + urlencode(
                        {
                            "client_id": w.client.client_id,
                            "ticket": need["ticket"],
                            "claims_redirect_uri": CLAIMS_CB,
                            "state": "s-14",
                        }
                    )
                )
                party.page.click("text=Sign in with Acme ID")
                party.page.wait_for_url(op.issuer + "/oauth2/authorize?*")
                party.page.fill("input[name=sub]", sub)
                party.page.click("button:has-text('Authorize')")
                party.page.wait_for_selector("text=Signed in with Acme ID as")
                assert party.page.is_checked("input[name=claim][value=email]")
                assert party.page.is_checked("input[name=claim][value=email_verified]")
                assert not party.page.is_visible("text=+1 555 0100")  # not needed: not shown, not shared
                party.shot("claims-interaction-upstream")
                party.page.check("input[name=remember]")
                party.page.click("button[value=allow]")
                party.page.wait_for_url(CLAIMS_CB + "?*")
                back = parse_qs(urlsplit(party.landed[-1]).query)
                assert back["state"] == ["s-14"]
                assert not party.problems, party.problems
            finally:
                party.close()
        granted = w.token(back["ticket"][0])
        assert granted.status_code == 200, granted.text
        assert granted.json()["pct"]
    finally:
        op.close()


def test_share_then_an_rpt_over_http_then_stop_sharing_makes_the_same_rpt_inactive_issue15_G_61(
    person, world, make_user
):
    """Issue 15 point 7, end to end: the owner shares with Bob on the resource's page (the rule
    shown as a diff, then saved: it is in the owner's text); Bob's client gets an RPT with the UMA
    grant over HTTP and it introspects active; the owner stops sharing on the page; the same RPT
    introspects inactive at once (live access, issue 10: introspection decides it again)."""
    w = world('permit print on type "photo-album" when client.id == "{client}"\n')
    rid = w.resources["summer-2026"]
    bob = make_user(username=unique("bob"), claims={"email": "bob@example.com", "email_verified": True})

    # The owner shares with Bob from the resource's page: the rule shown as a diff, then saved.
    me = person()
    me.open_signed_in(f"/my/resources/{rid}", w.owner)
    assert me.page.locator("#known-people option[value='bob@example.com']").count() == 1  # a suggestion
    me.page.fill("input[name=person]", "bob@example.com")
    me.page.check("input[name=scopes][value=download]")
    me.page.fill("input[name=duration]", "7d")
    me.shot("share-form")
    me.page.click("#share-submit")
    me.page.wait_for_selector("#share-diff")
    expect(me.page.locator("#share-diff .diff-add").first).to_have_text("+")
    expect(me.page.locator("#share-rule")).to_have_text(
        f'permit view, download\n  on resource "{rid}"\n  when claims.email == "bob@example.com"\n  for 7d'
    )
    me.shot("share-diff")
    me.page.click("#confirm-change")
    me.page.wait_for_selector("text=Saved as version")
    shared = me.page.locator(".shares li", has_text="bob@example.com")
    expect(shared).to_contain_text("for 7d after the grant")
    me.shot("shared-with")

    # The rule works: Bob's client gets an RPT for view after Bob gives his email.
    need = w.token(w.ticket("summer-2026", ["view"])).json()
    assert need["error"] == "need_info"
    party = person(PHONE)  # Bob, on his phone
    party.page.goto(
        "/uma/claims?"
        + urlencode(
            {"client_id": w.client.client_id, "ticket": need["ticket"], "claims_redirect_uri": CLAIMS_CB, "state": "s"}
        )
    )
    party.sign_in(bob)
    expect(party.page.locator("#consent-heading")).to_have_text(
        f"Share your email with {w.owner.username}'s sharing rules?"
    )
    party.fits()
    party.shot("claims-interaction-phone")
    party.page.click("button[value=allow]")
    party.page.wait_for_url(CLAIMS_CB + "?*")
    granted = w.token(parse_qs(urlsplit(party.landed[-1]).query)["ticket"][0])
    assert granted.status_code == 200, granted.text
    rpt = granted.json()["access_token"]
    active = w.introspect(rpt)
    assert active["active"] is True
    assert [p["resource_scopes"] for p in active["permissions"] if p["resource_id"] == rid] == [["view"]]
    assert 'when claims.email == "bob@example.com"' in w.api("GET", "/owner/policy").json()["text"]

    # Stop sharing: the diff takes the rule out; saved, the page shows no share, the text no rule.
    shared.locator("button", has_text="Stop sharing").click()
    me.page.wait_for_selector("#share-diff .diff-del")
    me.page.click("#confirm-change")
    me.page.wait_for_selector("text=Stopped sharing")
    expect(me.page.locator("#shared-with + p.empty")).to_be_visible()
    text = w.api("GET", "/owner/policy").json()["text"]
    assert "bob@example.com" not in text and text.startswith("permit print")
    assert w.introspect(rpt) == {"active": False}  # the same token: the rule that gave it is gone


@pytest.mark.parametrize("size", sorted(SIZES))
def test_the_sharing_pages_of_issue15_work_at_desktop_and_phone_size(person, world, make_user, size):
    """Issue 15 point 7: the flows of sharing without writing code in Chromium at a laptop's and
    a phone's size, every page fitting its screen: a person asks for access on their Shared with
    me page; the owner refuses it (after confirming); shares another resource from its page (the
    diff first) and stops again; reads it back in History (filters, the version diff); tries a
    request, picking the client and the person by name. Screenshots: ``NAME.png`` on the
    desktop, ``NAME-phone.png`` on the phone (docs/pages.md)."""
    viewport = SIZES[size]
    suffix = "" if size == "desktop" else "-phone"
    w = world(
        'ask view on type "photo-album" when claims.email ends with "@example.com"\n'
        'permit print on type "photo-album" when client.id == "{client}"\n',
        resources={"summer-2026": ["view", "download", "print"], "garden-2025": ["view", "download"]},
    )
    summer, garden = w.resources["summer-2026"], w.resources["garden-2025"]
    assert w.token(w.ticket("summer-2026", ["print"])).status_code == 200  # Photo app asked once
    bob = make_user(username=unique("bob"), claims={"email": "bob@example.com", "email_verified": True})
    carol = make_user(username=unique("carol"), claims={"email": "carol@example.com"})

    # Bob, sent the link, asks for access on his Shared with me page.
    party = person(viewport)
    party.open_signed_in("/shared", bob)
    party.fits()
    # (other tests' owners ask-share their albums with any @example.com too: pick this owner's)
    party.page.locator("li.askable", has_text=w.owner.username).filter(has_text="summer-2026").locator("a").click()
    party.page.wait_for_selector("#request-access")
    party.fits()
    party.page.click("#request-access")
    party.page.wait_for_selector("text=the answer shows here")
    expect(party.page.locator("tr.my-request", has_text="summer-2026")).to_contain_text("pending")
    party.fits()
    party.shot("shared-with-me" + suffix)

    # The owner refuses it: Deny first shows what would be refused, then refuses.
    me = person(viewport)
    me.open_signed_in("/my/requests", w.owner)
    me.fits()
    card = me.page.locator("article", has_text=bob.username)
    card.get_by_role("button", name="Deny").click()
    me.page.wait_for_selector("#deny-confirm")
    expect(me.page.locator("h1")).to_have_text(f"Refuse the request of {bob.username}?")
    me.fits()
    me.shot("deny-confirm" + suffix)
    assert w.api("GET", "/owner/requests").json()["requests"][0]["status"] == "pending"
    me.page.click("#confirm-deny")
    me.page.wait_for_selector(f"text=Refused the request of {bob.username}")
    assert w.api("GET", "/owner/requests?status=all").json()["requests"][0]["status"] == "denied"
    party.page.reload()
    expect(party.page.locator("tr.my-request", has_text="summer-2026")).to_contain_text("denied")

    # Share garden-2025 with Carol from its page: who has access, the form, the diff, saved.
    me.page.goto(f"/my/resources/{garden}")
    expect(me.page.locator("#who-can")).to_be_visible()
    me.fits()
    me.page.fill("input[name=person]", carol.username)
    me.page.check("input[name=scopes][value=download]")
    me.page.click("#share-submit")
    me.page.wait_for_selector("#share-diff .diff-add")
    me.fits()
    me.page.click("#confirm-change")
    me.page.wait_for_selector("text=Saved as version")
    shared = me.page.locator(".shares li", has_text=carol.username)
    expect(shared).to_be_visible()
    me.fits()
    if size == "phone":
        me.shot("shared-with-phone")
    assert f'claims.sub == "{carol.username}"' in w.api("GET", "/owner/policy").json()["text"]
    shared.get_by_role("button", name="Stop sharing").click()
    me.page.wait_for_selector("#share-diff .diff-del")
    me.fits()
    me.page.click("#confirm-change")
    me.page.wait_for_selector("text=Stopped sharing")
    assert carol.username not in w.api("GET", "/owner/policy").json()["text"]

    # History: my actions (the share, its end, the refusal), filtered; the version diff.
    me.page.click("nav >> text=History")
    me.page.wait_for_url(re.compile(r"/my/history$"))
    me.page.select_option("#f-resource", garden)
    me.page.select_option("#f-show", "actions")
    me.page.get_by_role("button", name="Filter").click()
    me.page.wait_for_url(re.compile(r"show=actions"))
    expect(me.page.locator("li.action-share", has_text=carol.username)).to_have_count(1)
    expect(me.page.locator("li.action-unshare", has_text=carol.username)).to_have_count(1)
    expect(me.page.locator("li.action-denied")).to_have_count(0)  # the refusal was on summer-2026
    me.fits()
    me.page.goto("/my/history?show=actions")
    expect(me.page.locator("li.action-denied", has_text=bob.username)).to_have_count(1)
    me.fits()
    me.shot("history-actions" + suffix)
    me.page.locator("li.action-version").first.get_by_role("link", name="what changed").click()
    me.page.wait_for_selector("#version-diff .diff-del")
    me.fits()
    me.shot("policy-diff" + suffix)

    # Try a request: the client and the person picked by name, the ids sent.
    me.page.click("nav >> text=Try a request")
    me.page.wait_for_url(re.compile(r"/my/try$"))
    me.page.select_option("#t-resource", summer)
    me.page.fill("#t-scopes", "print view")
    me.page.select_option("#t-client", label=f"Photo app ({w.client.client_id})")
    me.page.select_option("#t-party", label=bob.username)
    me.page.get_by_role("button", name="Decide").click()
    me.page.wait_for_selector("#result .decision")
    expect(me.page.locator("#result .explain-scope", has_text="print")).to_contain_text("permit")
    expect(me.page.locator("#t-client option:checked")).to_have_text(f"Photo app ({w.client.client_id})")
    me.fits()
    me.shot("try-by-name" + suffix)

    for path in ("/", "/my/resources", f"/my/resources/{summer}", "/my/policy", "/account"):
        me.page.goto(path)
        me.fits()
