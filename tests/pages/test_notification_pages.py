"""Notifications in a real browser (issue 15 point 4), at desktop and phone sizes: the pending
count on every owner page, the notifications page with its webhook's delivery status, and the
link of a notification opened signed out, then signing in, then approving there.

The app here sends notifications (tests/support/server.py: other test apps do not), to a real
webhook receiver (pytest-httpserver).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from werkzeug import Request, Response

from tests.pages.pages_support import make_sharing
from tests.pages.test_browser import DESKTOP, PHONE, Person, chromium, shots  # noqa: F401
from tests.support.server import serve_app, unique, wait_for

POLICY = 'ask view, download on type "photo-album" when client.id == "{client}"\n'


@pytest.fixture(scope="module")
def notifying(database_url: str) -> Iterator[str]:
    """An app on the test database that sends notifications (and lets webhooks be http to loopback)."""
    with serve_app(
        {
            "database_url": database_url,
            "notification_interval": 1,
            "notification_allow_http_loopback": True,
            "lockout_address_attempts": 0,
            "purge_interval": 0,
        }
    ) as url:
        yield url


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_pending_count_delivery_status_and_approving_from_the_link_after_sign_in_G_42(
    viewport,
    chromium,  # noqa: F811
    shots,  # noqa: F811
    notifying,
    httpserver,
    make_user,
    make_client,
    pat_for,
):
    size = "phone" if viewport == PHONE else "desktop"
    calls: list[bytes] = []

    def receive(request: Request) -> Response:
        calls.append(request.get_data())
        return Response("", status=204)

    hook = "/hook-" + unique("b")
    httpserver.expect_request(hook, method="POST").respond_with_handler(receive)
    with httpx.Client(base_url=notifying, timeout=30, follow_redirects=False) as http:
        w = make_sharing(
            http,
            make_user,
            make_client,
            pat_for,
            POLICY,
            owner=make_user(username=unique("alice")),
            client_name="Photo app",
        )
        me = Person(chromium, notifying, shots, viewport)
        try:
            # The owner registers a webhook; its secret is shown once.
            me.open_signed_in("/my/notifications", w.owner)
            me.page.fill("#webhook-url", httpserver.url_for(hook))
            me.page.click("text=Add webhook")
            secret = me.page.locator("#webhook-secret")
            assert re.fullmatch(r"whsec_[\w-]{40,}", secret.inner_text())
            me.page.goto("/my/notifications")
            assert me.page.locator("#webhook-secret").count() == 0

            # The application asks; the owner's rule says ask: the request is pending.
            submitted = w.token(w.ticket("summer-2026", ["view"]))
            assert submitted.status_code == 403 and submitted.json()["error"] == "request_submitted"

            # The pending count is on every owner page.
            for path in (
                "/",
                "/my/resources",
                "/my/policy",
                "/my/requests",
                "/my/history",
                "/my/try",
                "/my/notifications",
                "/shared",
                "/account",
            ):
                me.page.goto(path)
                count = me.page.locator("nav .count")
                assert count.inner_text() == "1", path
                assert count.is_visible(), path

            # The webhook was called; the page shows the delivery's status.
            wait_for(lambda: calls, "the webhook to be called")
            link = json.loads(calls[0])["links"]["review"]

            def delivered() -> bool:
                me.page.goto("/my/notifications")
                return me.page.locator("#deliveries tbody tr", has_text="delivered").count() == 1

            wait_for(delivered, "the page to show the delivery")
            row = me.page.locator("#deliveries tbody tr").first
            assert "HTTP 204" in row.inner_text() and row.is_visible()
            if size == "desktop":  # the two of docs/pages.md
                me.shot("notifications")

            # Signed out, the link leads through the login page back to the request.
            me.page.locator("form.who button").click()
            me.page.wait_for_url(re.compile(r".*/login$"))
            me.page.goto(link)
            me.page.wait_for_url(re.compile(r".*/login\?next=.*"))
            me.sign_in(w.owner)
            me.page.wait_for_url(link)
            card = me.page.locator("article.card")
            assert card.locator("input[name=scopes][value=view]").is_checked()
            assert "Photo app" in card.inner_text()
            if size == "phone":
                me.shot("notification-link-phone")
            card.locator("text=Approve checked").click()
            me.page.wait_for_selector("text=Approved view")
            assert me.page.locator("nav .count").count() == 0  # nothing pending any more
            poll = w.token(submitted.json()["ticket"])
            assert poll.status_code == 200, poll.text
            assert not me.problems, me.problems
            # No sideways scrolling on the notifications page (its table included).
            me.page.goto("/my/notifications")
            assert me.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        finally:
            me.close()
