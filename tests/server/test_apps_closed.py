"""Apps end with what they run on: an app the tests made on a database that ends (a PostgreSQL
schema, dropped; a test's own database) has its background threads stopped before the database
goes, also when the test dropped it without closing it; an app a ``uma`` command made in-process
is closed when the command ends, and starts no background thread afterwards
(:func:`app.factory.close_app`, ``tests/support/server.py``). A thread left running would read a
dropped schema: "relation ... does not exist" logged every 2 s for the rest of the session.

Threads are told apart by enumeration (those named ``uma-…`` that were not there before), not
by waiting."""

from __future__ import annotations

import gc
import threading

import app as app_package
from app.cli import main
from tests.support.server import SHIPPED_POLICIES, close_app, create_app, own_database


def _uma_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("uma-")}


def test_an_app_dropped_without_closing_it_has_its_threads_stopped_before_its_database_goes(tmp_path):
    before = _uma_threads()
    with own_database(tmp_path) as url:
        made = create_app(
            {
                "database_url": url,
                "instance_path": str(tmp_path / "instance"),
                "secret_key": "k",
                "policy_dir": SHIPPED_POLICIES,
                "purge_interval": 0,  # no purge thread, which would hold the app (as in tests/server/test_purge.py once stopped)
            }
        )
        assert made.test_client().get("/.well-known/uma2-configuration").status_code == 200
        started = _uma_threads() - before
        assert {t.name for t in started} == {"uma-policies"}  # the first request started the policy thread
        del made
        gc.collect()  # nothing holds the app any more: it is collected, as a test's app left behind is sooner or later
        assert all(t.is_alive() for t in started)  # its policy thread does not end with it
    assert not [t.name for t in started if t.is_alive()]


def test_a_uma_command_run_in_process_closes_its_app(cli_env, monkeypatch, capsys):
    made = []

    def recording(*args, **kwargs):
        built = create_app(*args, **kwargs)
        made.append(built)
        return built

    monkeypatch.setattr(app_package, "create_app", recording)  # what app.cli calls
    monkeypatch.setenv("UMA_PURGE_INTERVAL", "3600")  # a purge thread would start too
    before = _uma_threads()
    assert main(["user", "list", "--json"]) == 0
    capsys.readouterr()
    [cli_app] = made
    try:
        # A request reaching the command's app after the command ended starts none of its threads.
        assert cli_app.test_client().get("/.well-known/uma2-configuration").status_code == 200
        assert not [t.name for t in _uma_threads() - before]
    finally:
        close_app(cli_app)  # the connections that request opened
