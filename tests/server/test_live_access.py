"""Access that follows the policy, live, over real HTTP (issue 10): introspection and refresh
decide an RPT again with the claims recorded at issue and the current policy, approvals and
resources (G-61, G-76, F-30); refresh families and reuse (O-47); time-bounded grants bound
the token; refresh tokens only for clients registered for them.

The same tests run on SQLite and PostgreSQL (``UMA_TEST_DATABASE_URL``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import jwt
import pytest
from sqlmodel import Session
from werkzeug.serving import make_server

from app import create_app
from app.models import Rpt
from app.protection.rpt import find_rpt
from tests.server.grant_support import *
from tests.support.server import close_app

BOB = "bob@example.com"
POLICY = f'''
claims email from "{IDP_ISSUER}" as id_token
permit view, download on type "photo-album" when claims.email == "{BOB}"
'''
VIEW_ONLY = f'''
claims email from "{IDP_ISSUER}" as id_token
permit view on type "photo-album" when claims.email == "{BOB}"
'''


def _rpt(flow, idp, scopes=("view", "download"), **params) -> dict:
    """An RPT for bob (claims pushed in an ID token) on the flow's album."""
    token = idp.token(sub="bob-1", email=BOB)
    r = flow.token(flow.ticket(("album", list(scopes))), claim_token=token, claim_token_format=ID_TOKEN, **params)
    assert r.status_code == 200, r.text
    return r.json()


def _scopes(info: dict) -> list[str]:
    assert info["active"] is True, info
    [permission] = info["permissions"]
    return permission["resource_scopes"]


def _refresh(uma, client, refresh_token: str, **data) -> httpx.Response:
    return uma.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **data},
        auth=client.basic_auth,
    )


def _put(uma, owner, text: str) -> None:
    r = uma.put_policy(owner, text)
    assert r.status_code == 200, r.text


# -- 1. introspection reflects the current policy ------------------------------------------------


def test_removed_grant_takes_effect_at_next_introspection_with_recorded_claims_G_61_F_30(uma, idp):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp)
    assert _scopes(flow.introspect(body["access_token"])) == ["view", "download"]
    _put(uma, flow.owner, VIEW_ONLY)
    # Decided again from bob's claims recorded at issue: view is still granted, download no longer.
    assert _scopes(flow.introspect(body["access_token"])) == ["view"]
    assert uma.http.delete("/owner/policy", auth=(flow.owner.username, flow.owner.password)).status_code == 200
    assert flow.introspect(body["access_token"]) == {"active": False}


def test_a_grant_given_back_does_not_widen_an_rpt(uma, idp):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp, scopes=("view",))
    _put(uma, flow.owner, POLICY.replace("view, download", "view, download, print"))
    assert _scopes(flow.introspect(body["access_token"])) == ["view"]


def test_withdrawn_approval_takes_effect_at_next_introspection_G_76(uma, idp):
    flow = uma.flow(VIEW_ONLY + 'ask download on type "photo-album"\n')
    token = idp.token(sub="bob-1", email=BOB)
    asked = flow.token(flow.ticket(("album", ["view", "download"])), claim_token=token, claim_token_format=ID_TOKEN)
    assert asked.status_code == 403 and asked.json()["error"] == "request_submitted"
    auth = (flow.owner.username, flow.owner.password)
    [pending] = uma.http.get("/owner/requests", auth=auth).json()["requests"]
    assert uma.http.post(f"/owner/requests/{pending['id']}/approve", auth=auth).status_code == 200
    granted = flow.token(asked.json()["ticket"])
    assert granted.status_code == 200, granted.text
    rpt = granted.json()["access_token"]
    assert _scopes(flow.introspect(rpt)) == ["view", "download"]
    assert uma.http.post(f"/owner/requests/{pending['id']}/deny", auth=auth).status_code == 200
    # Only what the approval gave goes: the permit rule's view stays.
    assert _scopes(flow.introspect(rpt)) == ["view"]


def test_removed_scope_and_deleted_resource_take_effect_at_next_introspection_F_30(uma, idp):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp)
    album = flow.resources["album"]
    changed = uma.http.put(
        f"/uma/resources/{album}",
        json={"name": "album", "type": "photo-album", "resource_scopes": ["view"]},
        headers=flow.pat.headers,
    )
    assert changed.status_code == 200, changed.text
    assert _scopes(flow.introspect(body["access_token"])) == ["view"]
    assert uma.http.delete(f"/uma/resources/{album}", headers=flow.pat.headers).status_code == 204
    assert flow.introspect(body["access_token"]) == {"active": False}


class _Dispatch:
    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture()
def other_process(uma, database_url, tmp_path) -> Iterator[str]:
    """A second server on the same database that would reload its policies only hourly."""
    dispatch = _Dispatch()
    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    dispatch.app = create_app(
        {
            "database_url": database_url,
            "issuer": uma.url,
            "secret_key": secrets.token_hex(16),
            "instance_path": str(tmp_path),
            "policy_dir": uma.settings.policy_dir,
            "policy_reload_interval": 3600,
            "TESTING": True,
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        close_app(dispatch.app)


def test_a_change_made_in_one_process_counts_at_once_in_another_G_61(uma, idp, other_process):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp)

    def introspect_there() -> dict:
        r = httpx.post(
            f"{other_process}/uma/introspect", data={"token": body["access_token"]}, headers=flow.pat.headers
        )
        assert r.status_code == 200, r.text
        return r.json()

    assert _scopes(introspect_there()) == ["view", "download"]  # the other process has its set in use now
    _put(uma, flow.owner, VIEW_ONLY)
    assert _scopes(introspect_there()) == ["view"]


def test_jwt_rpts_are_short_lived_by_default_and_introspection_stays_live(uma, idp):
    from app.config import Settings

    assert Settings().rpt_lifetime <= 300
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == uma.settings.rpt_lifetime == body["expires_in"] <= 300


# -- 2. refresh re-decides -----------------------------------------------------------------------


def test_refresh_carries_over_only_what_the_policy_still_grants_G_53_G_76(uma, idp):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp)
    _put(uma, flow.owner, VIEW_ONLY)
    r = _refresh(uma, flow.client, body["refresh_token"])
    assert r.status_code == 200, r.text
    assert _scopes(flow.introspect(r.json()["access_token"])) == ["view"]
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert [p["resource_scopes"] for p in claims["permissions"]] == [["view"]]
    assert flow.introspect(body["access_token"]) == {"active": False}  # the old RPT is retired
    assert uma.http.delete("/owner/policy", auth=(flow.owner.username, flow.owner.password)).status_code == 200
    gone = _refresh(uma, flow.client, r.json()["refresh_token"])
    assert gone.status_code == 400 and gone.json()["error"] == "invalid_grant"


def test_refresh_never_adds_what_was_not_granted_G_55(uma, idp):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp, scopes=("view",))
    _put(uma, flow.owner, POLICY.replace("view, download", "view, download, print"))
    r = _refresh(uma, flow.client, body["refresh_token"])
    assert r.status_code == 200, r.text
    assert _scopes(flow.introspect(r.json()["access_token"])) == ["view"]
    wider = _refresh(uma, flow.client, r.json()["refresh_token"], scope="view print")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_upgrade_carries_over_only_what_the_policy_still_grants_G_36(uma, idp):
    flow = uma.flow(POLICY)
    old = _rpt(flow, idp, scopes=("download",))
    _put(uma, flow.owner, VIEW_ONLY)
    upgraded = _rpt(flow, idp, scopes=("view",), rpt=old["access_token"])
    assert _scopes(flow.introspect(upgraded["access_token"])) == ["view"]


# -- 3. refresh-token reuse revokes the family ---------------------------------------------------


def test_reused_rpt_refresh_token_revokes_the_whole_family_O_47(uma, idp):
    flow = uma.flow(POLICY)
    first = _rpt(flow, idp)
    second = _refresh(uma, flow.client, first["refresh_token"]).json()
    third = _refresh(uma, flow.client, second["refresh_token"]).json()
    assert _scopes(flow.introspect(third["access_token"])) == ["view", "download"]
    replay = _refresh(uma, flow.client, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert flow.introspect(third["access_token"]) == {"active": False}
    after = _refresh(uma, flow.client, third["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_concurrent_uses_of_one_rpt_refresh_token_give_exactly_one_success_O_47(uma, idp):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: _refresh(uma, flow.client, body["refresh_token"]), range(6)))
    assert sorted(r.status_code for r in answers) == [200] + [400] * 5, [r.text for r in answers]
    # Reuse was detected: the one successor is revoked with its family.
    [won] = [r.json() for r in answers if r.status_code == 200]
    assert flow.introspect(won["access_token"]) == {"active": False}


# -- 4. time-bounded grants bound the token ------------------------------------------------------


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_until_caps_exp_expires_in_and_the_refresh_token(uma, idp, engine):
    # The bound leaves the grant and the first introspection time to finish on a loaded machine
    # (3 s was too little under a parallel suite); the test then waits for it to pass.
    bound = int(time.time()) + 8
    flow = uma.flow(
        f'claims email from "{IDP_ISSUER}" as id_token\n'
        f'permit view on type "photo-album" when claims.email == "{BOB}" until {_stamp(bound)}\n'
        f'permit download on type "photo-album" when claims.email == "{BOB}"\n'
    )
    body = _rpt(flow, idp)
    assert body["expires_in"] <= bound - int(time.time()) + 1
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] <= bound
    with Session(engine) as session:
        row = find_rpt(session, body["access_token"])
        assert row is not None and row.refresh_expires_at is not None and row.refresh_expires_at <= bound
    assert _scopes(flow.introspect(body["access_token"])) == ["view", "download"]
    while time.time() <= bound + 1:
        time.sleep(0.25)
    # Past the earliest bound the RPT has expired with it, and so has its refresh token.
    assert flow.introspect(body["access_token"]) == {"active": False}
    late = _refresh(uma, flow.client, body["refresh_token"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    # A new ticket gets what is still granted: download only.
    assert _scopes(flow.introspect(_rpt(flow, idp)["access_token"])) == ["download"]


def test_for_bounds_the_grant_from_when_it_was_given(uma, idp, engine):
    flow = uma.flow(POLICY.replace(f'"{BOB}"', f'"{BOB}" for 30d'))
    body = _rpt(flow, idp)
    with Session(engine) as session:
        row = find_rpt(session, body["access_token"])
        bound = row.basis["bounds"][flow.resources["album"]]
    assert abs(bound - (row.issued_at + 30 * 86400)) <= 2
    refreshed = _refresh(uma, flow.client, body["refresh_token"]).json()
    with Session(engine) as session:
        again = find_rpt(session, refreshed["access_token"])
        # A refresh does not restart the 30 days.
        assert again.basis["bounds"][flow.resources["album"]] == bound


# -- 5. refresh tokens only for clients registered for them -------------------------------------


def test_refresh_token_only_for_clients_registered_for_the_grant_O_47(uma, idp):
    flow = uma.flow(POLICY, grant_types=[UMA_GRANT])
    body = _rpt(flow, idp)
    assert "refresh_token" not in body
    registered = uma.flow(POLICY)
    assert "refresh_token" in _rpt(registered, idp)


def test_rpts_remember_what_they_were_decided_from(uma, idp, engine):
    flow = uma.flow(POLICY)
    body = _rpt(flow, idp)
    with Session(engine) as session:
        row: Rpt = find_rpt(session, body["access_token"])
        assert row.basis["claims"]["email"] == BOB
        assert row.basis["claim_sources"]["email"] == {"issuer": IDP_ISSUER, "format": ID_TOKEN}
        assert isinstance(row.basis["policy_version"], int)
        assert row.family_id and not row.rotated
