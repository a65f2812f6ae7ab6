"""Owners told of pending requests (issue 15 point 4) over real HTTP: webhooks called by a served
app's background sender (a real HTTP receiver, pytest-httpserver), emails through a real SMTP
server (aiosmtpd), the outbox's retries and its status in the pages, the link into the pages;
the webhook called only at the addresses checked (DNS rebinding: a resolver whose answer changes,
real HTTPS receivers with a test CA's certificates, a real CONNECT proxy);
and the owner's revocations in the history (issue 15 point 5).

The apps here send (``notification_interval``); every other test app sends nothing
(tests/support/server.py), so no other app, with another secret key, takes these deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from select import select as readable_of
from typing import Any

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from sqlmodel import Session
from werkzeug import Request, Response
from werkzeug.serving import make_server

from app import create_app
from app.models import NotificationDelivery, NotificationTarget, OwnerAction
from app.notifications import (
    DeliveryFailed,
    _resolve_checked,
    _send_webhook,
    check_webhook_url,
    deliver_due,
    retry_delay,
    seal,
)
from tests.server.grant_support import ID_TOKEN, IDP_AUDIENCE, IDP_ISSUER, Uma, idp  # noqa: F401
from tests.support.server import close_app, csrf_from, unique, wait_for

POLICY = f'''
claims email from "{IDP_ISSUER}" as id_token

ask view, download on type "photo-album" when claims.email ends with "@acme.example"
permit print on type "photo-album" when claims.email ends with "@acme.example"
'''
RETRY_BASE = 1
MAX_ATTEMPTS = 3


class Inbox:
    """aiosmtpd's handler: every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class Served:
    def __init__(self, url: str, app: Any, uma: Uma) -> None:
        self.url, self.app, self.uma = url, app, uma


@pytest.fixture(scope="module")
def notifying(database_url, idp, smtp, make_user, make_client, make_rs, pat_for, tmp_path_factory) -> Iterator[Served]:  # noqa: F811
    """An app that sends notifications (at once after a commit, and every second), retries
    after 1, 2, … seconds, gives up after 3 attempts, emails through the test's SMTP server."""
    _inbox, smtp_port = smtp
    dispatch: dict[str, Any] = {}
    server = make_server("127.0.0.1", 0, lambda environ, start: dispatch["app"](environ, start), threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    dispatch["app"] = create_app(
        {
            "database_url": database_url,
            "issuer": url,
            "secret_key": secrets.token_hex(32),
            "instance_path": str(tmp_path_factory.mktemp("notify-instance")),
            "purge_interval": 0,
            "lockout_address_attempts": 0,
            "notification_interval": 1,
            "notification_timeout": 5,
            "notification_retry_base": RETRY_BASE,
            "notification_retry_max": 4,
            "notification_max_attempts": MAX_ATTEMPTS,
            "notification_allow_http_loopback": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "smtp_starttls": False,
            "smtp_from": "uma@as.test",
            "trusted_issuers": [
                {
                    "issuer": IDP_ISSUER,
                    "jwks_file": str(idp.jwks_file),
                    "audience": IDP_AUDIENCE,
                    "algorithms": ["RS256"],
                }
            ],
            "TESTING": True,
        }
    )
    thread = threading.Thread(target=server.serve_forever, name="notify-server", daemon=True)
    thread.start()
    uma = Uma(url, dispatch["app"], make_user, make_client, make_rs, pat_for)
    try:
        yield Served(url, dispatch["app"], uma)
    finally:
        uma.http.close()
        server.shutdown()
        thread.join(timeout=10)
        close_app(dispatch["app"])


class Receiver:
    """A webhook receiver (pytest-httpserver): answers ``statuses`` in turn (then the last one),
    keeping every request's headers and raw body."""

    def __init__(self, httpserver: Any, statuses: list[int]) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.statuses = statuses
        self.path = "/hook-" + secrets.token_hex(4)
        self.url = httpserver.url_for(self.path)
        httpserver.expect_request(self.path, method="POST").respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        self.calls.append((dict(request.headers), request.get_data()))
        status = self.statuses[min(len(self.calls) - 1, len(self.statuses) - 1)]
        return Response("", status=status)


def _signed_in(base: str, user: Any) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    page = browser.get("/login")
    r = browser.post(
        "/login",
        data={"csrf_token": csrf_from(page.text), "username": user.username, "password": user.password, "next": "/"},
    )
    assert r.status_code == 303, r.text
    return browser, csrf_from(browser.get("/my/notifications").text)


def _add_webhook(browser: httpx.Client, csrf: str, url: str) -> str:
    r = browser.post("/my/notifications/webhook", data={"csrf_token": csrf, "url": url})
    assert r.status_code == 200, r.text
    match = re.search(r'id="webhook-secret">([^<]+)<', r.text)
    assert match, "the secret is shown once"
    return match.group(1)


def _pending(uma: Uma, idp: Any, scopes: tuple[str, ...] = ("view",)) -> tuple[Any, dict[str, Any], str]:  # noqa: F811
    """An owner with an ``ask`` rule, and a client's request that is now pending (G-42)."""
    flow = uma.flow(POLICY)
    token = idp.token(sub=unique("erin"), email="erin@acme.example")
    r = flow.token(flow.ticket(("album", list(scopes))), claim_token=token, claim_token_format=ID_TOKEN)
    assert r.status_code == 403 and r.json()["error"] == "request_submitted", r.text
    return flow, r.json(), token


def _request_id(uma: Uma, owner: Any) -> int:
    r = uma.http.get("/owner/requests", auth=(owner.username, owner.password))
    return int(r.json()["requests"][0]["id"])


def _deliveries(engine: Any, owner: str) -> list[NotificationDelivery]:
    with Session(engine) as db:
        return list(
            db.execute(
                select(NotificationDelivery)
                .where(NotificationDelivery.owner == owner)
                .order_by(NotificationDelivery.id)
            ).scalars()
        )


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (docs/operations.md): HMAC-SHA256 of ``<timestamp>.<body>``, compared
    in constant time, and a timestamp close to now."""
    timestamp = headers["X-Uma-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Uma-Signature"]) and abs(time.time() - int(timestamp)) < 300


def test_a_pending_request_calls_the_owners_webhook_with_a_signed_body_G_42(notifying, idp, httpserver, engine):  # noqa: F811
    uma = notifying.uma
    receiver = Receiver(httpserver, [204])
    flow = uma.flow(POLICY)
    browser, csrf = _signed_in(notifying.url, flow.owner)
    secret = _add_webhook(browser, csrf, receiver.url)
    assert secret not in browser.get("/my/notifications").text  # shown once
    with Session(engine) as db:
        stored = db.execute(
            select(NotificationTarget).where(NotificationTarget.owner == flow.owner.username)
        ).scalar_one()
        assert stored.secret_sealed and secret not in stored.secret_sealed  # sealed, not in clear

    party = unique("erin")
    token = idp.token(sub=party, email="erin@acme.example")
    r = flow.token(flow.ticket(("album", ["view", "download"])), claim_token=token, claim_token_format=ID_TOKEN)
    assert r.status_code == 403 and r.json()["error"] == "request_submitted"
    wait_for(lambda: receiver.calls, "the webhook to be called")
    headers, raw = receiver.calls[0]
    assert headers["Content-Type"] == "application/json"
    assert _verify(secret, headers, raw)
    assert not _verify("whsec_other", headers, raw)
    body = json.loads(raw)
    request_id = _request_id(uma, flow.owner)
    assert body["type"] == "access_request.pending" and headers["X-Uma-Event"] == "access_request.pending"
    assert body["owner"] == flow.owner.username
    assert body["request"]["id"] == request_id
    assert body["request"]["resource"] == {"id": flow.resources["album"], "name": "album"}
    assert body["request"]["scopes"] == ["view", "download"]
    assert body["request"]["requesting_party"] == f"{IDP_ISSUER}#{party}"
    assert body["request"]["client"]["id"] == flow.client.client_id
    assert body["request"]["client"]["name"] == flow.client.row.client_name
    assert isinstance(body["request"]["created_at"], int)
    assert body["links"]["review"] == f"{notifying.url}/my/requests/{request_id}"

    # Polling again changes nothing: one request, one notification.
    again = flow.token(r.json()["ticket"])
    assert again.json()["error"] == "request_submitted"
    delivered = wait_for(
        lambda: [d for d in _deliveries(engine, flow.owner.username) if d.status == "delivered"], "delivered"
    )
    assert len(_deliveries(engine, flow.owner.username)) == 1 and delivered[0].attempts == 1
    page = browser.get("/my/notifications").text
    assert f'id="delivery-{delivered[0].id}"' in page and "delivered" in page and "HTTP 204" in page
    assert len(receiver.calls) == 1


def test_the_link_leads_to_the_request_after_sign_in_and_approving_there_works_G_42(notifying, idp, engine):  # noqa: F811
    uma = notifying.uma
    flow, submitted, _ = _pending(uma, idp)
    request_id = _request_id(uma, flow.owner)
    with httpx.Client(base_url=notifying.url, timeout=30, follow_redirects=False) as browser:
        r = browser.get(f"/my/requests/{request_id}")
        assert r.status_code == 303
        login = r.headers["Location"]
        assert login == f"/login?next=/my/requests/{request_id}"
        page = browser.get(login)
        r = browser.post(
            "/login",
            data={
                "csrf_token": csrf_from(page.text),
                "username": flow.owner.username,
                "password": flow.owner.password,
                "next": f"/my/requests/{request_id}",
            },
        )
        assert r.status_code == 303 and r.headers["Location"] == f"/my/requests/{request_id}"
        page = browser.get(f"/my/requests/{request_id}")
        assert page.status_code == 200 and "Approve checked" in page.text and "album" in page.text
        approved = browser.post(
            f"/my/requests/{request_id}/approve", data={"csrf_token": csrf_from(page.text), "scopes": ["view"]}
        )
        assert approved.status_code == 303
        assert "You already answered" in browser.get(f"/my/requests/{request_id}").text
    poll = flow.token(submitted["ticket"])
    assert poll.status_code == 200, poll.text


def test_after_sign_in_only_paths_of_this_server_are_followed_O_44(notifying, make_user):
    user = make_user()
    for target in ("https://evil.example/my/requests/1", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        with httpx.Client(base_url=notifying.url, timeout=30, follow_redirects=False) as browser:
            page = browser.get("/login")
            r = browser.post(
                "/login",
                data={
                    "csrf_token": csrf_from(page.text),
                    "username": user.username,
                    "password": user.password,
                    "next": target,
                },
            )
            assert r.status_code == 303 and r.headers["Location"] == "/", target


def test_another_owners_request_and_target_are_not_found(notifying, idp, make_user):  # noqa: F811
    uma = notifying.uma
    flow, _, _ = _pending(uma, idp)
    request_id = _request_id(uma, flow.owner)
    browser, csrf = _signed_in(notifying.url, flow.owner)
    _add_webhook(browser, csrf, "https://owner-a.hooks.test/uma")
    with Session(uma.app.extensions["uma_db"]) as db:
        target_id = db.execute(
            select(NotificationTarget.id).where(NotificationTarget.owner == flow.owner.username)
        ).scalar_one()
    other, other_csrf = _signed_in(notifying.url, make_user())
    assert other.get(f"/my/requests/{request_id}").status_code == 404
    assert other.post(f"/my/notifications/{target_id}/remove", data={"csrf_token": other_csrf}).status_code == 404
    assert "owner-a.hooks.test" in browser.get("/my/notifications").text
    assert "owner-a.hooks.test" not in other.get("/my/notifications").text
    removed = browser.post(f"/my/notifications/{target_id}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303
    page = browser.get("/my/notifications").text
    assert "Removed https://owner-a.hooks.test/uma" in page and f'id="target-{target_id}"' not in page


def test_webhook_urls_must_be_https_and_http_only_to_loopback_where_allowed(notifying, live_server, make_user):
    user = make_user()
    browser, csrf = _signed_in(notifying.url, user)
    for bad in ("http://hooks.example.org/x", "ftp://hooks.example.org/x", "https://u:p@hooks.example.org/", "nope"):
        r = browser.post("/my/notifications/webhook", data={"csrf_token": csrf, "url": bad})
        assert r.status_code == 303, bad
        assert 'id="webhook-secret"' not in browser.get("/my/notifications").text
    for private in ("https://10.0.0.1/x", "https://169.254.169.254/latest", "https://[fe80::1]/", "https://0.0.0.0/"):
        r = browser.post("/my/notifications/webhook", data={"csrf_token": csrf, "url": private})
        assert r.status_code == 303, private
        assert "private or reserved address" in browser.get("/my/notifications").text, private
    assert _add_webhook(browser, csrf, "http://127.0.0.1:9/hook").startswith("whsec_")
    # The shared live server keeps the default: no http at all, not even to loopback.
    shared, shared_csrf = _signed_in(live_server.url, user)
    r = shared.post("/my/notifications/webhook", data={"csrf_token": shared_csrf, "url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 303
    assert "must start with https://" in shared.get("/my/notifications").text


def test_a_failing_receiver_is_tried_again_with_backoff_and_the_page_shows_it(notifying, idp, httpserver, engine):  # noqa: F811
    uma = notifying.uma
    receiver = Receiver(httpserver, [500, 200])
    flow = uma.flow(POLICY)
    browser, csrf = _signed_in(notifying.url, flow.owner)
    secret = _add_webhook(browser, csrf, receiver.url)
    token = idp.token(sub=unique("erin"), email="erin@acme.example")
    r = flow.token(flow.ticket(("album", ["view"])), claim_token=token, claim_token_format=ID_TOKEN)
    assert r.json()["error"] == "request_submitted"
    delivered = wait_for(
        lambda: [d for d in _deliveries(engine, flow.owner.username) if d.status == "delivered"], "the retry"
    )[0]
    assert delivered.attempts == 2 and delivered.last_status == 200 and delivered.last_error is None
    assert len(receiver.calls) == 2
    (h1, b1), (h2, b2) = receiver.calls
    assert b1 == b2 and h1["X-Uma-Delivery"] == h2["X-Uma-Delivery"] == str(delivered.id)  # the same notification
    assert _verify(secret, h1, b1) and _verify(secret, h2, b2)
    assert int(h2["X-Uma-Timestamp"]) >= int(h1["X-Uma-Timestamp"]) + RETRY_BASE  # not before the backoff
    page = browser.get("/my/notifications").text
    row = page[page.index(f'id="delivery-{delivered.id}"') :].split("</tr>")[0]
    assert "delivered" in row and ">2<" in row


def test_a_receiver_that_keeps_failing_is_given_up_after_the_last_attempt(notifying, idp, httpserver, engine):  # noqa: F811
    uma = notifying.uma
    receiver = Receiver(httpserver, [503])
    flow = uma.flow(POLICY)
    browser, csrf = _signed_in(notifying.url, flow.owner)
    _add_webhook(browser, csrf, receiver.url)
    token = idp.token(sub=unique("erin"), email="erin@acme.example")
    flow.token(flow.ticket(("album", ["view"])), claim_token=token, claim_token_format=ID_TOKEN)
    retrying = wait_for(
        lambda: [d for d in _deliveries(engine, flow.owner.username) if d.attempts == 1], "the first attempt"
    )[0]
    if retrying.status == "pending":  # the page between two attempts: retrying, the answer, when next
        page = browser.get("/my/notifications").text
        row = page[page.index(f'id="delivery-{retrying.id}"') :].split("</tr>")[0]
        assert ("retrying" in row and "HTTP 503" in row) or "failed" in row
    failed = wait_for(
        lambda: [d for d in _deliveries(engine, flow.owner.username) if d.status == "failed"], "giving up"
    )[0]
    assert failed.attempts == MAX_ATTEMPTS and failed.last_status == 503
    assert failed.last_error == "the receiver answered HTTP 503"
    assert len(receiver.calls) == MAX_ATTEMPTS
    page = browser.get("/my/notifications").text
    row = page[page.index(f'id="delivery-{failed.id}"') :].split("</tr>")[0]
    assert "failed" in row and "HTTP 503" in row and f">{MAX_ATTEMPTS}<" in row


def test_waits_between_attempts_double_up_to_the_longest(settings):
    waits = [retry_delay(settings, n) for n in range(1, 10)]
    base, longest = settings.notification_retry_base, settings.notification_retry_max
    assert waits[:3] == [base, 2 * base, 4 * base]
    assert max(waits) == longest and waits == sorted(waits)


def test_an_email_is_sent_through_the_smtp_server(notifying, idp, smtp, engine):  # noqa: F811
    inbox, _port = smtp
    uma = notifying.uma
    flow = uma.flow(POLICY)
    browser, csrf = _signed_in(notifying.url, flow.owner)
    address = f"{flow.owner.username}@owner.test"
    r = browser.post("/my/notifications/email", data={"csrf_token": csrf, "address": address})
    assert r.status_code == 303
    assert (
        browser.post("/my/notifications/email", data={"csrf_token": csrf, "address": "not an address"}).status_code
        == 303
    )
    assert "That is not an email address" in browser.get("/my/notifications").text
    token = idp.token(sub=unique("erin"), email="erin@acme.example")
    flow.token(flow.ticket(("album", ["download"])), claim_token=token, claim_token_format=ID_TOKEN)
    message = wait_for(lambda: [m for m in inbox.messages if address in m.rcpt_tos], "the email")[0]
    text = message.content.decode()
    request_id = _request_id(uma, flow.owner)
    assert message.mail_from == "uma@as.test"
    assert "Subject:" in text and "asks for album" in text
    assert f"{notifying.url}/my/requests/{request_id}" in text and "download" in text
    wait_for(lambda: [d for d in _deliveries(engine, flow.owner.username) if d.status == "delivered"], "delivered")


def test_several_senders_at_once_deliver_each_notification_once(notifying, httpserver, engine, make_user):
    """Four threads look for the same due rows at once (as processes do), and the app's own
    sender too: each row is claimed by one of them (the conditional UPDATE of
    app/notifications.py) and sent once."""
    receiver = Receiver(httpserver, [200])
    owner = make_user().username
    secret_key = notifying.app.config["SECRET_KEY"]
    settings = notifying.app.config["UMA_SETTINGS"]
    with Session(engine) as db:
        target = NotificationTarget(
            owner=owner, kind="webhook", address=receiver.url, secret_sealed=seal("whsec_x", secret_key)
        )
        db.add(target)
        db.flush()
        for n in range(12):
            db.add(
                NotificationDelivery(
                    target_id=target.id, owner=owner, kind="webhook", event="test", body=json.dumps({"n": n})
                )
            )
        db.commit()
    start = threading.Barrier(4)

    def send() -> None:
        start.wait()
        while deliver_due(engine, settings, secret_key, limit=5):
            pass

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    wait_for(lambda: len(receiver.calls) >= 12, "every notification")  # the app's own sender may take some too
    ids = [h["X-Uma-Delivery"] for h, _ in receiver.calls]
    assert len(ids) == 12 and len(set(ids)) == 12
    rows = _deliveries(engine, owner)
    assert all(d.status == "delivered" and d.attempts == 1 and d.lease_id is None for d in rows)


def test_revocations_are_in_the_owners_history_with_their_time(notifying, idp, engine):  # noqa: F811
    """Issue 15 point 5: revoking a token and withdrawing an approval are the owner's actions."""
    uma = notifying.uma
    flow, submitted, token = _pending(uma, idp)
    request_id = _request_id(uma, flow.owner)
    browser, csrf = _signed_in(notifying.url, flow.owner)
    assert browser.post(f"/my/requests/{request_id}/approve", data={"csrf_token": csrf}).status_code == 303
    rpt = flow.token(submitted["ticket"])
    assert rpt.status_code == 200, rpt.text
    printed = flow.token(flow.ticket(("album", ["print"])), claim_token=token, claim_token_format=ID_TOKEN)
    assert printed.status_code == 200, printed.text
    with Session(engine) as db:
        from app.models import Rpt

        rpt_ids = list(db.execute(select(Rpt.id).where(Rpt.owner == flow.owner.username).order_by(Rpt.id)).scalars())
    assert len(rpt_ids) == 2
    resource = flow.resources["album"]
    assert (
        browser.post(f"/my/grants/{rpt_ids[1]}/revoke", data={"csrf_token": csrf, "resource_id": resource}).status_code
        == 303
    )
    assert flow.introspect(printed.json()["access_token"])["active"] is False
    assert (
        browser.post(
            f"/my/approvals/{request_id}/revoke", data={"csrf_token": csrf, "resource_id": resource}
        ).status_code
        == 303
    )
    with Session(engine) as db:
        actions = list(db.execute(select(OwnerAction).where(OwnerAction.owner == flow.owner.username)).scalars())
    kinds = {a.kind: a for a in actions}
    assert set(kinds) == {"revoke_grant", "withdraw_approval"}
    assert kinds["revoke_grant"].ref_id == rpt_ids[1] and kinds["revoke_grant"].at > 0
    assert kinds["revoke_grant"].permissions == [{"resource_id": resource, "scopes": ["print"]}]
    assert kinds["withdraw_approval"].permissions == [{"resource_id": resource, "scopes": ["view"]}]
    page = browser.get("/my/history", params={"show": "actions"}).text
    assert "Revoked the access token of" in page and "Withdrew your approval for" in page
    assert f"{IDP_ISSUER}#" in page and flow.client.row.client_name in page
    # The withdrawn approval reads as withdrawn, not as a refusal as well.
    assert "Refused" not in page.split('id="my-actions"')[1]
    # One resource's history has them too.
    assert "Revoked the access token of" in browser.get("/my/history", params={"resource_id": resource}).text


def test_a_webhook_name_resolving_to_a_private_address_is_not_called(settings, notifying):
    """Registered by name, checked when called: the shared live server's settings allow neither
    loopback nor private networks, the notifying app's allow loopback."""
    with pytest.raises(DeliveryFailed, match="resolves to .*private or reserved address"):
        _resolve_checked("https://localhost:9/hook", settings)
    assert "127.0.0.1" in _resolve_checked("https://localhost:9/hook", notifying.app.config["UMA_SETTINGS"])
    with pytest.raises(DeliveryFailed, match="cannot resolve"):
        _resolve_checked("https://no-such-host.invalid/hook", settings)


# -- the address called is the address checked (DNS rebinding) -------------------------------

HOOK = "hook.rebind.test"


class Resolver:
    """The system's resolver, ``socket.getaddrinfo`` (the one urllib3 asks when it connects by
    name, too), with the test's names answered by the test: each name gives its answers in turn
    (the last one from then on). Every question about those names is counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> None:
        self.asked: list[str] = []
        system = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in answers:
                return system(host, port, *args, **kwargs)
            turns = answers[host]
            answer = turns[min(self.asked.count(host), len(turns) - 1)]
            self.asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))) for address in answer]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def tls_ca(tmp_path_factory) -> tuple[trustme.CA, str]:
    """A certificate authority of the test's own (trustme), and its certificate in a file."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("webhook-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, str(path)


class TlsReceiver:
    """A webhook receiver over HTTPS (pytest-httpserver) on ``host``:``port`` with a certificate
    for ``names``, keeping the SNI names its clients sent."""

    def __init__(self, ca: trustme.CA, names: list[str], host: str, port: int = 0, status: int = 200) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        self.sni: list[str | None] = []
        context.sni_callback = self._note_sni
        self.server = HTTPServer(host=host, port=port, ssl_context=context)
        headers = {"Location": f"https://{HOOK}/elsewhere"} if 300 <= status < 400 else None
        self.server.expect_request("/hook", method="POST").respond_with_data("", status=status, headers=headers)
        self.server.start()

    def _note_sni(self, _sock: Any, name: str | None, _context: Any) -> None:
        self.sni.append(name)

    def requests(self) -> list[Any]:
        return [request for request, _ in self.server.log]

    def stop(self) -> None:
        self.server.stop()


def _attempt(url: str, settings: Any) -> int:
    """One attempt at a webhook ``url`` (as a sender makes it, under ``settings``)."""
    secret_key = secrets.token_hex(32)
    target = NotificationTarget(owner="o", kind="webhook", address=url, secret_sealed=seal("whsec_t", secret_key))
    row = NotificationDelivery(id=7, target_id=1, owner="o", kind="webhook", event="test", body='{"n":1}')
    return _send_webhook(target, row, settings, secret_key)


@pytest.fixture()
def loopback_settings(settings, tls_ca, monkeypatch):
    """Settings that allow loopback addresses (not private ones), and this test's CA trusted."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_ca[1])
    return settings.model_copy(update={"notification_allow_http_loopback": True, "notification_timeout": 10})


def test_a_webhook_is_called_at_the_address_checked_not_at_a_later_answer_of_its_name_G_42(
    loopback_settings, tls_ca, monkeypatch
):
    """DNS rebinding: the name answers an address the webhook may be called at when it is checked,
    and another one (an internal server's, here another loopback address) when asked again. The
    name is asked once; the request reaches the checked address, over TLS verified for the name
    (the certificate names no address), with the name as SNI and in ``Host``."""
    ca, _ = tls_ca
    checked = TlsReceiver(ca, [HOOK], "127.0.0.1")
    internal = TlsReceiver(ca, [HOOK], "127.0.0.2", port=checked.server.port)
    resolver = Resolver(monkeypatch, {HOOK: [["127.0.0.1"], ["127.0.0.2"]]})
    url = check_webhook_url(f"https://{HOOK}:{checked.server.port}/hook", loopback_settings)
    try:
        assert _attempt(url, loopback_settings) == 200
        assert internal.requests() == [] and len(checked.requests()) == 1
        assert resolver.asked == [HOOK]
        request = checked.requests()[0]
        assert request.headers["Host"] == f"{HOOK}:{checked.server.port}"
        assert request.headers["X-Uma-Delivery"] == "7" and request.get_data() == b'{"n":1}'
        assert checked.sni == [HOOK]
    finally:
        checked.stop()
        internal.stop()


def test_a_name_with_a_private_address_among_its_answers_is_refused_without_connecting(loopback_settings, monkeypatch):
    """The name resolves to a loopback address (allowed here) and a private one (not): nothing is
    called, not even the allowed address (a listening socket there has no connection waiting)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        resolver = Resolver(monkeypatch, {HOOK: [["127.0.0.1", "10.20.30.40"]]})
        with pytest.raises(DeliveryFailed, match="resolves to 10.20.30.40, a private or reserved address"):
            _attempt(f"https://{HOOK}:{port}/hook", loopback_settings)
        assert resolver.asked == [HOOK]
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_the_certificate_is_checked_against_the_webhooks_name_when_connecting_by_address(
    loopback_settings, tls_ca, monkeypatch
):
    """Connecting to the checked address does not weaken TLS: a certificate (from a trusted CA)
    for another name is refused, and the receiver gets no request."""
    ca, _ = tls_ca
    receiver = TlsReceiver(ca, ["other.rebind.test"], "127.0.0.1")
    Resolver(monkeypatch, {HOOK: [["127.0.0.1"]]})
    try:
        with pytest.raises(DeliveryFailed, match="SSLError.*(hostname|match)") as failed:
            _attempt(f"https://{HOOK}:{receiver.server.port}/hook", loopback_settings)
        assert failed.value.status is None and receiver.requests() == []
        assert receiver.sni == [HOOK]
    finally:
        receiver.stop()


def test_the_next_checked_address_is_tried_when_one_cannot_be_reached(loopback_settings, tls_ca, monkeypatch):
    """As a client connecting by name does, the next address is tried when nothing listens at
    one (nothing was sent there); the name is still asked once."""
    ca, _ = tls_ca
    receiver = TlsReceiver(ca, [HOOK], "127.0.0.1")
    resolver = Resolver(monkeypatch, {HOOK: [["127.0.0.2", "127.0.0.1"]]})
    try:
        assert _attempt(f"https://{HOOK}:{receiver.server.port}/hook", loopback_settings) == 200
        assert resolver.asked == [HOOK] and len(receiver.requests()) == 1
    finally:
        receiver.stop()


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy that tunnels ``CONNECT host:port`` (all an HTTPS client asks of one), keeping
    the targets it was asked for."""

    daemon_threads = True

    def __init__(self) -> None:
        self.asked: list[str] = []
        super().__init__(("127.0.0.1", 0), self._Tunnel)
        threading.Thread(target=self.serve_forever, name="connect-proxy", daemon=True).start()

    class _Tunnel(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            target = self.rfile.readline().decode().split()[1]
            for line in iter(self.rfile.readline, b""):  # the request's headers, up to the blank line
                if line == b"\r\n":
                    break
            self.server.asked.append(target)  # type: ignore[attr-defined]
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host.strip("[]"), int(port))) as upstream:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                ends = [self.connection, upstream]
                while True:
                    readable, _, _ = readable_of(ends, [], [], 10)
                    try:
                        data = readable[0].recv(65536) if readable else b""
                        if not data:
                            return
                        (upstream if readable[0] is self.connection else self.connection).sendall(data)
                    except OSError:  # the client gave up (a certificate it refused)
                        return


def test_through_a_proxy_from_the_environment_the_checked_address_is_asked_for(loopback_settings, tls_ca, monkeypatch):
    """``HTTPS_PROXY`` (read by requests) is asked to connect to the checked address, not to the
    name (which it would resolve itself); TLS inside the tunnel is still verified for the name."""
    ca, _ = tls_ca
    good = TlsReceiver(ca, [HOOK], "127.0.0.1")
    wrong = TlsReceiver(ca, ["other.rebind.test"], "127.0.0.1")
    proxy = ConnectProxy()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    for name in ("NO_PROXY", "no_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    resolver = Resolver(monkeypatch, {HOOK: [["127.0.0.1"]]})
    try:
        assert _attempt(f"https://{HOOK}:{good.server.port}/hook", loopback_settings) == 200
        assert proxy.asked == [f"127.0.0.1:{good.server.port}"] and len(good.requests()) == 1
        assert good.requests()[0].headers["Host"] == f"{HOOK}:{good.server.port}"
        with pytest.raises(DeliveryFailed, match="SSLError"):
            _attempt(f"https://{HOOK}:{wrong.server.port}/hook", loopback_settings)
        assert proxy.asked[-1] == f"127.0.0.1:{wrong.server.port}" and wrong.requests() == []
        assert resolver.asked == [HOOK, HOOK]  # once per attempt
    finally:
        proxy.shutdown()
        proxy.server_close()
        good.stop()
        wrong.stop()


def test_a_redirect_is_not_followed_and_the_attempt_fails_saying_so(loopback_settings, tls_ca, monkeypatch):
    """A redirect would lead to a host not checked: a 3xx answer is a failed attempt."""
    ca, _ = tls_ca
    receiver = TlsReceiver(ca, [HOOK], "127.0.0.1", status=302)
    resolver = Resolver(monkeypatch, {HOOK: [["127.0.0.1"]]})
    try:
        with pytest.raises(DeliveryFailed, match="HTTP 302, a redirect: redirects are not followed") as failed:
            _attempt(f"https://{HOOK}:{receiver.server.port}/hook", loopback_settings)
        assert failed.value.status == 302
        assert resolver.asked == [HOOK] and len(receiver.requests()) == 1
    finally:
        receiver.stop()


def test_the_owner_api_registers_lists_and_removes_targets(notifying, make_user):
    owner, other = make_user(), make_user()
    with httpx.Client(base_url=notifying.url, timeout=30) as api:
        auth = (owner.username, owner.password)
        r = api.post("/owner/notifications/webhooks", json={"url": "https://api-hook.hooks.test/x"}, auth=auth)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["kind"] == "webhook" and created["secret"].startswith("whsec_")
        assert api.post("/owner/notifications/emails", json={"address": "me@owner.test"}, auth=auth).status_code == 201
        listed = api.get("/owner/notifications", auth=auth).json()
        assert [t["address"] for t in listed["targets"]] == ["https://api-hook.hooks.test/x", "me@owner.test"]
        assert "secret" not in json.dumps(listed) and created["secret"] not in json.dumps(listed)
        for bad in ({"url": "http://api-hook.hooks.test/x"}, {"url": 3}, {}):
            r = api.post("/owner/notifications/webhooks", json=bad, auth=auth)
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", bad
        other_auth = (other.username, other.password)
        assert api.delete(f"/owner/notifications/{created['id']}", auth=other_auth).status_code == 404
        assert api.get("/owner/notifications", auth=other_auth).json() == {"targets": [], "deliveries": []}
        assert api.delete(f"/owner/notifications/{created['id']}", auth=auth).status_code == 200
        assert [t["kind"] for t in api.get("/owner/notifications", auth=auth).json()["targets"]] == ["email"]


def test_a_lease_left_by_a_sender_that_stopped_runs_out_and_the_notification_is_sent(
    notifying, httpserver, engine, make_user
):
    """A process that died mid-way leaves its lease: the row waits while the lease lives (another
    sender has it), then any sender takes it; an outcome is written only under the sender's lease."""
    receiver = Receiver(httpserver, [200])
    owner = make_user().username
    secret_key = notifying.app.config["SECRET_KEY"]
    settings = notifying.app.config["UMA_SETTINGS"]
    at = int(time.time())
    with Session(engine) as db:
        target = NotificationTarget(
            owner=owner, kind="webhook", address=receiver.url, secret_sealed=seal("whsec_y", secret_key)
        )
        db.add(target)
        db.flush()
        held = NotificationDelivery(
            target_id=target.id,
            owner=owner,
            kind="webhook",
            event="test",
            body="{}",
            lease_until=at + 3600,
            lease_id="alive",
        )
        left = NotificationDelivery(
            target_id=target.id,
            owner=owner,
            kind="webhook",
            event="test",
            body="{}",
            lease_until=at - 1,
            lease_id="dead",
        )
        db.add_all([held, left])
        db.commit()
        held_id, left_id = held.id, left.id
    deliver_due(engine, settings, secret_key)
    rows = {
        d.id: d
        for d in wait_for(
            lambda: [d for d in _deliveries(engine, owner) if d.status == "delivered"] and _deliveries(engine, owner),
            "the left row",
        )
    }
    assert rows[left_id].status == "delivered" and rows[left_id].lease_id is None
    assert rows[held_id].status == "pending" and rows[held_id].attempts == 0 and rows[held_id].lease_id == "alive"
    assert [h["X-Uma-Delivery"] for h, _ in receiver.calls] == [str(left_id)]
    # The sender whose lease ran out comes back: what it writes is not recorded.
    from app.notifications import _record

    _record(engine, held_id, "someone-else", {"status": "failed", "attempts": 1})
    assert {d.id: d for d in _deliveries(engine, owner)}[held_id].status == "pending"
