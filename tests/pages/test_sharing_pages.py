"""Sharing without writing code (issue 15) over real HTTP: the share form on a resource's
page makes a rule of the owner's text, shown as a diff before it is saved as a new version;
the page reads the shares back and stops them again, one new version each."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from app import sharing
from tests.pages.pages_support import csrf_of, make_sharing, sign_in
from tests.support.server import unique

BASE = 'permit view on type "photo-album" when client.id == "{client}"\n'


@pytest.fixture()
def world(http, make_user, make_client, pat_for):
    def _make(policy: str | None = BASE, **kw):
        return make_sharing(http, make_user, make_client, pat_for, policy, **kw)

    return _make


def _hidden(page: str) -> dict[str, list[str]]:
    """The confirm form's fields (what the browser would post back)."""
    form = page[page.index('name="confirm"') - 200 :]
    out: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form):
        out.setdefault(name, []).append(html.unescape(value))
    return out


def _policy(w) -> dict:
    r = w.api("GET", "/owner/policy")
    assert r.status_code == 200, r.text
    return r.json()


def test_share_shows_the_rule_as_a_diff_then_saves_it_as_a_new_version(browser, world, make_user):
    w = world()
    make_user(claims={"email": "bob@example.com"})
    rid = w.resources["summer-2026"]
    csrf = sign_in(browser, w.owner)
    page = browser.get(f"/my/resources/{rid}").text
    assert 'list="known-people"' in page and '<option value="bob@example.com">' in page  # suggestions
    before = _policy(w)
    form = {"csrf_token": csrf, "person": "bob@example.com", "who": "auto", "scopes": ["view", "download"]}
    preview = browser.post(f"/my/resources/{rid}/share", data={**form, "duration": "7d"})
    assert preview.status_code == 200, preview.text
    rule = f'permit view, download\n  on resource "{rid}"\n  when claims.email == "bob@example.com"\n  for 7d'
    assert html.escape(rule, quote=True) in preview.text or rule.replace('"', "&#34;") in preview.text
    assert 'class="diff-add">+permit view, download<' in preview.text
    assert _policy(w)["version"] == before["version"]  # shown, not saved
    fields = _hidden(preview.text)
    assert fields["confirm"] == ["1"] and fields["version"] == [str(before["version"])]
    saved = browser.post(f"/my/resources/{rid}/share", data=fields)
    assert saved.status_code == 303
    after = _policy(w)
    assert after["version"] == before["version"] + 1
    assert after["text"] == before["text"].rstrip("\n") + "\n\n" + rule + "\n"  # appended, the rest untouched
    page = browser.get(f"/my/resources/{rid}").text
    assert (
        "Saved as version" in page and "<strong>bob@example.com</strong>" in page and "for 7d after the grant" in page
    )
    assert "Stop sharing" in page


def test_share_by_user_name_until_a_date_with_approval_reads_back(browser, world):
    w = world()
    rid = w.resources["summer-2026"]
    csrf = sign_in(browser, w.owner)
    form = {"csrf_token": csrf, "person": "bob", "who": "auto", "scopes": ["print"], "until": "2031-01-31", "ask": "1"}
    fields = _hidden(browser.post(f"/my/resources/{rid}/share", data=form).text)
    assert browser.post(f"/my/resources/{rid}/share", data=fields).status_code == 303
    assert f'ask print\n  on resource "{rid}"\n  when claims.sub == "bob"\n  until 2031-01-31\n' in _policy(w)["text"]
    shares = sharing.read_shares(_policy(w)["text"], rid)
    assert [(s.effect, s.scopes, s.claim, s.person, s.expiry) for s in shares] == [
        ("ask", ("print",), "sub", "bob", "until 2031-01-31")
    ]
    page = browser.get(f"/my/resources/{rid}").text
    assert "asks you first" in page and "until 2031-01-31" in page


def test_stop_sharing_removes_the_rule_or_narrows_a_list_as_new_versions(browser, world):
    policy = BASE + (
        'permit view on resource "{rid}" when claims.email in ["bob@example.com", "carol@example.com"]\n'
        'permit download on resource "{rid}" when claims.email == "dave@example.com" for 2w\n'
        'permit view on resource "{rid}" when claims.email ends with "@acme.example"\n'
    )
    w = world()
    rid = w.resources["summer-2026"]
    assert w.put_policy(policy.replace("{client}", w.client.client_id).replace("{rid}", rid)).status_code == 200
    csrf = sign_in(browser, w.owner)
    page = browser.get(f"/my/resources/{rid}").text
    for who in ("bob@example.com", "carol@example.com", "dave@example.com"):
        assert f"<strong>{who}</strong>" in page
    # the rule the form cannot represent is shown as text, with no stop button of its own
    assert 'class="source other-rule">permit view on resource' in page and "ends with" in page
    v = _policy(w)["version"]

    narrow = {"csrf_token": csrf, "line": "2", "claim": "email", "person": "bob@example.com"}
    preview = browser.post(f"/my/resources/{rid}/unshare", data=narrow)
    assert preview.status_code == 200 and 'class="diff-del">-permit view on resource' in preview.text
    assert browser.post(f"/my/resources/{rid}/unshare", data=_hidden(preview.text)).status_code == 303
    text = _policy(w)["text"]
    assert _policy(w)["version"] == v + 1
    assert f'permit view\n  on resource "{rid}"\n  when claims.email == "carol@example.com"\n' in text
    assert "bob@example.com" not in text and "dave@example.com" in text and "@acme.example" in text

    line = [s.line for s in sharing.read_shares(text, rid) if s.person == "dave@example.com"]
    assert line == [5]  # the narrowed rule now takes three lines
    remove = {"csrf_token": csrf, "line": "5", "claim": "email", "person": "dave@example.com"}
    preview = browser.post(f"/my/resources/{rid}/unshare", data=remove)
    assert browser.post(f"/my/resources/{rid}/unshare", data=_hidden(preview.text)).status_code == 303
    text = _policy(w)["text"]
    assert "dave@example.com" not in text and "carol@example.com" in text and "@acme.example" in text
    assert text.startswith(BASE.replace("{client}", w.client.client_id))  # the rest exactly as written


def test_a_change_shown_on_an_older_version_is_not_saved(browser, world):
    w = world()
    rid = w.resources["summer-2026"]
    csrf = sign_in(browser, w.owner)
    form = {"csrf_token": csrf, "person": "bob@example.com", "scopes": ["view"]}
    fields = _hidden(browser.post(f"/my/resources/{rid}/share", data=form).text)
    assert w.put_policy(BASE.replace("{client}", "other")).status_code == 200  # changed meanwhile
    v = _policy(w)["version"]
    r = browser.post(f"/my/resources/{rid}/share", data=fields)
    assert r.status_code == 303
    assert _policy(w)["version"] == v and "bob@example.com" not in _policy(w)["text"]
    assert "Your policy changed since this change was shown" in html.unescape(browser.get(r.headers["location"]).text)
    gone = {
        "csrf_token": csrf,
        "line": "9",
        "claim": "email",
        "person": "bob@example.com",
        "confirm": "1",
        "version": "1",
    }
    assert browser.post(f"/my/resources/{rid}/unshare", data=gone).status_code == 404


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["delete"]}, "not registered"),
        ({"person": ""}, "Name the person"),
        ({"duration": "7 days"}, "A duration is a number and a unit"),
        ({"until": "next week"}, "An end date reads"),
        ({"duration": "7d", "until": "2031-01-01"}, "not both"),
        ({"who": "claim", "claim": "bad name"}, "A claim name is"),
        ({"who": "nobody"}, "Choose how the person is named"),
        ({"person": "x\x00y"}, "Name the person"),
    ],
)
def test_share_input_that_makes_no_rule_is_refused_and_nothing_changes(signed_owner, bad, words):
    browser, w, csrf = signed_owner
    rid = w.resources["summer-2026"]
    v = _policy(w)["version"]
    form = {"csrf_token": csrf, "person": "bob@example.com", "who": "auto", "scopes": ["view"], **bad}
    r = browser.post(f"/my/resources/{rid}/share", data={**form, "confirm": "1", "version": str(v)})
    assert r.status_code == 303
    assert words in html.unescape(browser.get(r.headers["location"]).text)
    assert _policy(w)["version"] == v


@pytest.fixture(scope="module")
def signed_owner(live_server, make_user, make_client, pat_for):
    with httpx.Client(base_url=live_server.url, timeout=30, follow_redirects=False) as http:
        w = make_sharing(http, make_user, make_client, pat_for, BASE)
        with httpx.Client(base_url=live_server.url, timeout=30, follow_redirects=False) as browser:
            yield browser, w, sign_in(browser, w.owner)


@pytest.mark.parametrize("path", ["share", "unshare"])
def test_share_forms_need_the_csrf_token_and_the_owners_resource_O_12(signed_owner, world, path):
    browser, w, csrf = signed_owner
    rid = w.resources["summer-2026"]
    data = {"person": "bob@example.com", "scopes": ["view"], "line": "1", "claim": "email"}
    assert browser.post(f"/my/resources/{rid}/{path}", data=data).status_code == 400
    assert browser.post(f"/my/resources/{rid}/{path}", data={**data, "csrf_token": "x"}).status_code == 400
    other = world()  # another owner's resource is not found, like one that does not exist
    r = browser.post(f"/my/resources/{other.resources['summer-2026']}/{path}", data={**data, "csrf_token": csrf})
    assert r.status_code == 404
    assert browser.post(f"/my/resources/{'x' * 80}/{path}", data={**data, "csrf_token": csrf}).status_code == 404
    assert csrf_of(browser.get("/").text)


# -- point 2: who has access, truthfully -----------------------------------------------------


def test_access_list_marks_each_rule_as_the_owners_or_the_operators_issue15(browser, world):
    w = world('permit view on type "photo-album" when claims.email == "bob@example.com"\n')
    rid = w.resources["summer-2026"]
    sign_in(browser, w.owner)
    page = browser.get(f"/my/resources/{rid}").text
    who = page[page.index('id="who-can"') : page.index('id="shared-with"')]
    # the owner's permit: its line of the owner's text, marked as the owner's
    assert 'href="/my/policy#L1"' in who and "your rule" in who
    # the operator's guardrail from policies/global.policy: shown with its text, read-only
    assert "the operator's rule (read-only)" in who
    assert (
        'class="source operator-rule">forbid any scope\n  on any resource\n  when client.id in blocked-clients</pre>'
        in who
    )
    # badges say what the rule does; nothing is "granted" while nobody holds a token
    assert ">can get it<" in who and "Can get it when" in who and ">granted<" not in page and "Granted" not in page
    assert "Nobody holds access to this resource right now" in page
    assert "The rules above let people get it when they ask." in page


def test_access_list_says_when_no_rule_lets_anyone_get_it(browser, world):
    w = world('permit view on type "other" when claims.email == "bob@example.com"\n')
    sign_in(browser, w.owner)
    page = browser.get(f"/my/resources/{w.resources['summer-2026']}").text
    assert "Nobody else: no rule grants it (default deny)." in page
    assert "No rule lets anyone get it." in page and ">can get it<" not in page


# -- point 3: shared with me ----------------------------------------------------------------


def test_shared_with_me_lists_what_others_rules_give_and_the_requests_issue15_G_42(browser, world, make_user):
    bob = make_user(claims={"email": unique("bob") + "@example.com"})  # no other test's share names it
    email = bob.claims["email"]
    w = world(
        BASE
        + f'permit view on type "photo-album" when claims.email == "{email}" for 7d\n'
        + f'ask download on type "photo-album" when claims.sub == "{bob.username}"\n',
        resources={"summer-2026": ["view", "download"], "winter": ["print"]},
    )
    csrf = sign_in(browser, bob)
    page = html.unescape(browser.get("/shared").text)
    assert "Shared with me" in page
    # Other tests' owners on this database may share with everyone: look at this owner's rows.
    reachable = [r for r in re.findall(r'<tr class="reachable">(.*?)</tr>', page, re.S) if w.owner.username in r]
    assert len(reachable) == 1 and "summer-2026" in reachable[0]
    assert '<span class="chip">view</span>' in reachable[0] and "if you ask now" in reachable[0]  # for 7d
    assert f'href="/shared/{w.resources["winter"]}"' not in page  # nothing of it is shared with bob
    askable = [a for a in re.findall(r'<li class="askable">(.*?)</li>', page, re.S) if w.owner.username in a]
    assert len(askable) == 1 and '<span class="chip">download</span>' in askable[0]

    # the link the owner sends: bob asks there, the owner sees it, approves; bob's page says so
    rid = w.resources["summer-2026"]
    link = browser.get(f"/shared/{rid}")
    assert link.status_code == 200 and 'value="download" checked' in link.text
    assert browser.post(f"/shared/{rid}/request", data={"csrf_token": csrf, "scopes": ["view"]}).status_code == 303
    assert w.api("GET", "/owner/requests").json()["requests"] == []  # view is not askable: refused
    r = browser.post(f"/shared/{rid}/request", data={"csrf_token": csrf, "scopes": ["download"]})
    assert r.status_code == 303 and r.headers["location"] == "/shared"
    again = browser.post(f"/shared/{rid}/request", data={"csrf_token": csrf, "scopes": ["download"]})
    assert "You already asked" in html.unescape(browser.get(again.headers["location"]).text)
    pending = w.api("GET", "/owner/requests").json()["requests"]
    assert [(p["requesting_party"], p["scopes_requested"]) for p in pending] == [(bob.username, ["download"])]
    mine = re.findall(r'<tr class="my-request">(.*?)</tr>', browser.get("/shared").text, re.S)
    assert len(mine) == 1 and '<span class="badge pending">pending</span>' in mine[0]

    with httpx.Client(base_url=str(browser.base_url), follow_redirects=False) as owner_browser:
        owner_csrf = sign_in(owner_browser, w.owner)
        assert "asked on their Shared with me page" in owner_browser.get("/my/requests").text
        r = owner_browser.post(f"/my/requests/{pending[0]['id']}/approve", data={"csrf_token": owner_csrf})
        assert r.status_code == 303
    mine = re.findall(r'<tr class="my-request">(.*?)</tr>', browser.get("/shared").text, re.S)
    assert '<span class="badge approved">approved</span>' in mine[0]
    # approved, download is now something bob can get (the owner's answer counts in the decision)
    reachable = re.findall(r'<tr class="reachable">(.*?)</tr>', browser.get("/shared").text, re.S)
    assert '<span class="chip">download</span>' in next(r for r in reachable if w.owner.username in r)


def test_a_link_to_a_resource_nothing_is_shared_of_is_not_found(browser, world, make_user):
    w = world(BASE)
    carol = make_user()
    csrf = sign_in(browser, carol)
    rid = w.resources["summer-2026"]
    assert browser.get(f"/shared/{rid}").status_code == 404  # not even its name is shown
    assert browser.post(f"/shared/{rid}/request", data={"csrf_token": csrf, "scopes": ["view"]}).status_code == 404
    assert browser.get(f"/shared/{'x' * 80}").status_code == 404
    assert browser.get("/shared/a%00b").status_code == 404
    assert browser.post(f"/shared/{rid}/request", data={"scopes": ["view"]}).status_code == 400  # CSRF
    with httpx.Client(base_url=str(browser.base_url), follow_redirects=False) as anonymous:
        assert anonymous.get("/shared").headers["location"].startswith("/login?next=/shared")


# -- point 5: a history people can read -----------------------------------------------------


def test_history_shows_the_owners_actions_beside_decisions_with_names_issue15(browser, world, make_user):
    w = world('ask view on type "photo-album" when client.id == "{client}"\n', client_name="Photo app")
    rid = w.resources["summer-2026"]
    csrf = sign_in(browser, w.owner)
    form = {"csrf_token": csrf, "person": "bob@example.com", "scopes": ["view"], "duration": "7d"}
    browser.post(f"/my/resources/{rid}/share", data=_hidden(browser.post(f"/my/resources/{rid}/share", data=form).text))
    text = _policy(w)["text"]
    line = sharing.read_shares(text, rid)[0].line
    stop = {"csrf_token": csrf, "line": str(line), "claim": "email", "person": "bob@example.com"}
    browser.post(
        f"/my/resources/{rid}/unshare", data=_hidden(browser.post(f"/my/resources/{rid}/unshare", data=stop).text)
    )
    r = w.token(w.ticket("summer-2026", ["view"]))  # a decision: request_submitted, then refused
    assert r.json()["error"] == "request_submitted"
    pending = w.api("GET", "/owner/requests").json()["requests"][0]
    assert (
        browser.post(f"/my/requests/{pending['id']}/deny", data={"csrf_token": csrf, "confirm": "1"}).status_code == 303
    )
    v = _policy(w)["version"]
    assert v == 3  # uploaded, shared, stopped

    page = html.unescape(browser.get("/my/history").text)
    actions = page[page.index('id="my-actions"') : page.index("</section>", page.index('id="my-actions"'))]
    flat = re.sub(r"<[^>]+>", " ", actions)
    flat = re.sub(r"\s+", " ", flat)
    assert "Shared summer-2026 with bob@example.com view for 7d (version 2)" in flat
    assert "Stopped sharing summer-2026 with bob@example.com view (version 3)" in flat
    assert "Refused someone using Photo app view on summer-2026 asked via Photo app" in flat
    assert "Saved version 3 of your policy" in flat and 'href="/my/policy/diff?from=2&to=3"' in actions
    assert "request submitted" in page and "via Photo app" in page  # the decisions are still there
    assert w.client.client_id not in flat  # the client by name, not by id

    only_actions = browser.get("/my/history", params={"show": "actions"}).text
    assert 'id="my-actions"' in only_actions and 'class="badge request_submitted"' not in only_actions
    only_decisions = browser.get("/my/history", params={"show": "decisions"}).text
    assert 'id="my-actions"' not in only_decisions and 'class="badge request_submitted"' in only_decisions
    assert browser.get("/my/history", params={"show": "x"}).status_code == 400
    per_resource = html.unescape(browser.get("/my/history", params={"resource_id": rid, "show": "actions"}).text)
    assert "Shared <strong>summer-2026</strong> with <strong>bob@example.com</strong>" in per_resource
    assert "Saved version" not in per_resource  # versions are not one resource's

    diff = browser.get("/my/policy/diff", params={"from": "1", "to": "3"})
    assert diff.status_code == 200 and "The two versions have the same text." in diff.text  # shared, then stopped
    diff = html.unescape(browser.get("/my/policy/diff", params={"from": "1", "to": "2"}).text)
    assert '<span class="diff-add">+  when claims.email == "bob@example.com"</span>' in diff
    reverse = html.unescape(browser.get("/my/policy/diff", params={"from": "2", "to": "1"}).text)
    assert '<span class="diff-del">-  when claims.email == "bob@example.com"</span>' in reverse
    for bad in ({"from": "1"}, {"from": "x", "to": "1"}, {"from": "1", "to": "-1"}):
        assert browser.get("/my/policy/diff", params=bad).status_code == 400
    assert browser.get("/my/policy/diff", params={"from": "1", "to": "99"}).status_code == 404
    other = world()
    assert other.api("GET", "/owner/policy").status_code == 200
    sign_in(browser, other.owner)  # another owner sees none of this
    assert "bob@example.com" not in browser.get("/my/history").text
    assert browser.get("/my/policy/diff", params={"from": "1", "to": "3"}).status_code == 404


# -- point 4 (the part that exists): the pending count on every page ------------------------


def test_the_pending_count_shows_on_every_owner_page_including_the_new_ones_G_42(browser, world):
    w = world('ask view on type "photo-album" when client.id == "{client}"\n')
    assert w.token(w.ticket("summer-2026", ["view"])).json()["error"] == "request_submitted"
    sign_in(browser, w.owner)
    rid = w.resources["summer-2026"]
    for path in (
        "/",
        "/my/resources",
        f"/my/resources/{rid}",
        "/my/policy",
        "/my/policy/diff?from=1&to=1",
        "/my/requests",
        "/my/history",
        "/my/try",
        "/shared",
        "/account",
    ):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert '<span class="count" aria-label="1 pending">1</span>' in page.text, path
