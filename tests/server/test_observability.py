"""What an operator watches (issue 13, points 4 and 8): ``/metrics`` in the Prometheus text
format (who may read it, what it counts, one process or several), and the request id that
every answer and every log line of a request carries. Over real HTTP."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.observability import AUTH_KINDS, TOKEN_KINDS
from tests.server.grant_support import *
from tests.server.test_cli_server import _free_port, _wait_for
from tests.support.server import serve_app

ROOT = Path(__file__).resolve().parents[2]
FAMILIES = (
    "uma_http_request_duration_seconds",
    "uma_decisions",
    "uma_tokens_issued",
    "uma_password_verifications",
    "uma_login_failures",
    "uma_lockouts",
    "uma_locked_attempts",
    "uma_policy_set_version",
    "uma_policy_set_serving_version",
    "uma_policy_set_rules",
    "uma_policy_set_compiled_timestamp_seconds",
    "uma_policy_set_compile_seconds",
    "uma_policy_set_error",
)


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_in_the_prometheus_text_format(http):
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {family.name for family in text_string_to_metric_families(answer.text)}
    assert set(FAMILIES) <= families
    assert "process_cpu_seconds_total" in answer.text  # one process: the library's process metrics too
    samples = scrape(http)
    for kind in TOKEN_KINDS:  # every series exists from the start
        assert ("uma_tokens_issued_total", (("kind", kind),)) in samples
    for kind in AUTH_KINDS:
        assert ("uma_login_failures_total", (("kind", kind),)) in samples
    openmetrics = http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_requests_are_counted_by_endpoint_method_and_status_with_their_latency(http):
    before = scrape(http)
    for _ in range(3):
        assert http.get("/.well-known/uma2-configuration").status_code == 200
    assert http.get("/no/such/page").status_code == 404
    assert http.request("BREW", "/token").status_code == 405
    after = scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    discovery = {"endpoint": "oauth_api.discovery", "method": "GET", "status": "200"}
    assert delta("uma_http_request_duration_seconds_count", **discovery) == 3
    assert delta("uma_http_request_duration_seconds_sum", **discovery) > 0
    buckets = [
        v
        for (name, labels), v in after.items()
        if name == "uma_http_request_duration_seconds_bucket" and {k: v for k, v in labels if k != "le"} == discovery
    ]
    assert len(buckets) > 5 and max(buckets) == value(after, "uma_http_request_duration_seconds_count", **discovery)
    unmatched = {"endpoint": "unmatched", "method": "GET", "status": "404"}
    assert delta("uma_http_request_duration_seconds_count", **unmatched) == 1
    # an invented method is one label value, not one per method a client makes up
    assert not any(dict(labels).get("method") == "BREW" for _, labels in after)


def test_decisions_by_outcome_and_tokens_by_kind_are_counted(uma):
    flow = uma.flow('permit view on type "photo-album" when client.id == "{client}"')
    before = scrape(uma.http)
    ticket = flow.ticket(("album", ["view"]))
    assert flow.token(ticket).status_code == 200
    denied_ticket = flow.ticket(("album", ["print"]))
    assert flow.token(denied_ticket).status_code == 403
    rs = uma._make_rs()
    assert (
        uma.http.post(
            "/token", data={"grant_type": "client_credentials", "scope": "uma_protection"}, auth=rs.basic_auth
        ).status_code
        == 200
    )
    after = scrape(uma.http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("uma_decisions_total", outcome="permit") == 1
    assert delta("uma_decisions_total", outcome="deny") == 1
    assert delta("uma_tokens_issued_total", kind="permission_ticket") == 2
    assert delta("uma_tokens_issued_total", kind="rpt") == 1
    assert (
        delta("uma_tokens_issued_total", kind="refresh_token") == 1
    )  # the RPT's (a PAT by client credentials has none)
    assert delta("uma_tokens_issued_total", kind="pat") == 1


def _steady_scrape(uma) -> tuple[dict, dict, object]:
    """A scrape with the store's status and set in use read just before and after it, unchanged
    in between (other tests' apps on this database may move the version at any moment)."""
    store = uma.app.extensions["uma_policies"]
    for _ in range(50):
        first, in_use = store.status(), store.current()
        scraped = scrape(uma.http)
        if store.status() == first and store.current() is in_use:
            return scraped, first, in_use
    raise AssertionError("the policy set kept changing during every scrape")


def test_the_policy_set_version_and_compile_time(uma):
    owner = uma.user()
    before, before_status, _ = _steady_scrape(uma)
    assert uma.put_policy(owner, 'permit view on type "photo-album"').status_code == 200
    after, status, in_use = _steady_scrape(uma)
    assert value(before, "uma_policy_set_version") == before_status["version"]
    assert value(after, "uma_policy_set_version") == status["version"] > before_status["version"]
    assert value(after, "uma_policy_set_serving_version") == status["serving_version"]
    assert value(after, "uma_policy_set_rules") == status["rules"] > 0
    assert (
        value(after, "uma_policy_set_compiled_timestamp_seconds")
        > value(before, "uma_policy_set_compiled_timestamp_seconds")
        > 0
    )
    assert value(after, "uma_policy_set_compile_seconds") == in_use.compile_seconds > 0
    assert value(after, "uma_policy_set_error") == 0


# -- who may read /metrics ---------------------------------------------------------------------


def test_metrics_answer_only_the_configured_networks(database_url, tmp_path):
    config = {"database_url": database_url, "instance_path": str(tmp_path), "metrics_networks": ["127.0.0.2/32"]}
    with serve_app(config) as url:
        with httpx.Client(base_url=url, timeout=30) as loopback:
            refused = loopback.get("/metrics")
            assert refused.status_code == 403 and "metrics_networks" in refused.json()["error_description"]
        with httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as listed:
            assert listed.get("/metrics").status_code == 200


def test_metrics_are_not_answered_through_a_proxy_that_is_not_trusted(database_url, tmp_path):
    """nginx on the same machine without trusted_proxies: every request comes from loopback, so
    a forwarded one is refused; with the proxy trusted, its client's address decides."""
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    config = {"database_url": database_url, "instance_path": str(tmp_path)}
    with serve_app(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/metrics", headers=forwarded).status_code == 403
        assert http.get("/metrics", headers={"Forwarded": "for=203.0.113.9"}).status_code == 403
        assert http.get("/metrics").status_code == 200
    with serve_app({**config, "trusted_proxies": 1}) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/metrics", headers=forwarded).status_code == 403  # the client is 203.0.113.9
        assert http.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_metrics_need_the_token_when_one_is_set(database_url, tmp_path):
    token = "mt-" + os.urandom(16).hex()
    config = {"database_url": database_url, "instance_path": str(tmp_path), "metrics_token": token}
    with serve_app(config) as url, httpx.Client(base_url=url, timeout=30) as http:
        missing = http.get("/metrics")
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert http.get("/metrics", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        assert http.get("/metrics", headers={"Authorization": f"Basic {token}"}).status_code == 401
        assert http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # a token does not open the other networks: both conditions hold
    with serve_app({**config, "metrics_networks": ["10.0.0.0/8"]}) as url, httpx.Client(base_url=url) as http:
        assert http.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_a_missing_multiprocess_directory_stops_the_start_with_a_clear_message(cli_env, tmp_path):
    missing = tmp_path / "no-such-dir"
    env = {**os.environ, **cli_env, "PROMETHEUS_MULTIPROC_DIR": str(missing)}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(_free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"configuration error: PROMETHEUS_MULTIPROC_DIR = '{missing}' is not a directory" in done.stderr
    assert "Traceback" not in done.stderr


# -- request ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent, kept",
    [
        ("3f2a9c1e-77b0-4c1e-9d3e-1a2b3c4d5e6f", True),
        ("edge-01:req.42_a", True),
        ("has space", False),
        ("x" * 129, False),
        ("<script>", False),
        ("", False),
    ],
)
def test_each_answer_carries_the_request_id_it_came_with_or_a_new_one(http, sent, kept):
    answer = http.get("/.well-known/uma2-configuration", headers={"X-Request-ID": sent} if sent else {})
    if kept:
        assert answer.headers["X-Request-ID"] == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])
    assert http.get("/no/such/page").headers["X-Request-ID"] != http.get("/no/such/page").headers["X-Request-ID"]


def _json_logging_config() -> dict:
    """The gunicorn logging configuration of docs/operations.md (the test keeps the page true)."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- gunicorn JSON logging -->\s*```json\n(.*?)```", text, re.S)
    assert block, "docs/operations.md shows the gunicorn logging configuration"
    return json.loads(block.group(1))


def test_gunicorn_logs_one_json_object_a_line_with_request_ids_and_no_secret(cli_env, make_user, make_rs, tmp_path):
    """gunicorn with two workers, the server's JSON log and gunicorn's own lines in JSON (the
    configuration of docs/operations.md), its access log with the request id: every line of
    stderr is one JSON object; the lockout's line carries the id of the request that locked; the
    access line of a request names its id; no password, secret or token used appears."""
    port = _free_port()
    log_config = tmp_path / "gunicorn-logging.json"
    log_config.write_text(json.dumps(_json_logging_config()))
    metrics_token = "mt-" + os.urandom(16).hex()
    env = {
        **os.environ,
        **cli_env,
        "UMA_ISSUER": f"http://127.0.0.1:{port}",
        "UMA_LOG_FORMAT": "json",
        "UMA_LOG_LEVEL": "DEBUG",
        "UMA_LOCKOUT_ACCOUNT_ATTEMPTS": "2",
        "UMA_METRICS_TOKEN": metrics_token,
    }
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    argv = [
        gunicorn,
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--log-config-json",
        str(log_config),
        "--access-logformat",
        '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms %({x-request-id}o)s',
        "app:create_app()",
    ]
    log_path = tmp_path / "stderr.log"
    owner = make_user()
    rs = make_rs(owner=owner.username)
    secrets_used = [owner.password, rs.client_secret, metrics_token, cli_env["UMA_SECRET_KEY"]]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            assert _wait_for(f"{base}/.well-known/uma2-configuration", proc).status_code == 200
            with httpx.Client(base_url=base, timeout=30) as http:
                for n in (1, 2):
                    wrong = f"wrong-{n}-{owner.password}"
                    secrets_used.append(wrong)
                    basic = base64.b64encode(f"{owner.username}:{wrong}".encode()).decode()
                    answer = http.get(
                        "/owner/requests",
                        headers={"Authorization": f"Basic {basic}", "X-Request-ID": f"fail-{n}"},
                    )
                    assert answer.status_code == 401 and answer.headers["X-Request-ID"] == f"fail-{n}"
                pat = http.post(
                    "/token",
                    data={"grant_type": "client_credentials", "scope": "uma_protection"},
                    auth=rs.basic_auth,
                    headers={"X-Request-ID": "get-pat"},
                )
                assert pat.status_code == 200
                secrets_used += [pat.json()["access_token"]]
                bearer = {"Authorization": f"Bearer {pat.json()['access_token']}"}
                assert http.get("/uma/resources", headers=bearer).status_code == 200
                wrong_secret = "wrong-" + os.urandom(8).hex()
                secrets_used.append(wrong_secret)
                token_form = {"grant_type": "client_credentials"}
                assert http.post("/token", data=token_form, auth=(rs.client_id, wrong_secret)).status_code == 401
                assert http.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"}).status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    text = log_path.read_text(encoding="utf-8")
    entries = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert any(e["logger"] == "gunicorn.error" for e in entries), "gunicorn's own lines are JSON too"
    lockout = [e for e in entries if e["message"].startswith("lockout: ")]
    assert len(lockout) == 1 and lockout[0]["request_id"] == "fail-2" and lockout[0]["level"] == "WARNING"
    access = [e["message"] for e in entries if e["logger"] == "gunicorn.access"]
    assert any(m.endswith(" get-pat") and '"POST /token"' in m for m in access), access
    assert all(re.search(r" [A-Za-z0-9._:-]{1,128}$", m) for m in access)
    for secret in secrets_used:
        assert secret not in text, f"a secret reached the log: {secret[:6]}…"
