"""The owner and requesting-party pages over real HTTP: safety (CSRF, cookies, redirects,
owner isolation) and each page doing what the API and the grant do (O-12, O-31, O-44, G-41, G-42)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session, select

from app.models import Rpt
from tests.pages.pages_support import CLAIMS_CB, csrf_of, make_sharing, sign_in
from tests.support.server import serve_app

ASK_POLICY = 'ask view, download on type "photo-album" when client.id == "{client}"'
PERMIT_POLICY = 'permit view, download on type "photo-album" when client.id == "{client}"'


@pytest.fixture()
def world(http, make_user, make_client, pat_for):
    def _make(policy: str | None = ASK_POLICY, **kw):
        return make_sharing(http, make_user, make_client, pat_for, policy, **kw)

    return _make


def _submitted(w, scopes=("view", "download")) -> tuple[str, dict]:
    """The client asks; the owner's ask rule makes a pending request. Returns (next ticket, request)."""
    r = w.token(w.ticket("summer-2026", list(scopes)))
    assert r.status_code == 403 and r.json()["error"] == "request_submitted", r.text
    pending = w.api("GET", "/owner/requests").json()["requests"]
    assert len(pending) == 1
    return r.json()["ticket"], pending[0]


def _rpt(w) -> str:
    r = w.token(w.ticket("summer-2026", ["view"]))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


# -- safe by construction ----------------------------------------------------------

OWNER_PAGES = [
    "/my/resources",
    "/my/resources/x",
    "/my/policy",
    "/my/policy/versions/1",
    "/my/requests",
    "/my/history",
    "/my/try",
]


@pytest.mark.parametrize("path", OWNER_PAGES)
def test_owner_pages_send_anonymous_visitors_to_login(browser, path):
    r = browser.get(path)
    assert r.status_code == 303
    location = urlsplit(r.headers["location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == [path]


FORMS = [
    "/my/grants/1/revoke",
    "/my/approvals/1/revoke",
    "/my/requests/1/approve",
    "/my/requests/1/deny",
    "/my/policy",
    "/my/policy/check",
    "/my/policy/versions/1/restore",
    "/my/try",
    "/logout",
    "/login",
]


@pytest.fixture(scope="module")
def signed_in(live_server, make_user):
    """One signed-in browser session for the tests that change nothing."""
    with httpx.Client(base_url=live_server.url, timeout=30, follow_redirects=False) as client:
        sign_in(client, make_user())
        yield client


@pytest.mark.parametrize("path", FORMS)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_every_form_refuses_a_missing_or_wrong_csrf_token_O_12(signed_in, path, token):
    browser = signed_in
    data = {"text": "permit view on any resource", "username": "x", "password": "y"}
    if token is not None:
        data["csrf_token"] = token
    r = browser.post(path, data=data)
    assert r.status_code == 400
    assert "location" not in r.headers
    assert browser.get("/my/resources").status_code == 200  # still signed in: nothing happened


@pytest.mark.parametrize(
    "path",
    [
        "/my/grants/{n}/revoke",
        "/my/approvals/{n}/revoke",
        "/my/requests/{n}/approve",
        "/my/requests/{n}/deny",
        "/my/policy/versions/{n}/restore",
    ],
)
@pytest.mark.parametrize("n", ["0", "2147483648", "9" * 40])
def test_out_of_range_ids_are_not_found_never_an_error(signed_in, path, n):
    csrf = csrf_of(signed_in.get("/").text)
    assert signed_in.post(path.format(n=n), data={"csrf_token": csrf}).status_code == 404
    assert signed_in.get(f"/my/policy/versions/{n}").status_code == 404


@pytest.mark.parametrize(
    "query,status",
    [
        ({"before": "9" * 5000}, 200),
        ({"before": "-1"}, 200),
        ({"before": "x"}, 200),
        ({"outcome": ""}, 200),
        ({"resource_id": "r" * 5000}, 400),
        ({"resource_id": "a\x00b"}, 400),
        ({"outcome": "a\x00"}, 400),
    ],
)
def test_odd_history_queries_are_answered_never_an_error(signed_in, query, status):
    assert signed_in.get("/my/history", params=query).status_code == status


@pytest.mark.parametrize("path", ["/my/resources/a%00b", "/my/resources/" + "r" * 100, "/my/try?resource_id=a%00"])
def test_odd_paths_are_answered_never_an_error(signed_in, path):
    assert signed_in.get(path).status_code in (200, 404)


def test_odd_form_values_are_answered_never_an_error(signed_in):
    csrf = csrf_of(signed_in.get("/").text)
    r = signed_in.post(
        "/my/try",
        data={"csrf_token": csrf, "resource_id": "a\x00", "party": "p\x00", "claims": "x\x00 = \x00", "answer": "none"},
    )
    assert r.status_code == 400
    r = signed_in.post("/my/grants/1/revoke", data={"csrf_token": csrf, "resource_id": "a\x00"})
    assert r.status_code == 404
    r = signed_in.post("/my/policy", data={"csrf_token": csrf, "text": "permit view on any resource\x00"})
    assert r.status_code == 400 and "NUL" in r.text


def test_check_endpoint_refuses_a_wrong_csrf_header_O_12(browser, make_user):
    sign_in(browser, make_user())
    r = browser.post(
        "/my/policy/check", json={"text": "permit view on any resource"}, headers={"X-CSRF-Token": "forged"}
    )
    assert r.status_code == 400


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_login_next_never_leaves_the_site_O_44(browser, make_user, target):
    user = make_user()
    page = browser.get("/login", params={"next": target})
    assert 'name="next" value="/"' in page.text
    r = browser.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": user.username, "password": user.password, "next": target},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_login_goes_back_to_the_local_page_it_came_from_O_54(browser, make_user):
    user = make_user()
    first = browser.get("/my/history?outcome=deny")
    login_url = first.headers["location"]
    page = browser.get(login_url)
    r = browser.post(
        "/login",
        data={
            "csrf_token": csrf_of(page.text),
            "username": user.username,
            "password": user.password,
            "next": "/my/history?outcome=deny",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/my/history?outcome=deny"
    assert browser.get(r.headers["location"]).status_code == 200


def test_session_cookie_flags_and_renewal_on_login(browser, make_user):
    user = make_user()
    page = browser.get("/login")
    anonymous_cookie = browser.cookies.get("uma_session")
    assert anonymous_cookie
    set_cookie = page.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Secure" not in set_cookie
    old_csrf = csrf_of(page.text)
    r = browser.post(
        "/login", data={"csrf_token": old_csrf, "username": user.username, "password": user.password, "next": "/"}
    )
    assert r.status_code == 303
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Lax" in r.headers["set-cookie"]
    assert browser.cookies.get("uma_session") != anonymous_cookie
    new_csrf = csrf_of(browser.get("/").text)
    assert new_csrf != old_csrf  # the session is a new one: nothing of the old one survives
    assert browser.get("/my/resources").status_code == 200
    # The pre-login cookie is still anonymous: planting it in a victim's browser gains nothing.
    with httpx.Client(base_url=str(browser.base_url), follow_redirects=False) as other:
        other.cookies.set("uma_session", anonymous_cookie)
        assert other.get("/my/resources").status_code == 303


def test_logout_ends_the_session(browser, make_user):
    csrf = sign_in(browser, make_user())
    assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert browser.get("/my/resources").status_code == 303


@pytest.mark.parametrize("config", [{"cookie_secure": True}, {"issuer": "https://as.example.org"}])
def test_session_cookie_is_secure_when_configured_or_https(database_url, tmp_path, config):
    with serve_app({"database_url": database_url, "instance_path": str(tmp_path), **config}) as url:
        response = httpx.get(url + "/login")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_are_not_cached_and_load_only_their_own_code_O_55(browser, make_user):
    sign_in(browser, make_user())
    r = browser.get("/my/policy")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert r.headers["cache-control"] == "no-store" and r.headers["x-frame-options"] == "DENY"
    assert "<script>" not in r.text and " style=" not in r.text
    assert browser.get("/static/editor.js").status_code == 200
    assert browser.get("/static/style.css").status_code == 200


def test_nothing_of_another_owner_is_shown_or_changed(browser, world, make_user, engine):
    alice = world(ASK_POLICY)
    _, pending = _submitted(alice)
    rpt_world = world(PERMIT_POLICY, resources={"alices-secret-album": ["view"]}, owner=alice.owner)
    rpt = _rpt_for(rpt_world, "alices-secret-album")
    rpt_id = _rpt_id(engine, rpt_world, "alices-secret-album")
    versions = alice.api("GET", "/owner/policy/versions").json()["versions"]
    assert versions

    mallory = make_user()
    csrf = sign_in(browser, mallory)
    rid = alice.resources["summer-2026"]
    assert browser.get(f"/my/resources/{rid}").status_code == 404
    for path in (
        f"/my/grants/{rpt_id}/revoke",
        f"/my/requests/{pending['id']}/approve",
        f"/my/requests/{pending['id']}/deny",
        f"/my/approvals/{pending['id']}/revoke",
        f"/my/policy/versions/{versions[0]['version']}/restore",
    ):
        assert browser.post(path, data={"csrf_token": csrf}).status_code == 404, path
    assert browser.get(f"/my/policy/versions/{versions[0]['version']}").status_code == 404
    for path in ("/my/resources", "/my/requests", "/my/history", "/my/try", "/"):
        page = browser.get(path).text
        assert "alices-secret-album" not in page and rid not in page and alice.client.client_id not in page
    # Nothing changed for alice.
    assert alice.api("GET", "/owner/requests").json()["requests"][0]["status"] == "pending"
    assert rpt_world.introspect(rpt)["active"] is True
    history = browser.get("/my/history", params={"resource_id": rid}).text
    assert "No decision matches" in history


def _rpt_for(w, name: str) -> str:
    r = w.token(w.ticket(name, ["view"]))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _rpt_id(engine, w, name: str) -> int:
    with Session(engine) as s:
        rows = s.exec(select(Rpt).where(Rpt.owner == w.owner.username)).all()
    return [r.id for r in rows if any(p["resource_id"] == w.resources[name] for p in r.permissions)][-1]


# -- my resources: who can, grants, revocation ---------------------------------------

WHO_POLICY = """group family = ["bob@example.com"]
permit view on type "photo-album" when claims.email in family for 30d
ask download on type "photo-album" when claims.email ends with "@acme.example"
forbid print on name like "summer-*"
permit view on type "photo-album" when client.id == "{client}"
"""


def test_my_resources_lists_scopes_and_who_can_use_each_in_plain_words(browser, world):
    w = world(WHO_POLICY, resources={"summer-2026": ["view", "download", "print"], "winter": ["view"]})
    sign_in(browser, w.owner)
    listing = browser.get("/my/resources").text
    assert "summer-2026" in listing and "winter" in listing
    for scope in ("view", "download", "print"):
        assert f'<span class="chip">{scope}</span>' in listing
    page = browser.get(f"/my/resources/{w.resources['summer-2026']}")
    assert page.status_code == 200
    text = page.text
    assert "claims.email in family" in text and "bob@example.com" in text and "for 30d after the grant" in text
    assert "Needs your approval" in text and "ends with" in text
    assert "Never: forbidden to everyone" in text and "Nobody: a forbid without conditions" in text
    assert 'href="/my/policy#L2"' in text  # the rule's line in the owner's own text
    assert "Nobody holds access" in text


def test_revoking_a_grant_makes_its_rpt_introspect_inactive_at_once_O_31(browser, world):
    w = world(PERMIT_POLICY, resources={"summer-2026": ["view"], "winter": ["view"]})
    r = w.http.post(
        "/uma/permission",
        headers=w.pat.headers,
        json=[
            {"resource_id": w.resources["summer-2026"], "resource_scopes": ["view"]},
            {"resource_id": w.resources["winter"], "resource_scopes": ["view"]},
        ],
    )
    assert r.status_code == 201, r.text
    issued = w.token(r.json()["ticket"])
    assert issued.status_code == 200, issued.text
    rpt = issued.json()["access_token"]
    assert w.introspect(rpt)["active"] is True
    csrf = sign_in(browser, w.owner)
    page = browser.get(f"/my/resources/{w.resources['summer-2026']}").text
    assert "Revoke this token" in page and w.client.row.client_name in page
    assert "it also covers 1 other resource of yours" in page
    action = re.search(r'action="(/my/grants/\d+/revoke)"', page).group(1)
    r = browser.post(action, data={"csrf_token": csrf, "resource_id": w.resources["summer-2026"]})
    assert r.status_code == 303 and r.headers["location"] == f"/my/resources/{w.resources['summer-2026']}"
    assert w.introspect(rpt) == {"active": False}
    after = browser.get(r.headers["location"]).text
    assert "Access revoked" in after and "Revoke this token" not in after
    # The form's resource_id never sends the browser anywhere else.
    r = browser.post(action, data={"csrf_token": csrf, "resource_id": "https://evil.example"})
    assert r.headers["location"] == "/my/resources"


# -- requests -------------------------------------------------------------------------


def test_approving_some_scopes_lets_the_polling_client_through_with_those_G_42(browser, world):
    w = world(ASK_POLICY)
    ticket, pending = _submitted(w)
    csrf = sign_in(browser, w.owner)
    page = browser.get("/my/requests").text
    assert f"client:{w.client.client_id}" in page and "summer-2026" in page
    assert 'name="scopes" value="view" checked' in page and 'name="scopes" value="download" checked' in page
    assert 'Asked for <span class="chip">download</span> by <a class="rule" href="/my/policy#L1">' in page
    r = browser.post(f"/my/requests/{pending['id']}/approve", data={"csrf_token": csrf, "scopes": ["view"]})
    assert r.status_code == 303
    assert "Approved view" in browser.get("/my/requests").text
    poll = w.token(ticket)
    assert poll.status_code == 200, poll.text
    permissions = w.introspect(poll.json()["access_token"])["permissions"]
    assert [p["resource_scopes"] for p in permissions] == [["view"]]
    stored = w.api("GET", "/owner/requests", params={"status": "approved"}).json()["requests"][0]
    assert stored["scopes_approved"] == ["view"]


def test_approving_a_scope_that_was_not_requested_changes_nothing(browser, world):
    w = world(ASK_POLICY)
    _, pending = _submitted(w, scopes=("view",))
    csrf = sign_in(browser, w.owner)
    r = browser.post(f"/my/requests/{pending['id']}/approve", data={"csrf_token": csrf, "scopes": ["print"]})
    assert r.status_code == 303
    assert "was not requested" in browser.get("/my/requests").text
    assert w.api("GET", "/owner/requests").json()["requests"][0]["status"] == "pending"


def test_denying_asks_for_confirmation_then_sends_the_polling_client_request_denied_G_41(browser, world):
    """Issue 15 point 6: Deny first shows what would be refused (no script needed); only the
    confirmation (``confirm=1``) refuses."""
    w = world(ASK_POLICY)
    ticket, pending = _submitted(w)
    csrf = sign_in(browser, w.owner)
    asked = browser.post(f"/my/requests/{pending['id']}/deny", data={"csrf_token": csrf})
    assert asked.status_code == 200 and "Refuse the request of" in asked.text and 'id="confirm-deny"' in asked.text
    assert 'name="confirm" value="1"' in asked.text
    assert w.api("GET", "/owner/requests").json()["requests"][0]["status"] == "pending"  # nothing refused yet
    still = w.token(ticket).json()
    assert still["error"] == "request_submitted"
    ticket = still["ticket"]  # each answer carries the ticket to poll with next
    confirmed = browser.post(f"/my/requests/{pending['id']}/deny", data={"csrf_token": csrf, "confirm": "1"})
    assert confirmed.status_code == 303
    poll = w.token(ticket)
    assert poll.status_code == 403 and poll.json()["error"] == "request_denied"
    assert "No request is waiting" in browser.get("/my/requests").text


def test_withdrawing_an_approval_stops_the_tokens_it_gave(browser, world):
    w = world(ASK_POLICY)
    ticket, pending = _submitted(w)
    csrf = sign_in(browser, w.owner)
    browser.post(f"/my/requests/{pending['id']}/approve", data={"csrf_token": csrf})
    rpt = w.token(ticket).json()["access_token"]
    assert w.introspect(rpt)["active"] is True
    page = browser.get(f"/my/resources/{w.resources['summer-2026']}").text
    assert "Withdraw approval" in page
    r = browser.post(f"/my/approvals/{pending['id']}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert w.introspect(rpt) == {"active": False}
    assert w.api("GET", "/owner/requests", params={"status": "denied"}).json()["requests"][0]["id"] == pending["id"]
    again = w.token(w.ticket("summer-2026", ["view"]))
    assert again.status_code == 403 and again.json()["error"] == "request_denied"


# -- my policies ------------------------------------------------------------------------


def test_check_endpoint_reports_the_engines_diagnostics_at_their_line(browser, make_user):
    csrf = sign_in(browser, make_user())
    bad = 'permit view on type "photo-album"\npermit view on type "photo-album" when claims.email = "x"\n'
    r = browser.post("/my/policy/check", json={"text": bad}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["ok"] is False and body["errors"][0]["line"] == 2 and body["errors"][0]["severity"] == "error"
    assert "==" in (body["errors"][0]["message"] + (body["errors"][0]["hint"] or ""))
    good = browser.post("/my/policy/check", data={"csrf_token": csrf, "text": 'permit view on type "photo-album"'})
    assert good.json() == {"ok": True, "errors": [], "warnings": good.json()["warnings"]}
    other = browser.post(
        "/my/policy/check",
        json={"text": 'owner "someone-else"\npermit view on any resource'},
        headers={"X-CSRF-Token": csrf},
    )
    assert other.json()["ok"] is False  # checked with the signed-in owner as uploader
    assert browser.post("/my/policy/check", json={"text": 5}, headers={"X-CSRF-Token": csrf}).status_code == 400


def test_saving_a_text_that_does_not_check_is_refused_then_a_fix_is_saved_and_versions_restore(browser, world):
    w = world('permit view on type "photo-album"')
    csrf = sign_in(browser, w.owner)
    page = browser.get("/my/policy").text
    assert "Version 1 is in use" in page and "permit view on type &#34;photo-album&#34;" in page
    bad = 'permit view on type "photo-album"\nallow download on any resource\n'
    r = browser.post("/my/policy", data={"csrf_token": csrf, "text": bad})
    assert r.status_code == 400
    assert 'id="L2" class="error"' in r.text and "Line 2" in r.text and "Nothing was changed" in r.text
    assert "allow download on any resource" in r.text  # the author's text is kept in the editor
    assert w.api("GET", "/owner/policy").json()["version"] == 1
    fixed = 'permit view on type "photo-album"\npermit download on any resource\n'
    r = browser.post("/my/policy", data={"csrf_token": csrf, "text": fixed})
    assert r.status_code == 303 and r.headers["location"] == "/my/policy"
    assert "Saved as version 2" in browser.get("/my/policy").text
    assert w.api("GET", "/owner/policy").json()["text"] == fixed
    version_page = browser.get("/my/policy/versions/1")
    assert version_page.status_code == 200 and "permit view on type" in version_page.text
    assert browser.post("/my/policy/versions/1/restore", data={"csrf_token": csrf}).status_code == 303
    active = w.api("GET", "/owner/policy").json()
    assert active["version"] == 3 and active["text"] == 'permit view on type "photo-album"'
    assert browser.get("/my/policy/versions/99").status_code == 404


# -- history and try a request -------------------------------------------------------------


def test_history_shows_decisions_and_filters_by_resource_and_outcome(browser, world):
    w = world(PERMIT_POLICY, resources={"summer-2026": ["view"], "winter": ["view"]})
    _rpt(w)
    r = w.token(w.ticket("winter", ["view"]))
    assert r.status_code == 200
    w.put_policy(
        f'forbid view on name "winter" unless client.id == "nobody"\n{PERMIT_POLICY}'.replace(
            "{client}", w.client.client_id
        )
    )
    assert w.token(w.ticket("winter", ["view"])).json()["error"] == "request_denied"
    sign_in(browser, w.owner)
    everything = browser.get("/my/history").text
    assert everything.count('<span class="badge permit">') == 2 and everything.count('<span class="badge deny">') == 1
    denied = browser.get("/my/history", params={"outcome": "deny"}).text
    assert denied.count("<tr>") == 1 + 1 and "line 1 of your policy" in denied  # header row + one record
    winter = browser.get("/my/history", params={"resource_id": w.resources["winter"]}).text
    assert winter.count('<span class="badge permit">') == 1 and winter.count('<span class="badge deny">') == 1
    assert browser.get("/my/history", params={"outcome": "maybe"}).status_code == 400


def test_try_a_request_shows_the_decision_and_why_without_recording_it(browser, world):
    w = world(
        'group family = ["bob@example.com"]\n'
        'permit view on type "photo-album" when claims.email in family\n'
        'ask download on type "photo-album" when claims.email ends with "@example.com"'
    )
    csrf = sign_in(browser, w.owner)
    rid = w.resources["summer-2026"]
    form = {
        "csrf_token": csrf,
        "resource_id": rid,
        "scopes": "view download",
        "client_id": "",
        "claims": "email = bob@example.com",
        "answer": "none",
    }
    r = browser.post("/my/try", data=form)
    assert r.status_code == 200
    assert '<span class="badge request_submitted">request submitted</span>' in r.text
    assert "decided it" in r.text and "claims.email in family" in r.text and "Step 3" in r.text
    approved = browser.post("/my/try", data={**form, "answer": "approved"}).text
    assert '<span class="badge permit">permit</span>' in approved
    need = browser.post("/my/try", data={**form, "claims": ""}).text
    assert "need info" in need and '<span class="chip">email</span>' in need
    assert browser.post("/my/try", data={**form, "claims": "{not json"}).status_code == 400
    assert browser.post("/my/try", data={**form, "claims": '{"a": ' + "[" * 5000}).status_code == 400
    assert browser.post("/my/try", data={**form, "claims": "a = " + "[" * 5000}).status_code == 200
    bad_scope = browser.post("/my/try", data={**form, "scopes": "share"})
    assert bad_scope.status_code == 400 and "not registered" in bad_scope.text
    assert browser.post("/my/try", data={**form, "resource_id": "someone-elses"}).status_code == 400
    assert w.api("GET", "/owner/audit").json()["records"] == []
    assert w.api("GET", "/owner/requests").json()["requests"] == []


def test_try_a_request_offers_the_clients_and_people_that_asked_by_name_issue15(browser, world, make_user):
    """Issue 15 point 6: the client and the person are chosen by name; the form sends their ids."""
    w = world(
        'permit print on type "photo-album" when client.id == "{client}"\n'
        'ask view on type "photo-album" when claims.email ends with "@example.com"\n',
        client_name="Print shop",
    )
    rid = w.resources["summer-2026"]
    cid = w.client.client_id
    assert w.token(w.ticket("summer-2026", ["print"])).status_code == 200  # the client asked once
    csrf = sign_in(browser, w.owner)
    page = browser.get("/my/try").text
    assert f'<option value="{cid}">Print shop ({cid})</option>' in page
    assert f'<option value="client:{cid}">someone using Print shop</option>' in page
    form = {"csrf_token": csrf, "resource_id": rid, "scopes": "print", "claims": "", "answer": "none"}
    chosen = browser.post("/my/try", data={**form, "client_id": cid})
    assert chosen.status_code == 200 and '<span class="badge permit">permit</span>' in chosen.text
    assert f'<option value="{cid}" selected>Print shop' in chosen.text  # the choice stays picked
    other = browser.post("/my/try", data={**form, "client_id": cid, "client_other": "someone-else"})
    assert '<span class="badge deny">deny</span>' in other.text and 'value="someone-else"' in other.text
    # Another owner's clients and people are not offered.
    stranger = make_user()
    with httpx.Client(base_url=str(browser.base_url), timeout=30) as theirs:
        sign_in(theirs, stranger)
        assert cid not in theirs.get("/my/try").text


def test_claims_interaction_page_lists_what_is_asked_and_why(browser, world, make_user):
    w = world('permit view on type "photo-album" when claims.email == "dave@example.com"')
    first = w.token(w.ticket("summer-2026", ["view"])).json()
    assert first["error"] == "need_info"
    dave = make_user(claims={"email": "dave@example.com", "phone_number": "+1 555 0199"})
    sign_in(browser, dave)
    start = browser.get(
        "/uma/claims",
        params={
            "client_id": w.client.client_id,
            "ticket": first["ticket"],
            "claims_redirect_uri": CLAIMS_CB,
            "state": "s1",
        },
    )
    page = browser.get(start.headers["location"])
    assert page.status_code == 200
    with httpx.Client(base_url=str(browser.base_url), follow_redirects=True) as anonymous:
        login = anonymous.get(start.headers["location"])
        assert login.url.path == "/login" and "which of your details their sharing rules need" in login.text
    # Only what the decision needs (issue 14 point 4): email, ticked, not the account's phone number.
    assert 'name="claim" value="email" checked' in page.text and "dave@example.com" in page.text
    assert "+1 555 0199" not in page.text and "phone_number" not in page.text
    assert "sees none of them" in page.text and 'name="remember" value="yes">' in page.text
    assert '<span class="chip">view</span>' in page.text and w.client.row.client_name in page.text


def test_every_page_links_the_favicon_and_it_is_served_as_svg_issue15(browser):
    """Issue 15 point 6: an SVG favicon, linked from the base template, served as image/svg+xml."""
    page = browser.get("/login").text
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in page
    icon = browser.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].split(";")[0] == "image/svg+xml"
    assert icon.text.lstrip().startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in icon.text
