"""Owners are told when a request waits for them (issue 15 point 4): webhooks and emails.

An owner registers targets on the notifications page (:mod:`app.web.notifications`): a webhook
URL (``https://``; ``http://`` to a loopback address only with the setting
``notification_allow_http_loopback``) with a secret shown once, and/or an email address when the
operator configured an SMTP server (``smtp_*`` settings).

**The outbox.** When a request becomes pending (:func:`request_pending`, called by the UMA grant
and by the requesting party's page), one ``notification_deliveries`` row per target is added in
the same transaction as the request: a notification is never lost when the request is recorded,
and never sent for a request that was not. Nothing is sent while the grant waits: a background
thread of every process (:class:`Notifier`) delivers due rows, at once in the process that
wrote them (woken after the commit) and every ``notification_interval`` seconds anywhere.

**Claiming.** Several threads, processes and machines look for due rows at once. A row is taken
with one conditional ``UPDATE … SET lease_until, lease_id WHERE id = ? AND status = 'pending'
AND (lease_until IS NULL OR lease_until < now)``: the database lets exactly one of them change
it (one writer at a time on SQLite; PostgreSQL re-checks the condition on the row another
transaction just changed). The sending happens outside any transaction; its outcome is written
only while the lease is still the sender's (``WHERE lease_id = ?``). A process that dies while
sending leaves a lease that expires, and the row is tried again.

**Retries.** A failed attempt (no answer within ``notification_timeout``, a status other than
2xx, an SMTP error) is tried again after ``notification_retry_base`` seconds, doubling each
time up to ``notification_retry_max``, until ``notification_max_attempts`` attempts: then the
row is ``failed``. Each row's status, attempts, next attempt, last HTTP status and error are on
the owner's page.

**The webhook's request.** ``POST`` of the JSON body (:func:`event_body`, fixed when the row
is written) with ``Content-Type: application/json``, ``X-UMA-Delivery`` (the row's id: the same
for every attempt), ``X-UMA-Timestamp`` (seconds since the epoch, at this attempt) and
``X-UMA-Signature: sha256=<hex>``, the HMAC-SHA256 under the webhook's secret of
``<timestamp>.<body bytes>`` (:func:`signature`). docs/operations.md says how a receiver checks it.

**The address called is the address checked.** The webhook's host name is resolved once per
attempt (:func:`_resolve_checked`); every address it gives must be one the webhook may be called
at (:func:`address_allowed`), and the connection goes to one of them (:class:`_PinnedAdapter`;
the next one only where the one before could not be reached). The name is not resolved again, so
a name that changes its answer in between (DNS rebinding) cannot point the server at another
address. Redirects are not followed (an attempt answered 3xx failed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import random
import re
import secrets
import smtplib
import socket
import ssl
import threading
from email.message import EmailMessage
from typing import Any
from urllib.parse import SplitResult, urlsplit

import requests
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app, has_app_context
from requests.adapters import HTTPAdapter
from sqlalchemy import Engine, delete, event, or_, select, update
from sqlmodel import Session
from urllib3.exceptions import NewConnectionError

from .config import Settings
from .errors import InvalidRequest, NotFound
from .models import NotificationDelivery, NotificationTarget, OAuthClient, PendingRequest, Resource
from .security import now

log = logging.getLogger(__name__)

#: The one event there is so far.
PENDING = "access_request.pending"
#: Targets one owner may register (each pending request makes one delivery per target).
MAX_TARGETS = 10
#: Due rows one look takes (the next look takes the rest).
BATCH = 20
#: Deliveries the owner's page lists.
SHOWN = 50
_EMAIL_RE = re.compile(r"^[^@\s<>,;\"()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_LOOPBACK_NAMES = ("localhost",)


# -- the webhook's secret -------------------------------------------------------------------


def _fernet(secret_key: str) -> Fernet:
    """The key sealing webhook secrets at rest, derived (HKDF-SHA256) from the server's secret key."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"uma-as webhook secrets").derive(
        secret_key.encode("utf-8", "surrogatepass")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, secret_key: str) -> str:
    """``secret`` encrypted (Fernet: AES-CBC and HMAC) for the database. Hashing, as for every other
    secret, would not do: the server signs each delivery with the secret itself."""
    return _fernet(secret_key).encrypt(secret.encode()).decode("ascii")


def unseal(sealed: str, secret_key: str) -> str | None:
    """The secret, or None when it cannot be read (the server's secret key changed since)."""
    try:
        return _fernet(secret_key).decrypt(sealed.encode("ascii")).decode()
    except (InvalidToken, ValueError):
        return None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 under ``secret`` of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# -- targets ------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    literal = _literal_ip(host)
    return host.lower() in _LOOPBACK_NAMES or (literal is not None and ipaddress.ip_address(literal).is_loopback)


def address_allowed(address: str, settings: Settings) -> bool:
    """Whether a webhook may be called at this IP address: a public one; a loopback one where
    ``notification_allow_http_loopback``; a private or reserved one (this network, the cloud's
    metadata service, …) only where ``notification_allow_private_networks``."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_loopback:
        return settings.notification_allow_http_loopback or settings.notification_allow_private_networks
    if ip.is_global:
        return True
    return settings.notification_allow_private_networks and not (ip.is_unspecified or ip.is_multicast)


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_webhook_url(url: str, settings: Settings) -> str:
    """A webhook URL fit to be called, or :class:`InvalidRequest` saying why (a host name is
    resolved only when called: :func:`_resolve_checked`)."""
    allow_http_loopback = settings.notification_allow_http_loopback
    url = url.strip()
    if not url or len(url) > 2048 or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidRequest("Give the webhook's URL (at most 2048 characters, no spaces).")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError:
        raise InvalidRequest("That is not a URL.") from None
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        raise InvalidRequest("A webhook URL names a host, and no user, password or #fragment.")
    if not (parts.scheme == "https" or (parts.scheme == "http" and allow_http_loopback and _is_loopback(host))):
        raise InvalidRequest("A webhook URL must start with https://.")
    literal = _literal_ip(host)
    if literal is not None and not address_allowed(literal, settings):
        raise InvalidRequest("A webhook cannot be called at a private or reserved address on this server.")
    return url


def check_email(address: str) -> str:
    address = address.strip()
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in address) or not _EMAIL_RE.fullmatch(address):
        raise InvalidRequest("That is not an email address.")
    return address


def targets(db: Session, owner: str) -> list[NotificationTarget]:
    return list(
        db.execute(
            select(NotificationTarget).where(NotificationTarget.owner == owner).order_by(NotificationTarget.id)
        ).scalars()
    )


def _room_for_one(db: Session, owner: str) -> None:
    if len(targets(db, owner)) >= MAX_TARGETS:
        raise InvalidRequest(f"You have {MAX_TARGETS} places to be notified at already; remove one first.")


def add_webhook(
    db: Session, owner: str, url: str, settings: Settings, secret_key: str
) -> tuple[NotificationTarget, str]:
    """Register a webhook; returns it and its signing secret (shown to the owner once)."""
    url = check_webhook_url(url, settings)
    _room_for_one(db, owner)
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = NotificationTarget(owner=owner, kind="webhook", address=url, secret_sealed=seal(secret, secret_key))
    db.add(row)
    db.commit()
    return row, secret


def add_email(db: Session, owner: str, address: str, settings: Settings) -> NotificationTarget:
    """Register an email address (only where the operator configured an SMTP server)."""
    if not settings.smtp_host:
        raise InvalidRequest("This server sends no email (no SMTP server is configured); use a webhook.")
    address = check_email(address)
    _room_for_one(db, owner)
    row = NotificationTarget(owner=owner, kind="email", address=address)
    db.add(row)
    db.commit()
    return row


def remove_target(db: Session, owner: str, target_id: int) -> NotificationTarget:
    """Remove one of the owner's targets and its deliveries (those not sent yet are dropped)."""
    row = db.get(NotificationTarget, target_id) if 0 < target_id <= 2**31 - 1 else None
    if row is None or row.owner != owner:
        raise NotFound("No such notification target.")
    db.execute(delete(NotificationDelivery).where(NotificationDelivery.target_id == row.id))
    db.delete(row)
    db.commit()
    return row


def deliveries(db: Session, owner: str, limit: int = SHOWN) -> list[NotificationDelivery]:
    """The owner's latest deliveries, newest first."""
    return list(
        db.execute(
            select(NotificationDelivery)
            .where(NotificationDelivery.owner == owner)
            .order_by(NotificationDelivery.id.desc())
            .limit(limit)
        ).scalars()
    )


# -- the outbox ---------------------------------------------------------------------------


def event_body(db: Session, row: PendingRequest, issuer: str) -> dict[str, Any]:
    """What a notification of a pending request says (the webhook's JSON; the email's text)."""
    resource = db.get(Resource, row.resource_id)
    client = (
        db.execute(select(OAuthClient).where(OAuthClient.client_id == row.client_id)).scalars().first()
        if row.client_id
        else None
    )
    return {
        "type": PENDING,
        "id": secrets.token_hex(16),
        "owner": row.owner,
        "request": {
            "id": row.id,
            "resource": {"id": row.resource_id, "name": resource.name if resource is not None else None},
            "scopes": list(row.scopes_requested),
            "requesting_party": row.requesting_party,
            "client": {"id": client.client_id, "name": client.client_name or client.client_id} if client else None,
            "created_at": row.created_at,
        },
        "links": {"review": issuer.rstrip("/") + f"/my/requests/{row.id}"},
    }


def request_pending(db: Session, row: PendingRequest, issuer: str) -> int:
    """Add one delivery per target of the request's owner to ``db``'s transaction (the caller
    commits; the process's notifier is woken after the commit). Returns how many."""
    owned = targets(db, row.owner)
    if not owned:
        return 0
    if row.id is None:
        db.flush()
    body = json.dumps(event_body(db, row, issuer), separators=(",", ":"), ensure_ascii=False)
    at = now()
    for target in owned:
        db.add(
            NotificationDelivery(
                target_id=target.id,
                owner=row.owner,
                kind=target.kind,
                event=PENDING,
                request_id=row.id,
                body=body,
                next_attempt_at=at,
                created_at=at,
                updated_at=at,
            )
        )
    notifier = current_app.extensions.get("uma_notifier") if has_app_context() else None
    if notifier is not None:
        event.listen(db, "after_commit", lambda _session: notifier.wake(), once=True)
    return len(owned)


# -- delivering ---------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """One attempt failed: ``status`` (an HTTP status, if any) and the message for the owner."""

    def __init__(self, message: str, status: int | None = None, final: bool = False):
        super().__init__(message)
        self.status = status
        #: No later attempt can succeed (then the row fails now).
        self.final = final


def _send_webhook(target: NotificationTarget, row: NotificationDelivery, settings: Settings, secret_key: str) -> int:
    secret = unseal(target.secret_sealed or "", secret_key)
    if secret is None:
        # Not final: another process may hold the right key (every process must share one).
        raise DeliveryFailed(
            "this process cannot read the webhook's secret: is its secret_key the same as the others'?"
        )
    addresses = _resolve_checked(target.address, settings)
    parts = urlsplit(target.address)
    body = row.body.encode()
    at = now()
    headers = {
        "Host": parts.netloc,  # the name (and port) as registered, not the address connected to
        "Content-Type": "application/json",
        "User-Agent": "uma-as notifications",
        "X-UMA-Event": row.event,
        "X-UMA-Delivery": str(row.id),
        "X-UMA-Timestamp": str(at),
        "X-UMA-Signature": signature(secret, at, body),
    }
    status = 0
    for n, address in enumerate(addresses, 1):
        try:
            status = _post_pinned(parts, address, body, headers, settings.notification_timeout)
            break
        except requests.RequestException as exc:
            if n < len(addresses) and _not_connected(exc):
                continue  # nothing was sent: the next address, as a client connecting by name does
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if 300 <= status < 400:
        raise DeliveryFailed(f"the receiver answered HTTP {status}, a redirect: redirects are not followed", status)
    if not 200 <= status < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {status}", status)
    return status


def _post_pinned(parts: SplitResult, address: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST to the webhook ``parts`` at ``address`` (checked), never at another; the answer's status."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone (link-local) is not kept
    netloc = (f"[{ip}]" if ip.version == 6 else str(ip)) + (f":{parts.port}" if parts.port else "")
    with requests.Session() as session:
        adapter = _PinnedAdapter(parts.hostname or "")
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        with session.post(
            parts._replace(netloc=netloc).geturl(),
            data=body,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,  # a redirect's target would be another host, not checked
            stream=True,  # the answer's body is never read
        ) as answer:
            return answer.status_code


def _not_connected(exc: requests.RequestException) -> bool:
    """Whether the attempt failed before a connection was made (refused, unreachable, timed out)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)


class _PinnedAdapter(HTTPAdapter):
    """requests' transport for a URL whose host is the IP address :func:`_resolve_checked` chose:
    urllib3 connects to that address (it has nothing left to resolve), while TLS sends the webhook's
    host name as SNI and verifies the certificate against that name (urllib3's ``server_hostname``,
    also through a proxy from the environment). The ``Host`` header, set by the caller, is the name."""

    def __init__(self, server_hostname: str) -> None:
        self._server_hostname = server_hostname  # before HTTPAdapter.__init__ makes the pool manager
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, server_hostname=self._server_hostname, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return super().proxy_manager_for(proxy, server_hostname=self._server_hostname, **proxy_kwargs)


def _resolve_checked(url: str, settings: Settings) -> list[str]:
    """The addresses to call the webhook at, in the resolver's order: its host resolved once, and
    refused (a failed attempt) unless every address it resolves to may be called
    (:func:`address_allowed`). The caller connects to these addresses only and does not resolve the
    name again (:class:`_PinnedAdapter`), so a name that answers differently a moment later (DNS
    rebinding) changes nothing."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:
        raise DeliveryFailed(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if not address_allowed(address, settings):
            raise DeliveryFailed(f"{host} resolves to {address}, a private or reserved address: not called")
    if not addresses:
        raise DeliveryFailed(f"cannot resolve {host}: no address")
    return addresses


def email_text(body: dict[str, Any]) -> tuple[str, str]:
    """The subject and text of a notification email."""
    req = body["request"]
    who = req["requesting_party"] or "Someone"
    if who.startswith("client:"):
        who = "Someone"
    what = req["resource"]["name"] or req["resource"]["id"]
    via = f" through {req['client']['name']}" if req.get("client") else ""
    subject = f"{who} asks for {what}"
    text = (
        f"{who} asks for {', '.join(req['scopes'])} of {what}{via}.\n\n"
        f"Approve or refuse it here (you sign in first):\n{body['links']['review']}\n\n"
        "You get this email because this address is registered on your notifications page.\n"
    )
    return subject, text


def _send_email(target: NotificationTarget, row: NotificationDelivery, settings: Settings) -> None:
    subject, text = email_text(json.loads(row.body))
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = target.address
    message["Subject"] = subject
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.notification_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None


def retry_delay(settings: Settings, attempts: int) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones (exponential, capped)."""
    return int(min(settings.notification_retry_base * 2 ** min(attempts - 1, 30), settings.notification_retry_max))


def _claim(engine: Engine, delivery_id: int, lease_seconds: int) -> str | None:
    """Take one due row for this sender (see the module docstring), or None when another did."""
    lease, at = secrets.token_hex(16), now()
    table: Any = NotificationDelivery.__table__
    with engine.begin() as conn:
        taken = conn.execute(
            update(table)
            .where(
                table.c.id == delivery_id,
                table.c.status == "pending",
                table.c.next_attempt_at <= at,
                or_(table.c.lease_until.is_(None), table.c.lease_until < at),
            )
            .values(lease_until=at + lease_seconds, lease_id=lease)
        ).rowcount
    return lease if taken == 1 else None


def _record(engine: Engine, delivery_id: int, lease: str, values: dict[str, Any]) -> None:
    table: Any = NotificationDelivery.__table__
    with engine.begin() as conn:
        conn.execute(
            update(table)
            .where(table.c.id == delivery_id, table.c.lease_id == lease)
            .values(lease_until=None, lease_id=None, updated_at=now(), **values)
        )


def deliver_one(engine: Engine, delivery_id: int, settings: Settings, secret_key: str) -> str | None:
    """Claim and attempt one delivery; its new status, or None when another sender has it."""
    lease = _claim(engine, delivery_id, settings.notification_timeout * 3 + 30)
    if lease is None:
        return None
    with Session(engine) as db:
        row = db.get(NotificationDelivery, delivery_id)
        target = db.get(NotificationTarget, row.target_id) if row is not None else None
        if row is None:
            return None
        db.expunge_all()
    attempts = row.attempts + 1
    try:
        if target is None:
            raise DeliveryFailed("the notification target was removed", final=True)
        status = _send_webhook(target, row, settings, secret_key) if target.kind == "webhook" else None
        if target.kind == "email":
            _send_email(target, row, settings)
    except DeliveryFailed as exc:
        final = exc.final or attempts >= settings.notification_max_attempts
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": exc.status,
            "last_error": str(exc)[:500],
            "status": "failed" if final else "pending",
        }
        if not final:
            values["next_attempt_at"] = now() + retry_delay(settings, attempts)
        _record(engine, delivery_id, lease, values)
        log.info("notification %s: attempt %s failed: %s", delivery_id, attempts, exc)
        return str(values["status"])
    _record(
        engine,
        delivery_id,
        lease,
        {"attempts": attempts, "last_status": status, "last_error": None, "status": "delivered", "delivered_at": now()},
    )
    return "delivered"


def deliver_due(engine: Engine, settings: Settings, secret_key: str, limit: int = BATCH) -> int:
    """Attempt the deliveries due now (those this process can send); returns how many it took."""
    at = now()
    kinds = ["webhook", "email"] if settings.smtp_host else ["webhook"]
    with Session(engine) as db:
        due = list(
            db.execute(
                select(NotificationDelivery.id)
                .where(
                    NotificationDelivery.status == "pending",
                    NotificationDelivery.next_attempt_at <= at,
                    or_(NotificationDelivery.lease_until.is_(None), NotificationDelivery.lease_until < at),
                    NotificationDelivery.kind.in_(kinds),
                )
                .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
                .limit(limit)
            ).scalars()
        )
    return sum(1 for delivery_id in due if deliver_one(engine, delivery_id, settings, secret_key) is not None)


class Notifier:
    """The background sender of one process (a daemon thread started by the first request, like
    the purge; a worker forked from a preloaded app starts its own)."""

    def __init__(self, app: Flask):
        self.app = app
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stopped = threading.Event()
        self._woken = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        settings = self.app.config["UMA_SETTINGS"]
        if settings.notification_interval <= 0 or self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid() or self._stopped.is_set():  # stopped: never again (a closed app)
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, args=(settings,), name="uma-notify", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for due deliveries now (after a commit that added some)."""
        self._woken.set()

    def _run(self, settings: Settings) -> None:
        engine = self.app.extensions["uma_db"]
        secret_key = self.app.config["SECRET_KEY"]
        while not self._stopped.is_set():
            self._woken.clear()  # a wake from now on is seen by the wait below
            try:
                while deliver_due(engine, settings, secret_key) and not self._stopped.is_set():
                    pass
            except Exception:
                log.exception("sending notifications failed; trying again in %s s", settings.notification_interval)
            # Jitter, so the processes of a pool do not all look at the same moment.
            self._woken.wait(settings.notification_interval * random.uniform(0.75, 1.25))

    def stop(self, wait: float = 0.0) -> None:
        """End this process's sender (after the delivery it may be making); ``wait``: seconds to
        wait for it to end."""
        self._stopped.set()
        self._woken.set()
        thread = self._thread
        if wait > 0 and thread is not None and thread is not threading.current_thread():
            thread.join(wait)


def init_app(app: Flask) -> Notifier:
    notifier = Notifier(app)
    app.extensions["uma_notifier"] = notifier
    app.before_request(notifier.start)
    return notifier
