"""Brute-force protection (issue 13, points 3 and 8; O-03): failed logins and client
authentications are counted per account and per source address in a store every process
shares; past the limit the attempt is answered 429 with ``Retry-After`` (the login page says
so in words) and no password is checked. Over real HTTP; across two gunicorn workers at the end."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from prometheus_client.parser import text_string_to_metric_families

from app.config import ConfigError
from app.identity.limits_storage import DatabaseStorage
from app.identity.lockout import address_key
from tests.server.test_cli_server import _free_port, _wait_for
from tests.support.server import csrf_from, serve_app, unique

ROOT = Path(__file__).resolve().parents[2]


def _config(database_url, tmp_path, **settings):
    return {
        "database_url": database_url,
        "instance_path": str(tmp_path / unique("instance")),
        "purge_interval": 0,
        "lockout_address_attempts": 0,
        **settings,
    }


def _metric(http: httpx.Client, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    text = http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def _login(http: httpx.Client, username: str, password: str) -> httpx.Response:
    page = http.get("/login")
    return http.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text), "next": "/"},
    )


def _basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


# -- the login page and the owner API ---------------------------------------------------


def test_the_login_page_locks_a_name_after_its_failures_429_retry_after_and_words_O_03(
    database_url, tmp_path, make_user
):
    alice, bob = make_user(), make_user()
    with (
        serve_app(_config(database_url, tmp_path, lockout_account_attempts=3)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        for n in range(3):
            wrong = _login(http, alice.username, f"wrong-{n}")
            assert wrong.status_code == 401 and "Unknown user name or wrong password." in wrong.text
        checks_before = _metric(http, "uma_password_verifications_total")
        locked = _login(http, alice.username, alice.password)  # the right password, too late
        assert locked.status_code == 429
        retry_after = int(locked.headers["Retry-After"])
        assert 0 < retry_after <= 900
        words = re.search(r'role="alert">([^<]*)<', locked.text).group(1)
        assert "Too many failed sign-ins" in words and "try again in 15 minutes" in words
        assert "Location" not in locked.headers  # not signed in
        # no password hash was computed for the locked attempt (the cost a guesser would make us pay)
        assert _metric(http, "uma_password_verifications_total") == checks_before
        # another name from the same address is not locked
        assert _login(http, bob.username, bob.password).status_code == 303
        assert _metric(http, "uma_lockouts_total", kind="user", scope="account") >= 1


def test_the_owner_api_and_the_login_page_count_one_name_together(database_url, tmp_path, make_user):
    owner = make_user()
    with (
        serve_app(_config(database_url, tmp_path, lockout_account_attempts=4)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        assert _login(http, owner.username, "wrong-1").status_code == 401
        assert _login(http, owner.username, "wrong-2").status_code == 401
        for n in (3, 4):
            answer = http.get("/owner/requests", headers=_basic(owner.username, f"wrong-{n}"))
            assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
        locked = http.get("/owner/requests", headers=_basic(owner.username, owner.password))
        assert locked.status_code == 429
        assert locked.json()["error"] == "too_many_attempts" and "try again in" in locked.json()["error_description"]
        assert int(locked.headers["Retry-After"]) > 0 and locked.headers["Cache-Control"] == "no-store"
        assert _login(http, owner.username, owner.password).status_code == 429


def test_unknown_names_are_locked_like_known_ones(database_url, tmp_path):
    """A lock tells nothing about which names exist."""
    with (
        serve_app(_config(database_url, tmp_path, lockout_account_attempts=2)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        ghost = unique("nobody")
        assert [_login(http, ghost, "x").status_code for _ in range(3)] == [401, 401, 429]


def test_a_successful_login_forgets_the_names_earlier_failures(database_url, tmp_path, make_user):
    user = make_user()
    with (
        serve_app(_config(database_url, tmp_path, lockout_account_attempts=3)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        assert [_login(http, user.username, "typo").status_code for _ in range(2)] == [401, 401]
        assert _login(http, user.username, user.password).status_code == 303
        assert [_login(http, user.username, "typo").status_code for _ in range(2)] == [401, 401]
        assert _login(http, user.username, user.password).status_code == 303  # 2 < 3 since the success


def test_the_lock_ends_when_the_window_has_passed(database_url, tmp_path, make_user):
    user = make_user()
    config = _config(database_url, tmp_path, lockout_account_attempts=1, lockout_window=2)
    with serve_app(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert _login(http, user.username, "typo").status_code == 401
        locked = _login(http, user.username, user.password)
        assert locked.status_code == 429
        time.sleep(int(locked.headers["Retry-After"]) + 0.2)
        assert _login(http, user.username, user.password).status_code == 303


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window"])
def test_both_strategies_and_a_limits_storage_uri(database_url, tmp_path, make_user, strategy):
    """The database storage under either strategy, and another ``limits`` storage by URI."""
    for uri in ("", "memory://"):
        user = make_user()
        config = _config(
            database_url, tmp_path, lockout_account_attempts=2, lockout_strategy=strategy, lockout_storage_uri=uri
        )
        with serve_app(config) as url, httpx.Client(base_url=url, timeout=30) as http:
            codes = [_login(http, user.username, "typo").status_code for _ in range(2)]
            assert codes + [_login(http, user.username, user.password).status_code] == [401, 401, 429], uri


# -- client authentication ---------------------------------------------------------------


def test_client_authentication_locks_a_client_id_at_every_endpoint_O_03(database_url, tmp_path, make_rs):
    """Failures at the token, revocation and introspection endpoints (Basic and form) count for
    the client id; then even its right secret gets 429, while other clients go on."""
    rs, other = make_rs(), make_rs()
    with (
        serve_app(_config(database_url, tmp_path, lockout_client_attempts=4)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        token_form = {"grant_type": "client_credentials", "scope": "uma_protection"}
        assert http.post("/token", data=token_form, auth=(rs.client_id, "wrong")).status_code == 401
        assert http.post("/revoke", data={"token": "x"}, auth=(rs.client_id, "wrong")).status_code == 401
        introspect = http.post("/uma/introspect", data={"token": "x"}, auth=(rs.client_id, "wrong"))
        assert introspect.status_code == 401 and introspect.json()["error"] == "invalid_client"
        posted = http.post("/token", data={**token_form, "client_id": rs.client_id, "client_secret": "wrong"})
        assert posted.status_code in (400, 401) and posted.json()["error"] == "invalid_client"
        locked = http.post("/token", data=token_form, auth=rs.basic_auth)
        assert locked.status_code == 429 and locked.json()["error"] == "too_many_attempts"
        assert int(locked.headers["Retry-After"]) > 0
        assert http.post("/uma/introspect", data={"token": "x"}, auth=rs.basic_auth).status_code == 429
        assert http.post("/token", data=token_form, auth=other.basic_auth).status_code == 200
        assert _metric(http, "uma_lockouts_total", kind="client", scope="account") >= 1


def test_client_management_counts_wrong_registration_tokens(database_url, tmp_path):
    """RFC 7592: a wrong registration access token is a failed authentication of that client."""
    with (
        serve_app(_config(database_url, tmp_path, lockout_client_attempts=2)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        registered = http.post("/register", json={"redirect_uris": ["https://app.example.com/cb"]})
        assert registered.status_code == 201, registered.text
        body = registered.json()
        uri = body["registration_client_uri"].replace(url, "")
        for _ in range(2):
            assert http.get(uri, headers={"Authorization": "Bearer wrong"}).status_code == 401
        locked = http.get(uri, headers={"Authorization": f"Bearer {body['registration_access_token']}"})
        assert locked.status_code == 429 and "Retry-After" in locked.headers


# -- per source address ----------------------------------------------------------------------


def test_one_address_is_limited_over_every_name_and_client(database_url, tmp_path, make_user, make_rs):
    """Failures of any kind from 127.0.0.1 add up; 127.0.0.2, another source address, goes on."""
    fresh, rs = make_user(), make_rs()
    config = _config(
        database_url, tmp_path, lockout_account_attempts=0, lockout_client_attempts=0, lockout_address_attempts=4
    )
    with serve_app(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        for n in range(3):
            assert _login(http, unique("spray"), f"guess-{n}").status_code == 401
        token_form = {"grant_type": "client_credentials", "scope": "uma_protection"}
        assert http.post("/token", data=token_form, auth=(rs.client_id, "guess")).status_code == 401
        assert _login(http, fresh.username, fresh.password).status_code == 429
        assert http.post("/token", data=token_form, auth=rs.basic_auth).status_code == 429
        other_address = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=url, timeout=30, transport=other_address) as elsewhere:
            assert _login(elsewhere, fresh.username, fresh.password).status_code == 303
        assert _metric(http, "uma_lockouts_total", kind="client", scope="address") >= 1


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_behind_a_trusted_proxy_the_clients_address_is_counted(database_url, tmp_path, make_user, trusted_proxies):
    """With the proxy trusted, X-Forwarded-For names the address counted; without, a forged
    header changes nothing (the TCP peer is counted)."""
    user = make_user()
    config = _config(
        database_url,
        tmp_path,
        lockout_account_attempts=0,
        lockout_address_attempts=2,
        trusted_proxies=trusted_proxies,
    )
    with serve_app(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        for n in range(2):
            http.headers["X-Forwarded-For"] = "203.0.113.1"
            assert _login(http, unique("spray"), f"guess-{n}").status_code == 401
        http.headers["X-Forwarded-For"] = "203.0.113.2"
        assert _login(http, user.username, user.password).status_code == (303 if trusted_proxies else 429)
        http.headers["X-Forwarded-For"] = "203.0.113.1"
        assert _login(http, user.username, user.password).status_code == 429


def test_addresses_are_counted_by_host_and_ipv6_by_its_64():
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key(None) == "unknown"


def test_a_storage_uri_that_cannot_be_used_stops_the_start_without_showing_it(database_url, tmp_path):
    config = _config(database_url, tmp_path, lockout_storage_uri="nosuch://user:s3cret@host:1/0")
    with pytest.raises(ConfigError) as info, serve_app(config):
        pass
    assert "lockout_storage_uri" in str(info.value) and "s3cret" not in str(info.value)


def test_counts_that_cannot_be_read_refuse_the_attempt_503(tmp_path):
    """Closed, not open: without its failure counts the server checks no credential."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path}/broken.db"
    with serve_app(_config(url, tmp_path)) as base, httpx.Client(base_url=base, timeout=30) as http:
        broken = create_engine(url)
        with broken.begin() as conn:
            conn.execute(text("DROP TABLE rate_limit_entries"))
        broken.dispose()
        checks = _metric(http, "uma_password_verifications_total")
        answer = _login(http, "someone", "a-password")
        assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"
        token = http.post("/token", data={"grant_type": "client_credentials"}, auth=("some-client", "s"))
        assert token.status_code == 503
        assert _metric(http, "uma_password_verifications_total") == checks


# -- the database storage keeps the ``limits`` contract ---------------------------------------


def test_the_database_storage_answers_as_the_librarys_memory_storage(engine):
    """The same sequence of hits under both strategies gives the same answers from the database
    storage as from ``limits``' own memory storage (the reference)."""
    database, memory = DatabaseStorage(engine), MemoryStorage()
    item = RateLimitItemPerSecond(3, 60, namespace=unique("contract"))
    for limiter_class in (MovingWindowRateLimiter, FixedWindowRateLimiter):
        for key in ("a", "b"):
            seen = []
            for storage in (database, memory):
                limiter = limiter_class(storage)
                answers = []
                for _ in range(5):
                    answers.append((limiter.test(item, key), limiter.hit(item, key)))
                    answers.append(limiter.get_window_stats(item, key).remaining)
                limiter.clear(item, key)
                answers.append(limiter.test(item, key))
                seen.append(answers)
            assert seen[0] == seen[1], limiter_class.__name__
    many = RateLimitItemPerSecond(10, 60, namespace=unique("amount"))
    moving = MovingWindowRateLimiter(database)
    assert moving.hit(many, "k", cost=4) and moving.hit(many, "k", cost=6) and not moving.hit(many, "k")
    assert moving.get_window_stats(many, "k").remaining == 0
    assert database.check() is True


def test_racing_failures_never_count_past_the_limit(engine):
    """Moving window, many threads acquiring at once on one key: exactly ``limit`` are counted."""
    database = DatabaseStorage(engine)
    item = RateLimitItemPerSecond(5, 60, namespace=unique("race"))
    limiter = MovingWindowRateLimiter(database)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: limiter.hit(item, "k"), range(16)))
    assert results.count(True) == 5
    assert database.get_moving_window(item.key_for("k"), 5, 60)[1] == 5


# -- across two gunicorn workers -------------------------------------------------------------------


def _per_process_failures(multiproc_dir: Path) -> dict[str, float]:
    """uma_login_failures_total{kind="user"} of each worker, from its own file of the
    multiprocess directory (the file name carries the process id)."""
    from prometheus_client.multiprocess import MultiProcessCollector

    counts = {}
    for path in multiproc_dir.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in metric.samples:
                if sample.name == "uma_login_failures_total" and sample.labels.get("kind") == "user":
                    counts[path.stem.split("_", 1)[1]] = sample.value
    return counts


def test_the_lockout_holds_across_two_gunicorn_workers(cli_env, make_user, tmp_path):
    """Two gunicorn worker processes on the test database, metrics in multiprocess mode: the
    failures of one name, answered by both workers, add up to one lock that both enforce; and
    /metrics, answered by either, adds up the counts of both."""
    port = _free_port()
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        **os.environ,
        **cli_env,
        "UMA_ISSUER": f"http://127.0.0.1:{port}",
        "UMA_LOCKOUT_ACCOUNT_ATTEMPTS": "4",
        "UMA_LOCKOUT_ADDRESS_ATTEMPTS": "0",
        "UMA_PURGE_INTERVAL": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(
        [gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def attempt(user, password: str) -> int:
        with httpx.Client(base_url=base, timeout=30) as one:  # a connection of its own: any worker
            return one.get("/owner/requests", headers=_basic(user.username, password)).status_code

    try:
        assert _wait_for(f"{base}/.well-known/uma2-configuration", proc).status_code == 200
        sent = 0
        with ThreadPoolExecutor(max_workers=3) as pool:
            for _ in range(10):  # a burst of 3 failures at once, until both workers answered some
                user = make_user()
                before = _per_process_failures(multiproc)
                assert list(pool.map(lambda n: attempt(user, f"wrong-{n}"), range(3))) == [401] * 3
                sent += 3
                after = _per_process_failures(multiproc)
                if sum(1 for pid, value in after.items() if value > before.get(pid, 0)) == 2:
                    break
            else:
                pytest.fail("the failures never reached both workers")
            # Each worker counted fewer than 4 of the 3 failures; a 4th, in either, locks the name.
            assert attempt(user, "wrong-4") == 401
            sent += 1
            assert list(pool.map(lambda _: attempt(user, user.password), range(4))) == [429] * 4
        assert len(_per_process_failures(multiproc)) == 2
        with httpx.Client(base_url=base, timeout=30) as http:
            assert _metric(http, "uma_login_failures_total", kind="user") == sent
            assert _metric(http, "uma_lockouts_total", kind="user", scope="account") == 1
            assert _metric(http, "uma_locked_attempts_total", kind="user") == 4
            assert (
                _metric(
                    http, "uma_http_request_duration_seconds_count", endpoint="owner_api.list_requests", status="401"
                )
                == sent
            )
    finally:
        proc.terminate()
        proc.wait(timeout=15)
