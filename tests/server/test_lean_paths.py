"""The lean grant and introspection paths (issue 11, point 3), counted statement by statement over
real HTTP: an SQLAlchemy listener on the served app's engine records every statement and commit.

Counts, not timings: the common UMA grant is three statements (the ticket spent with
``UPDATE … RETURNING``, which also reads the policy-set version; the RPT; the audit record)
and one commit; introspection of an RPT looks it up once. Client, signing-key and resource
rows come from the per-process row cache (:mod:`app.cache`), emptied by any change made
through a session of this process. The owner's answers are read only when an ``ask`` rule can
apply.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import jwt
import pytest
from sqlalchemy import event, update
from sqlmodel import Session
from werkzeug.serving import make_server

from app import create_app
from app.models import OAuthClient, Resource
from app.oauth.keys import rotate_signing_key
from tests.server.grant_support import *


class Counter:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0
        self.on = False

    def tables(self) -> list[str]:
        """``VERB table`` for each statement, in order."""
        out = []
        for sql in self.statements:
            verb = sql.split(None, 1)[0].upper()
            outer = re.sub(
                r"\(SELECT .*?\) AS anon_\d+", "", sql, flags=re.DOTALL
            )  # a scalar subquery is not what the statement reads
            found = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", outer, re.IGNORECASE)
            out.append(f"{verb} {found.group(1) if found else '?'}")
        return out

    @contextmanager
    def window(self) -> Iterator[Counter]:
        self.statements.clear()
        self.commits = 0
        self.on = True
        try:
            yield self
        finally:
            self.on = False


@pytest.fixture(scope="module")
def counted(engine, database_url, make_user, make_client, make_rs, pat_for, tmp_path_factory) -> Iterator[tuple]:
    """A live server whose engine counts statements; its policy set is re-checked only when the
    stored version moves, and its row cache keeps rows for the whole module."""

    class Dispatch:
        app = None

        def __call__(self, environ, start_response):
            return self.app(environ, start_response)

    dispatch = Dispatch()
    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    dispatch.app = create_app(
        {
            "database_url": database_url,
            "issuer": url,
            "secret_key": secrets.token_hex(32),
            "instance_path": str(tmp_path_factory.mktemp("lean-instance")),
            "policy_dir": str(tmp_path_factory.mktemp("lean-policies")),
            "policy_reload_interval": 3600,
            "row_cache_lifetime": 3600,
            "keycloak_compat": True,  # the realm's token endpoint too (its response_mode decides only)
            "TESTING": True,
        }
    )
    counter = Counter()
    app_engine = dispatch.app.extensions["uma_db"]

    # What a request runs: not the statements of the app's background policy thread, which a
    # policy change made by another test may wake at any moment (app/policies.py).
    def request_thread() -> bool:
        return threading.current_thread().name != "uma-policies"

    @event.listens_for(app_engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, parameters, context, executemany):
        if counter.on and request_thread():
            counter.statements.append(statement)

    @event.listens_for(app_engine, "commit")
    def _commit(conn):
        if counter.on and request_thread():
            counter.commits += 1

    thread = threading.Thread(target=server.serve_forever, name="lean-live-server", daemon=True)
    thread.start()
    helper = Uma(url, dispatch.app, make_user, make_client, make_rs, pat_for)
    try:
        yield helper, counter
    finally:
        helper.http.close()
        server.shutdown()
        thread.join(timeout=10)
        dispatch.app.extensions["uma_policies"].stop()
        app_engine.dispose()  # its pooled connections: PostgreSQL's are shared by every suite running


PERMIT = 'permit view on type "photo-album" when client.id == "{client}"'


def _warm(flow: Flow) -> None:
    """Grants that read what the row cache keeps (and make the first signing key, if none)."""
    _granted(flow)
    _granted(flow)


def _granted(flow: Flow) -> str:
    r = flow.token(flow.ticket(("album", ["view"])))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_common_grant_is_three_statements_and_one_commit(counted):
    uma, counter = counted
    flow = uma.flow(PERMIT)
    _warm(flow)
    ticket = flow.ticket(("album", ["view"]))
    with counter.window():
        r = flow.token(ticket)
    assert r.status_code == 200, r.text
    assert sorted(counter.tables()) == ["INSERT audit_records", "INSERT rpts", "UPDATE permission_tickets"]
    assert counter.commits == 1
    # The version of the policy set is read with the ticket.
    assert "policy_set_version" in counter.statements[0]


@pytest.mark.parametrize("mode", ["decision", "permissions"])
def test_keycloak_response_mode_decides_without_issuing(counted, mode):
    """The realm's ``response_mode=decision|permissions`` (issue 16): the standard grant's
    decision, ticket spent and audit record, in one commit, and no token written at all."""
    uma, counter = counted
    flow = uma.flow(PERMIT)
    _warm(flow)
    ticket = flow.ticket(("album", ["view"]))
    with counter.window():
        r = uma.http.post(
            "/realms/uma/protocol/openid-connect/token",
            data={"grant_type": UMA_GRANT, "ticket": ticket, "response_mode": mode},
            auth=flow.client.basic_auth,
        )
    assert r.status_code == 200, r.text
    expected = (
        {"result": True}
        if mode == "decision"
        else [{"rsid": flow.resources["album"], "rsname": "album", "scopes": ["view"]}]
    )
    assert r.json() == expected
    # Before: also INSERT rpts, SELECT rpts, UPDATE rpts (the revocation) and a second commit.
    assert sorted(counter.tables()) == ["INSERT audit_records", "UPDATE permission_tickets"]
    assert counter.commits == 1
    again = uma.http.post(
        "/realms/uma/protocol/openid-connect/token",
        data={"grant_type": UMA_GRANT, "ticket": ticket, "response_mode": mode},
        auth=flow.client.basic_auth,
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # the ticket was spent


def test_introspection_looks_the_rpt_up_once(counted):
    uma, counter = counted
    flow = uma.flow(PERMIT)
    _warm(flow)
    rpt = _granted(flow)
    flow.introspect(rpt)
    with counter.window():
        info = flow.introspect(rpt)
    assert info["active"] is True and info["permissions"]
    assert sorted(counter.tables()) == ["SELECT rpts", "SELECT tokens"]  # the RPT, and the RS's PAT
    assert counter.commits == 0


def test_owner_answers_are_read_only_when_an_ask_rule_can_apply(counted):
    uma, counter = counted
    asking = uma.flow(PERMIT + '\nask download on type "photo-album"')
    _warm(asking)
    with counter.window():
        _granted(asking)
    assert "SELECT pending_requests" in counter.tables()

    other = uma.flow(PERMIT)  # another owner: the ask rule is not theirs
    _warm(other)
    with counter.window():
        _granted(other)
    assert "SELECT pending_requests" not in counter.tables()


def test_failed_grant_still_spends_the_ticket_with_one_commit_G_60(counted):
    uma, counter = counted
    flow = uma.flow(PERMIT)
    _warm(flow)
    ticket = flow.ticket(("album", ["view"]))
    with counter.window():
        r = flow.token(ticket, scope="no-such-scope")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    assert counter.commits == 1
    again = flow.token(ticket)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_client_changed_in_this_process_counts_at_once(counted, engine):
    uma, counter = counted
    flow = uma.flow(PERMIT)
    _granted(flow)  # the client row is cached now
    with Session(engine) as session:
        session.execute(
            update(OAuthClient)
            .where(OAuthClient.client_id == flow.client.client_id)
            .values(grant_types=["refresh_token"])
        )
        session.commit()
    r = flow.token(flow.ticket(("album", ["view"])))
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client", r.text


def test_a_resource_removed_in_this_process_counts_at_once_F_30(counted, engine):
    uma, counter = counted
    flow = uma.flow(PERMIT)
    rpt = _granted(flow)  # the resource row is cached now
    assert flow.introspect(rpt)["active"] is True
    with Session(engine) as session:
        session.delete(session.get(Resource, flow.resources["album"]))
        session.commit()
    assert flow.introspect(rpt) == {"active": False}


def test_a_key_rotated_in_this_process_signs_at_once(counted, engine):
    uma, counter = counted
    flow = uma.flow(PERMIT)
    before = jwt.get_unverified_header(_granted(flow))["kid"]
    with Session(engine, expire_on_commit=False) as session:
        new = rotate_signing_key(session)
    rpt = _granted(flow)
    assert jwt.get_unverified_header(rpt)["kid"] == new.kid != before
    assert flow.introspect(rpt)["active"] is True
