"""Every decision is audited; owners list their own, filtered by resource and outcome."""

from __future__ import annotations

from tests.server.grant_support import *

RESOURCES = {
    "album": {"resource_scopes": ["view", "download", "print"], "type": "photo-album"},
    "doc": {"resource_scopes": ["read"], "type": "document"},
}


def _records(uma, owner, **params):
    r = uma.http.get("/owner/audit", params=params, auth=(owner.username, owner.password))
    assert r.status_code == 200, r.text
    return r.json()["records"]


def test_decisions_are_recorded_with_rules_and_policy_version(uma):
    flow = uma.flow('permit view on type "photo-album"', resources=RESOURCES)
    assert flow.token(flow.ticket(("album", ["view"]))).status_code == 200
    assert flow.token(flow.ticket(("doc", ["read"]))).json()["error"] == "request_denied"
    records = _records(uma, flow.owner)
    assert [r["outcome"] for r in records] == ["deny", "permit"]
    permit = records[1]
    assert permit["resource_id"] == flow.resources["album"] and permit["scopes"] == ["view"]
    assert permit["client_id"] == flow.client.client_id
    assert permit["requesting_party"] == f"client:{flow.client.client_id}"
    assert permit["rules"] == [
        {
            "resource_id": flow.resources["album"],
            "scope": "view",
            "effect": "permit",
            "rule": f"uploads/{flow.owner.username}/owner.policy:1",
        }
    ]
    assert isinstance(permit["policy_version"], int) and permit["policy_version"] > 0
    assert records[0]["rules"][0]["rule"] is None  # default deny names no rule


def test_owners_filter_by_resource_and_outcome(uma):
    flow = uma.flow('permit view on type "photo-album"', resources=RESOURCES)
    flow.token(flow.ticket(("album", ["view"])))
    flow.token(flow.ticket(("doc", ["read"])))
    flow.token(flow.ticket(("album", ["print"])))
    assert len(_records(uma, flow.owner, resource_id=flow.resources["album"])) == 2
    assert [r["scopes"] for r in _records(uma, flow.owner, outcome="deny")] == [["print"], ["read"]]
    assert len(_records(uma, flow.owner, outcome="permit", resource_id=flow.resources["doc"])) == 0
    assert len(_records(uma, flow.owner, limit=1)) == 1
    bad = uma.http.get("/owner/audit", params={"outcome": "maybe"}, auth=(flow.owner.username, flow.owner.password))
    assert bad.status_code == 400


def test_owners_see_only_their_own_records(uma):
    flow = uma.flow('permit view on type "photo-album"')
    flow.token(flow.ticket(("album", ["view"])))
    assert _records(uma, uma.user()) == []


def test_need_info_and_submitted_are_recorded(uma, idp):
    policy = f'claims email from "{IDP_ISSUER}" as id_token\nask view on type "photo-album" when claims.email == "a@b.example"'
    flow = uma.flow(policy)
    r = flow.token(flow.ticket(("album", ["view"])))
    assert r.json()["error"] == "need_info"
    r = flow.token(r.json()["ticket"], claim_token=idp.token(sub="a", email="a@b.example"), claim_token_format=ID_TOKEN)
    assert r.json()["error"] == "request_submitted"
    records = _records(uma, flow.owner)
    assert [r["outcome"] for r in records] == ["request_submitted", "need_info"]
    assert records[0]["requesting_party"] == f"{IDP_ISSUER}#a"
    assert records[1]["rules"][0]["missing"] == ["email"]
