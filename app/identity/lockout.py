"""Brute-force protection (issue 13, point 3; O-03): failed authentications are counted, and
too many refuse further attempts with 429 and ``Retry-After``.

Counted, each within the last ``lockout_window`` seconds (900):

* per user name, the failed logins of the login page and of the owner API's Basic
  authentication together (``lockout_account_attempts``, 5);
* per client id, its failed client authentications at every endpoint that authenticates
  clients (token, revocation, introspection) (``lockout_client_attempts``, 20);
* per source address (an IPv6 address by its /64), every failure of either kind
  (``lockout_address_attempts``, 50).

How an attempt goes (:func:`guard`, called by the three places that check credentials)::

    attempt = guard("user", username)      # 429 (Locked) now if the name or address is locked
    user = authenticate(...)               # only then the password hash is computed
    attempt.failed() if user is None else attempt.succeeded()

The check before an attempt reads the counts (one small query per limit on the database
storage); only a failure writes. A success writes only when its account had failures, which
it forgets (the user got in: earlier typos no longer count). Unknown accounts are counted and
locked like known ones, so a lock tells nothing about which names exist.

The counting is the ``limits`` library's (its moving- or fixed-window strategy, setting
``lockout_strategy``) on a storage every process and machine shares: this server's database
(:class:`~app.identity.limits_storage.DatabaseStorage`) unless ``lockout_storage_uri`` names
another ``limits`` storage (e.g. Redis). Attempts racing each other before a lock may each be
checked before any of them is counted: at most as many extra guesses as requests in flight.

Each lock begun is logged (WARNING, logger ``app.identity.lockout``) and counted in
``uma_lockouts_total``; each refused attempt in ``uma_locked_attempts_total``. A storage that
cannot be reached refuses the attempt (503): closed, not open.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass, field

from flask import Flask, current_app, request
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import ConfigurationError, StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import STRATEGIES, RateLimiter
from sqlalchemy import Engine

from ..config import ConfigError, Settings
from ..errors import ApiError
from ..observability import LOCKED_ATTEMPTS, LOCKOUTS, LOGIN_FAILURES
from .limits_storage import DatabaseStorage

log = logging.getLogger(__name__)

NAMESPACE = "uma-lockout"


class Locked(ApiError):
    """429: too many failures for this account or from this address; ``Retry-After`` says when
    to try again."""

    status = 429
    error = "too_many_attempts"

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(
            f"Too many failed attempts; try again in {wait_in_words(retry_after)}.",
            headers={"Retry-After": str(retry_after)},
        )


class LockoutUnavailable(ApiError):
    """503: the failure counts cannot be read, so no credential is checked."""

    status = 503
    error = "temporarily_unavailable"


def wait_in_words(seconds: int) -> str:
    """``14 minutes``, ``1 minute``, ``40 seconds``."""
    if seconds >= 60:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def address_key(address: str | None) -> str:
    """The source address as counted: IPv4 as it is, IPv6 by its /64 (one host's usual share)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(value: str) -> str:
    """Identifiers enter the store hashed: bounded keys, and no typed-in text kept there."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class _Limit:
    item: RateLimitItem
    ids: tuple[str, ...]
    scope: str  # account | address
    what: str  # for the log line


@dataclass
class Attempt:
    """One authentication attempt that was not locked: report how it ended."""

    lockout: Lockout
    kind: str
    limits: list[_Limit]
    account_had_failures: bool = False
    _reported: bool = field(default=False, repr=False)

    def failed(self) -> None:
        if not self._reported:
            self._reported = True
            self.lockout.count_failure(self.kind, self.limits)

    def succeeded(self) -> None:
        if not self._reported:
            self._reported = True
            if self.account_had_failures:
                self.lockout.forget(self.limits[0])


class Lockout:
    """The limits of one app and the limiter that counts them (``app.extensions["uma_lockout"]``)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.storage = _storage(settings, engine)
        try:
            self.limiter: RateLimiter = STRATEGIES[settings.lockout_strategy](self.storage)
        except NotImplementedError:
            raise ConfigError(
                f"lockout_strategy = {settings.lockout_strategy!r}: the storage of lockout_storage_uri does not"
                " support it; use fixed-window"
            ) from None
        window = settings.lockout_window
        self.accounts = {
            "user": self._item(settings.lockout_account_attempts, window),
            "client": self._item(settings.lockout_client_attempts, window),
        }
        self.address = self._item(settings.lockout_address_attempts, window)
        self.trusted_proxies = settings.trusted_proxies
        self.warned_proxy = False
        # Client keys read as not locked (a client id with no failure at all, an address under
        # its limit), and until when (monotonic) that reading is reused: the common case, a client authenticating rightly
        # again and again, then costs no statement (the grant stays at 3 statements and 1 commit, issue 11 point 3). A
        # failure in this process drops its keys at once, and every failure, in any process, is
        # counted and checked in the store; only a right secret may pass in another process for
        # up to row_cache_lifetime after a lock (the delay of every cached row, docs/operations.md).
        self.clean_lifetime = float(settings.row_cache_lifetime)
        self._clean: dict[tuple[str, ...], float] = {}

    @staticmethod
    def _item(attempts: int, window: int) -> RateLimitItem | None:
        return RateLimitItemPerSecond(attempts, window, namespace=NAMESPACE) if attempts > 0 else None

    def limits_for(self, kind: str, account: str | None, address: str | None) -> list[_Limit]:
        """The limits an attempt counts against: its account's (first) and its address's."""
        out = []
        item = self.accounts[kind]
        if item is not None and account:
            out.append(_Limit(item, (kind, _digest(account)), "account", f"{kind} {account!r}"))
        if self.address is not None:
            where = address_key(address)
            out.append(_Limit(self.address, ("address", _digest(where)), "address", f"address {where}"))
        return out

    def attempt(self, kind: str, account: str | None, address: str | None) -> Attempt:
        """Raise :class:`Locked` when a limit of this attempt is used up; else the attempt."""
        limits = self.limits_for(kind, account, address)
        retry_after = 0
        had_failures = False
        now = time.monotonic()
        cacheable = kind == "client"  # a sign-in costs a password hash anyway: always read for people
        try:
            for limit in limits:
                if cacheable and self._clean.get(limit.ids, 0.0) > now:
                    continue
                stats = self.limiter.get_window_stats(limit.item, *limit.ids)
                if stats.remaining <= 0:
                    retry_after = max(retry_after, math.ceil(stats.reset_time - time.time()), 1)
                elif limit.scope == "account" and stats.remaining < limit.item.amount:
                    had_failures = True  # read again next time: a success forgets them
                elif cacheable:  # an account with no failure, or an address that is not locked
                    self._remember_clean(limit.ids, now)
        except StorageError as exc:
            raise self._unavailable(exc) from None
        if retry_after:
            LOCKED_ATTEMPTS.labels(kind=kind).inc()
            raise Locked(retry_after)
        return Attempt(self, kind, limits, account_had_failures=had_failures)

    def _remember_clean(self, ids: tuple[str, ...], now: float) -> None:
        if self.clean_lifetime <= 0:
            return
        if len(self._clean) >= 10_000:  # bounded: start afresh rather than grow
            self._clean.clear()
        self._clean[ids] = now + self.clean_lifetime

    def count_failure(self, kind: str, limits: list[_Limit]) -> None:
        LOGIN_FAILURES.labels(kind=kind).inc()
        for limit in limits:
            self._clean.pop(limit.ids, None)
        try:
            for limit in limits:
                counted = self.limiter.hit(limit.item, *limit.ids)
                stats = self.limiter.get_window_stats(limit.item, *limit.ids)
                if counted and stats.remaining <= 0:  # this failure used the last one up
                    LOCKOUTS.labels(kind=kind, scope=limit.scope).inc()
                    log.warning(
                        "lockout: %s refused for %d s after %d failed authentications in %d s",
                        limit.what,
                        max(1, math.ceil(stats.reset_time - time.time())),
                        limit.item.amount,
                        limit.item.get_expiry(),
                    )
        except StorageError as exc:
            log.error("lockout: a failed authentication could not be counted: %s", exc)

    def forget(self, limit: _Limit) -> None:
        try:
            self.limiter.clear(limit.item, *limit.ids)
        except StorageError as exc:
            log.error("lockout: the failures of a successful login could not be cleared: %s", exc)

    @staticmethod
    def _unavailable(exc: Exception) -> LockoutUnavailable:
        log.error("lockout: the failure counts cannot be read (%s); refusing the attempt", exc)
        return LockoutUnavailable("Authentication is unavailable for a moment; try again shortly.")


def _storage(settings: Settings, engine: Engine) -> Storage:
    uri = settings.lockout_storage_uri
    if not uri:
        return DatabaseStorage(engine)
    try:
        storage = storage_from_string(uri, wrap_exceptions=True)
    except ConfigurationError as exc:  # the message may quote the URI, password and all
        raise ConfigError(f"lockout_storage_uri: {str(exc).replace(uri, '(hidden)')}") from None
    if not isinstance(storage, Storage):
        raise ConfigError("lockout_storage_uri: an asynchronous storage (async+…) cannot be used here")
    if uri.startswith("memory:"):
        log.warning("lockout_storage_uri is memory://: failures are counted per process, not across workers")
    return storage


def init_app(app: Flask, engine: Engine) -> Lockout:
    lockout = Lockout(app.config["UMA_SETTINGS"], engine)
    app.extensions["uma_lockout"] = lockout
    return lockout


def guard(kind: str, account: str | None) -> Attempt:
    """An attempt of this request to authenticate as ``account`` (a user name or a client id),
    from its source address; raises :class:`Locked` (429) when either is locked."""
    lockout: Lockout = current_app.extensions["uma_lockout"]
    if not lockout.warned_proxy and "X-Forwarded-For" in request.headers and not lockout.trusted_proxies:
        lockout.warned_proxy = True
        log.warning(
            "lockout: requests come through a proxy (X-Forwarded-For) but trusted_proxies is 0: every client"
            " counts as the proxy's address %s, so the limit per address is shared by all; set trusted_proxies",
            request.remote_addr,
        )
    return lockout.attempt(kind, account, request.remote_addr)
