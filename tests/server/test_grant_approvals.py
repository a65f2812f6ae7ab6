"""request_submitted, the owner's approvals and the polling client over real HTTP (G-42, G-43, G-23)."""

from __future__ import annotations

from tests.server.grant_support import *

POLICY = f'''
claims email from "{IDP_ISSUER}" as id_token

ask view, download on type "photo-album" when claims.email ends with "@acme.example"
'''


def _submitted(uma, idp, scopes=("view",), sub="erin-1"):
    flow = uma.flow(POLICY)
    token = idp.token(sub=sub, email="erin@acme.example")
    r = flow.token(flow.ticket(("album", list(scopes))), claim_token=token, claim_token_format=ID_TOKEN)
    assert r.status_code == 403, r.text
    return flow, r.json(), token


def _requests(uma, owner, status="pending"):
    r = uma.http.get("/owner/requests", params={"status": status}, auth=(owner.username, owner.password))
    assert r.status_code == 200, r.text
    return r.json()["requests"]


def test_request_submitted_has_ticket_and_interval_G_42(uma, idp):
    flow, body, _ = _submitted(uma, idp)
    assert body["error"] == "request_submitted"
    assert body["ticket"] and body["interval"] == uma.settings.request_submitted_interval
    pending = _requests(uma, flow.owner)
    assert len(pending) == 1
    assert pending[0]["resource_id"] == flow.resources["album"]
    assert pending[0]["scopes_requested"] == ["view"]
    assert pending[0]["requesting_party"] == f"{IDP_ISSUER}#erin-1"
    assert pending[0]["client_id"] == flow.client.client_id


def test_polling_keeps_one_pending_request_and_rotates_tickets_G_42_G_43(uma, idp):
    flow, body, _ = _submitted(uma, idp)
    again = flow.token(body["ticket"])
    assert again.status_code == 403 and again.json()["error"] == "request_submitted"
    assert again.json()["ticket"] != body["ticket"]
    assert len(_requests(uma, flow.owner)) == 1
    assert flow.token(body["ticket"]).json()["error"] == "invalid_grant"


def test_owner_approves_then_polling_client_gets_rpt_G_42(uma, idp):
    flow, body, token = _submitted(uma, idp)
    request_id = _requests(uma, flow.owner)[0]["id"]
    r = uma.http.post(f"/owner/requests/{request_id}/approve", auth=(flow.owner.username, flow.owner.password))
    assert r.status_code == 200 and r.json()["status"] == "approved"
    poll = flow.token(body["ticket"])
    assert poll.status_code == 200, poll.text
    assert flow.introspect(poll.json()["access_token"])["permissions"][0]["resource_scopes"] == ["view"]
    # The approval holds for this requesting party's later requests too.
    later = flow.token(flow.ticket(("album", ["view"])), claim_token=token, claim_token_format=ID_TOKEN)
    assert later.status_code == 200, later.text


def test_owner_denies_then_request_denied_G_41(uma, idp):
    flow, body, _ = _submitted(uma, idp)
    request_id = _requests(uma, flow.owner)[0]["id"]
    r = uma.http.post(f"/owner/requests/{request_id}/deny", auth=(flow.owner.username, flow.owner.password))
    assert r.status_code == 200 and r.json()["status"] == "denied"
    poll = flow.token(body["ticket"])
    assert poll.status_code == 403 and poll.json()["error"] == "request_denied"
    assert _requests(uma, flow.owner, "denied")[0]["id"] == request_id


def test_owner_approves_fewer_scopes_then_partial_grant_G_23(uma, idp):
    flow, body, _ = _submitted(uma, idp, scopes=("view", "download"))
    pending = _requests(uma, flow.owner)
    assert pending[0]["scopes_requested"] == ["view", "download"]
    r = uma.http.post(
        f"/owner/requests/{pending[0]['id']}/approve",
        json={"scopes": ["view"]},
        auth=(flow.owner.username, flow.owner.password),
    )
    assert r.status_code == 200 and r.json()["scopes_approved"] == ["view"]
    poll = flow.token(body["ticket"])
    assert poll.status_code == 200, poll.text
    assert flow.introspect(poll.json()["access_token"])["permissions"][0]["resource_scopes"] == ["view"]


def test_approval_is_per_requesting_party(uma, idp):
    flow, body, _ = _submitted(uma, idp)
    request_id = _requests(uma, flow.owner)[0]["id"]
    uma.http.post(f"/owner/requests/{request_id}/approve", auth=(flow.owner.username, flow.owner.password))
    other = idp.token(sub="frank-2", email="frank@acme.example")
    r = flow.token(flow.ticket(("album", ["view"])), claim_token=other, claim_token_format=ID_TOKEN)
    assert r.status_code == 403 and r.json()["error"] == "request_submitted"


def test_approving_scopes_that_were_not_requested_is_refused(uma, idp):
    flow, _, _ = _submitted(uma, idp)
    request_id = _requests(uma, flow.owner)[0]["id"]
    auth = (flow.owner.username, flow.owner.password)
    for body in ({"scopes": ["print"]}, {"scopes": []}, {"scopes": "view"}):
        r = uma.http.post(f"/owner/requests/{request_id}/approve", json=body, auth=auth)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_other_owners_cannot_see_or_answer_requests(uma, idp):
    flow, _, _ = _submitted(uma, idp)
    request_id = _requests(uma, flow.owner)[0]["id"]
    stranger = uma.user()
    assert _requests(uma, stranger) == []
    r = uma.http.post(f"/owner/requests/{request_id}/approve", auth=(stranger.username, stranger.password))
    assert r.status_code == 404


def test_owner_changing_an_approval_to_a_refusal_revokes_the_rpt_G_76(uma, idp):
    flow, body, _ = _submitted(uma, idp)
    auth = (flow.owner.username, flow.owner.password)
    request_id = _requests(uma, flow.owner)[0]["id"]
    uma.http.post(f"/owner/requests/{request_id}/approve", auth=auth)
    rpt = flow.token(body["ticket"]).json()["access_token"]
    assert flow.introspect(rpt)["active"] is True
    assert uma.http.post(f"/owner/requests/{request_id}/deny", auth=auth).status_code == 200
    assert flow.introspect(rpt) == {"active": False}
