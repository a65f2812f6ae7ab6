"""The UMA grant over real HTTP: RPTs, partial grants, denial, tickets, scopes, upgrade (G-14…G-43, G-59…G-61)."""

from __future__ import annotations

import jwt
from sqlalchemy import update

from app.models import PermissionTicket
from app.security import hash_token
from tests.server.grant_support import *
from tests.support.server import close_app

ALBUM_AND_DOC = {
    "album": {"resource_scopes": ["view", "download", "print"], "type": "photo-album"},
    "doc": {"resource_scopes": ["read", "download"], "type": "document"},
}


def test_happy_path_rpt_and_introspection_G_14_G_22_G_27(uma):
    flow = uma.flow('permit view on type "photo-album" when client.id == "{client}"')
    ticket = flow.ticket(("album", ["view"]))
    r = flow.token(ticket)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["access_token"] and body["expires_in"] > 0
    assert "scope" not in body  # G-31
    assert "upgraded" not in body and "pct" not in body
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    info = flow.introspect(body["access_token"])
    assert info["active"] is True
    assert [(p["resource_id"], p["resource_scopes"]) for p in info["permissions"]] == [
        (flow.resources["album"], ["view"])
    ]
    # The JWT RPT verifies with the published keys (aud = the RS, azp = the client).
    jwks = uma.http.get("/jwks").json()
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    claims = jwt.decode(body["access_token"], key, algorithms=["RS256"], audience=flow.pat.rs.client_id)
    assert claims["azp"] == flow.client.client_id and claims["iss"] == uma.url


def test_public_client_gets_rpt_G_14(uma):
    flow = uma.flow('permit view on type "photo-album" when client.id == "{client}"', public=True)
    r = flow.token(flow.ticket(("album", ["view"])))
    assert r.status_code == 200, r.text


def test_partial_grant_keeps_granted_scopes_only_G_23(uma):
    flow = uma.flow('permit view on type "photo-album"')
    r = flow.token(flow.ticket(("album", ["view", "print"])))
    assert r.status_code == 200, r.text
    info = flow.introspect(r.json()["access_token"])
    assert info["permissions"][0]["resource_scopes"] == ["view"]


def test_no_rule_is_request_denied_without_ticket_G_41_G_26(uma):
    flow = uma.flow('permit view on type "other-type"')
    r = flow.token(flow.ticket(("album", ["view"])))
    assert r.status_code == 403
    assert r.json()["error"] == "request_denied" and "ticket" not in r.json()
    assert r.headers["Cache-Control"] == "no-store"


def test_forbid_beats_permit_request_denied_G_41(uma):
    flow = uma.flow('permit any scope on any resource\nforbid print on type "photo-album"')
    r = flow.token(flow.ticket(("album", ["print"])))
    assert r.status_code == 403 and r.json()["error"] == "request_denied"


def test_ticket_is_single_use_and_reuse_revokes_its_rpt_G_59_G_61(uma):
    flow = uma.flow('permit view on type "photo-album"')
    ticket = flow.ticket(("album", ["view"]))
    first = flow.token(ticket)
    assert first.status_code == 200
    again = flow.token(ticket)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert flow.introspect(first.json()["access_token"]) == {"active": False}


def test_failed_request_still_spends_the_ticket_G_60(uma):
    flow = uma.flow('permit view on type "photo-album"')
    ticket = flow.ticket(("album", ["view"]))
    bad = flow.token(ticket, scope="no-such-scope")
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_scope"
    assert flow.token(ticket).json()["error"] == "invalid_grant"


def test_expired_ticket_is_invalid_grant_G_38(uma, db_session):
    flow = uma.flow('permit view on type "photo-album"')
    ticket = flow.ticket(("album", ["view"]))
    db_session.execute(
        update(PermissionTicket).where(PermissionTicket.ticket_hash == hash_token(ticket)).values(expires_at=1)
    )
    db_session.commit()
    r = flow.token(ticket)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_unknown_ticket_is_invalid_grant_G_15(uma):
    flow = uma.flow(None)
    r = flow.token("not-a-ticket-of-this-server")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_client_scope_added_where_resources_offer_it_G_21_A3(uma):
    flow = uma.flow(
        'permit view, download on type "photo-album"\npermit read on type "document"',
        resources=ALBUM_AND_DOC,
        scope="download print",
    )
    ticket = flow.ticket(("album", ["view"]), ("doc", ["read"]))
    r = flow.token(ticket, scope="download")
    # album: view + download, both permitted; doc: read + download, download not permitted → partial
    assert r.status_code == 200, r.text
    perms = {
        p["resource_id"]: sorted(p["resource_scopes"]) for p in flow.introspect(r.json()["access_token"])["permissions"]
    }
    assert perms == {flow.resources["album"]: ["download", "view"], flow.resources["doc"]: ["read"]}


def test_client_scope_grants_per_resource_G_21(uma):
    flow = uma.flow(
        'permit view, download on type "photo-album"\npermit read, download on type "document"',
        resources=ALBUM_AND_DOC,
        scope="download",
    )
    ticket = flow.ticket(("album", ["view"]), ("doc", ["read"]))
    r = flow.token(ticket, scope="download")
    assert r.status_code == 200, r.text
    perms = {
        p["resource_id"]: sorted(p["resource_scopes"]) for p in flow.introspect(r.json()["access_token"])["permissions"]
    }
    assert perms == {flow.resources["album"]: ["download", "view"], flow.resources["doc"]: ["download", "read"]}


def test_scope_matching_no_resource_is_invalid_scope_G_39(uma):
    flow = uma.flow('permit view on type "photo-album"', scope="view delete")
    r = flow.token(flow.ticket(("album", ["view"])), scope="delete")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_scope_not_registered_for_client_is_invalid_scope_G_20(uma):
    flow = uma.flow('permit any scope on type "photo-album"', scope="view")
    r = flow.token(flow.ticket(("album", ["view"])), scope="print")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_deregistered_resource_is_left_out_F_30(uma):
    flow = uma.flow("permit any scope on any resource", resources=ALBUM_AND_DOC)
    ticket = flow.ticket(("album", ["view"]), ("doc", ["read"]))
    assert uma.http.delete(f"/uma/resources/{flow.resources['doc']}", headers=flow.pat.headers).status_code in (
        200,
        204,
    )
    r = flow.token(ticket)
    assert r.status_code == 200
    assert [p["resource_id"] for p in flow.introspect(r.json()["access_token"])["permissions"]] == [
        flow.resources["album"]
    ]


def test_upgrade_carries_old_permissions_and_revokes_old_rpt_G_30_G_35_A16(uma):
    flow = uma.flow('permit view, download on type "photo-album"')
    old = flow.token(flow.ticket(("album", ["view"]))).json()["access_token"]
    r = flow.token(flow.ticket(("album", ["download"])), rpt=old)
    assert r.status_code == 200, r.text
    assert r.json()["upgraded"] is True
    info = flow.introspect(r.json()["access_token"])
    assert sorted(info["permissions"][0]["resource_scopes"]) == ["download", "view"]
    assert flow.introspect(old) == {"active": False}


def test_upgrade_of_two_resources_merges_per_resource_G_34(uma):
    flow = uma.flow("permit any scope on any resource", resources=ALBUM_AND_DOC)
    old = flow.token(flow.ticket(("album", ["view"]))).json()["access_token"]
    r = flow.token(flow.ticket(("doc", ["read"])), rpt=old)
    assert r.json()["upgraded"] is True
    perms = {p["resource_id"]: p["resource_scopes"] for p in flow.introspect(r.json()["access_token"])["permissions"]}
    assert perms == {flow.resources["album"]: ["view"], flow.resources["doc"]: ["read"]}


def test_foreign_or_unknown_rpt_is_not_upgraded_A5_G_36(uma):
    flow = uma.flow('permit view, download on type "photo-album"')
    other = uma.client()
    foreign = flow.token(flow.ticket(("album", ["view"])), client=other)
    assert foreign.status_code == 200
    r = flow.token(flow.ticket(("album", ["download"])), rpt=foreign.json()["access_token"])
    assert r.status_code == 200 and "upgraded" not in r.json()
    assert flow.introspect(foreign.json()["access_token"])["active"] is True
    r = flow.token(flow.ticket(("album", ["download"])), rpt="no-such-rpt")
    assert r.status_code == 200 and "upgraded" not in r.json()


def test_refresh_token_of_rpt_narrows_to_the_scope_asked_G_53_G_54(uma):
    flow = uma.flow('permit view, download on type "photo-album"')
    body = flow.token(flow.ticket(("album", ["view", "download"]))).json()
    r = uma.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "scope": "view"},
        auth=flow.client.basic_auth,
    )
    assert r.status_code == 200, r.text
    assert flow.introspect(r.json()["access_token"])["permissions"][0]["resource_scopes"] == ["view"]


def test_two_clients_racing_with_one_ticket_get_one_rpt_G_59(uma):
    from concurrent.futures import ThreadPoolExecutor

    flow = uma.flow('permit view on type "photo-album"')
    ticket = flow.ticket(("album", ["view"]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: flow.token(ticket), range(2)))
    assert sorted(r.status_code for r in answers) == [200, 400]
    assert [r.json()["error"] for r in answers if r.status_code == 400] == ["invalid_grant"]


def test_discovery_names_the_claims_interaction_endpoint_G_07_G_09(uma):
    meta = uma.http.get("/.well-known/uma2-configuration").json()
    assert meta["claims_interaction_endpoint"] == uma.url + "/uma/claims"
    assert meta["claim_token_formats_supported"] == [ID_TOKEN, JWT_FORMAT]
    assert UMA_GRANT in meta["grant_types_supported"]


def test_opaque_rpt_from_another_process_introspects_G_27(uma, database_url, tmp_path):
    """A second app instance on the same database issuing opaque RPTs: the ticket of one
    process is redeemed by the other, and the RS introspects the opaque RPT at the first."""
    import secrets

    from app import create_app

    other = create_app(
        {
            "database_url": database_url,
            "issuer": uma.url,
            "rpt_format": "opaque",
            "secret_key": secrets.token_hex(16),
            "instance_path": str(tmp_path),
            "policy_dir": uma.settings.policy_dir,
        }
    )
    flow = uma.flow('permit view on type "photo-album"')
    other.extensions["uma_policies"].sync()  # the owner's new policy, as its background thread would
    ticket = flow.ticket(("album", ["view"]))
    try:
        r = other.test_client().post(
            "/token", data={"grant_type": UMA_GRANT, "ticket": ticket}, auth=flow.client.basic_auth
        )
    finally:
        close_app(other)
    assert r.status_code == 200, r.get_data(as_text=True)
    rpt = r.json["access_token"]
    assert rpt.count(".") == 0  # not a JWT
    info = flow.introspect(rpt)
    assert info["active"] is True and info["permissions"][0]["resource_scopes"] == ["view"]
