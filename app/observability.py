"""What an operator watches (issue 13, point 4): ``/metrics`` and the id of each request.

**Metrics** (``prometheus_client``), the one list of them:

================================================  ===========================================
``uma_http_request_duration_seconds``             histogram by ``endpoint`` (Flask's endpoint
                                                  name, ``unmatched`` for 404s), ``method``,
                                                  ``status``; its ``_count`` counts requests
``uma_decisions_total``                           grant decisions by ``outcome``
``uma_tokens_issued_total``                       tokens by ``kind`` (:data:`TOKEN_KINDS`)
``uma_password_verifications_total``              password hashes checked (Argon2id: the cost
                                                  a lockout saves)
``uma_login_failures_total``                      failed authentications by ``kind`` (``user``:
                                                  login page, owner API; ``client``)
``uma_lockouts_total``                            locks begun, by ``kind`` and ``scope``
                                                  (``account`` or ``address``)
``uma_locked_attempts_total``                     attempts refused with 429, by ``kind``
``uma_policy_set_version``                        the policy-set version in the database
``uma_policy_set_serving_version``                the version the answering process decides with
``uma_policy_set_rules``                          rules in that set
``uma_policy_set_compiled_timestamp_seconds``     when that process compiled it
``uma_policy_set_compile_seconds``                 how long that compile took
``uma_policy_set_error``                          1 while the latest version does not check
================================================  ===========================================

The policy gauges are read at each scrape (:meth:`app.policies.PolicyStore.status`), from the
process that answers it. Everything else is counted where it happens.

**Several processes** (gunicorn): with ``PROMETHEUS_MULTIPROC_DIR`` naming an empty, writable
directory in the environment of the server, each process writes its counts to files there and
``/metrics``, answered by any worker, adds up all of them (``prometheus_client``'s multiprocess
mode; the directory is emptied before each start). Without it, one process (``uma serve``)
answers with its own counts and the library's process metrics.

**Who may read it**: addresses in ``metrics_networks`` (loopback by default), and, when
``metrics_token`` is set, only with ``Authorization: Bearer <token>`` (compared in constant time).
Others get 403 (address) or 401 (token). A request that a proxy forwarded (``X-Forwarded-For``
or ``Forwarded``) while ``trusted_proxies`` is 0 is refused too: its address is the proxy's
(loopback when the proxy runs on the same machine), not the client's.

**Request ids**: each request gets one (:func:`app.logs.request_id_for`), held in
:data:`app.logs.REQUEST_ID` while it is served (so every log line of it carries it) and sent
back in ``X-Request-ID``. The cost per request is a header check, a histogram sample and a
contextvar: 10 to 40 µs of CPU (``bench/request_overhead.py``, docs/benchmarks.md).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wsgi import ClosingIterator

from .config import ConfigError
from .errors import ApiError
from .http_auth import bearer_token
from .logs import REQUEST_ID, request_id_for
from .security import hash_token, tokens_equal

log = logging.getLogger(__name__)

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MULTIPROC_DIR and not os.path.isdir(_MULTIPROC_DIR):  # the metrics below open their files there now
    raise ConfigError(
        f"PROMETHEUS_MULTIPROC_DIR = {_MULTIPROC_DIR!r} is not a directory: create it, empty, before the server starts"
    )

#: Values of the ``kind`` label of ``uma_tokens_issued_total``.
TOKEN_KINDS = ("access_token", "pat", "refresh_token", "rpt", "pct", "permission_ticket")
#: Values of the ``kind`` label of the authentication counters.
AUTH_KINDS = ("user", "client")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_DURATION = Histogram(
    "uma_http_request_duration_seconds",
    "Time to answer a request, by Flask endpoint, method and status (the _count counts requests)",
    ["endpoint", "method", "status"],
)
DECISIONS = Counter("uma_decisions", "Grant decisions by outcome", ["outcome"])
TOKENS_ISSUED = Counter("uma_tokens_issued", "Tokens issued, by kind", ["kind"])
PASSWORD_VERIFICATIONS = Counter("uma_password_verifications", "Password hashes checked (Argon2id)")
LOGIN_FAILURES = Counter("uma_login_failures", "Failed authentications, by kind (user or client)", ["kind"])
LOCKOUTS = Counter("uma_lockouts", "Lockouts begun, by kind and scope (account or address)", ["kind", "scope"])
LOCKED_ATTEMPTS = Counter("uma_locked_attempts", "Authentications refused with 429 while locked, by kind", ["kind"])

for _kind in TOKEN_KINDS:  # every series exists from the start (at 0), so rates and alerts see it
    TOKENS_ISSUED.labels(kind=_kind)
for _kind in AUTH_KINDS:
    LOGIN_FAILURES.labels(kind=_kind)
    LOCKED_ATTEMPTS.labels(kind=_kind)
    for _scope in ("account", "address"):
        LOCKOUTS.labels(kind=_kind, scope=_scope)


def count_decision(outcome: str) -> None:
    DECISIONS.labels(outcome=outcome).inc()


def count_token(kind: str, amount: int = 1) -> None:
    TOKENS_ISSUED.labels(kind=kind).inc(amount)


# -- each request: its id and its duration -----------------------------------------


class _Observed:
    """WSGI wrapper of the app: gives the request its id (log lines, ``X-Request-ID``) and
    measures it into ``uma_http_request_duration_seconds``."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        token = REQUEST_ID.set(request_id)
        status = "500"

        def start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal status
            status = status_line[:3]
            headers.append(("X-Request-ID", request_id))
            return start_response(status_line, headers, exc_info)

        try:
            body = self.wsgi_app(environ, start)
        except BaseException:
            REQUEST_ID.reset(token)
            raise
        method = environ.get("REQUEST_METHOD", "")
        REQUEST_DURATION.labels(
            endpoint=environ.get("uma.endpoint") or "unmatched",
            method=method if method in _METHODS else "other",
            status=status,
        ).observe(time.perf_counter() - started)
        # The id stays until the server closed the answer: werkzeug logs its request line then.
        return ClosingIterator(body, lambda: _reset(token))


def _reset(token: Any) -> None:
    try:
        REQUEST_ID.reset(token)
    except ValueError:  # closed in another context than the one that served it: nothing to undo
        pass


def _note_endpoint() -> None:
    """The Flask endpoint of the request, for its metric label (bounded: the app's names)."""
    request.environ["uma.endpoint"] = request.endpoint


# -- /metrics ---------------------------------------------------------------------

bp = Blueprint("metrics", __name__)


class MetricsForbidden(ApiError):
    status = 403
    error = "access_denied"


class MetricsUnauthorized(ApiError):
    status = 401
    error = "invalid_token"


class _Access:
    """Who may read ``/metrics``: the settings ``metrics_networks`` and ``metrics_token``."""

    def __init__(self, networks: list[str], token: str, trusted_proxies: int) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self.token_hash = hash_token(token) if token else None
        self.trusted_proxies = trusted_proxies

    def check(self, address: str | None, authorization: str, forwarded: bool) -> None:
        if forwarded and not self.trusted_proxies:
            # A proxy passed this on, and none is trusted: the address is the proxy's (on this
            # machine, loopback), not the client's. Closed rather than open to the proxy's world.
            raise MetricsForbidden("/metrics is not answered through a proxy that is not trusted (trusted_proxies).")
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            raise MetricsForbidden("/metrics is not open to this address.") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not any(ip in network for network in self.networks):
            raise MetricsForbidden("/metrics is not open to this address (setting metrics_networks).")
        if self.token_hash is None:
            return
        presented = bearer_token(authorization)
        if presented is None or not tokens_equal(hash_token(presented), self.token_hash):
            raise MetricsUnauthorized(
                "Send the metrics token: Authorization: Bearer <token>.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )


class _PolicyCollector:
    """The policy gauges, read from the app's policy store when scraped."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        store = self.app.extensions.get("uma_policies")
        if store is None:
            return
        try:
            status = store.status()
            in_use = store.current()
        except SQLAlchemyError:
            log.warning("policy metrics left out of this scrape: the database did not answer", exc_info=True)
            return
        gauges = (
            ("uma_policy_set_version", "The policy-set version in the database", status["version"]),
            (
                "uma_policy_set_serving_version",
                "The policy-set version this process decides with",
                status["serving_version"],
            ),
            ("uma_policy_set_rules", "Rules in the set this process decides with", status["rules"]),
            (
                "uma_policy_set_compiled_timestamp_seconds",
                "When this process compiled the set it decides with (seconds since the epoch)",
                in_use.compiled_at,
            ),
            (
                "uma_policy_set_compile_seconds",
                "How long this process took to build the set it decides with, seconds",
                in_use.compile_seconds,
            ),
            (
                "uma_policy_set_error",
                "1 while the latest policy-set version does not check",
                int(bool(status["error"])),
            ),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=float(value))


class _Scrape:
    """What one scrape exposes: the counts (this process's, or every process's in multiprocess
    mode) and the policy gauges."""

    def __init__(self, app: Flask) -> None:
        self.sources: list[Any] = [_counts(), _PolicyCollector(app)]

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def _counts() -> Any:
    if _MULTIPROC_DIR:
        from prometheus_client.multiprocess import MultiProcessCollector

        return MultiProcessCollector(None)
    return REGISTRY


@bp.get("/metrics")
def metrics() -> Response:
    """The metrics in the Prometheus text format (OpenMetrics when the scraper asks for it)."""
    forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    current_app.extensions["uma_metrics_access"].check(
        request.remote_addr, request.headers.get("Authorization", ""), forwarded
    )
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return Response(encoder(_Scrape(app)), content_type=content_type, headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Request ids and durations for every request, and who may read ``/metrics``."""
    settings = app.config["UMA_SETTINGS"]
    disable_created_metrics()  # no `*_created` twin of every counter: half the lines, nothing lost
    app.extensions["uma_metrics_access"] = _Access(
        settings.metrics_networks, settings.metrics_token, settings.trusted_proxies
    )
    app.before_request(_note_endpoint)
    app.wsgi_app = _Observed(app.wsgi_app)  # type: ignore[method-assign]
