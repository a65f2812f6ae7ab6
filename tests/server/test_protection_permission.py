"""Permission endpoint over HTTP (FedAuthz §4; F-31…F-37, G-57, A7)."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.protection.tickets import redeem_ticket
from tests.support.server import unique

PERM = "/uma/permission"


@pytest.fixture()
def pat(pat_for):
    return pat_for(unique("alice"))


def register(http, pat, scopes) -> str:
    response = http.post("/uma/resources/", headers=pat.headers, json={"resource_scopes": scopes})
    assert response.status_code == 201
    return response.json()["_id"]


def test_one_permission_object_gives_a_ticket_F_31_F_35_G_57(http, pat, engine, settings):
    rid = register(http, pat, ["view", "edit"])
    response = http.post(PERM, headers=pat.headers, json={"resource_id": rid, "resource_scopes": ["view"]})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"ticket"} and len(body["ticket"]) >= 43
    with Session(engine, expire_on_commit=False) as session:
        row = redeem_ticket(session, body["ticket"])
    assert row is not None
    assert row.owner == pat.owner and row.rs_client_id == pat.rs.client_id
    assert row.permissions == [{"resource_id": rid, "resource_scopes": ["view"]}]
    assert row.expires_at - row.created_at == settings.ticket_lifetime


def test_an_array_gives_one_ticket_for_all_and_empty_scopes_are_legal_F_31_F_33(http, pat, engine):
    a = register(http, pat, ["view"])
    b = register(http, pat, ["print"])
    response = http.post(
        PERM,
        headers=pat.headers,
        json=[
            {"resource_id": a, "resource_scopes": ["view"]},
            {"resource_id": b, "resource_scopes": []},
            {"resource_id": a, "resource_scopes": ["view"], "x-ext": True},
        ],
    )
    assert response.status_code == 201
    with Session(engine, expire_on_commit=False) as session:
        row = redeem_ticket(session, response.json()["ticket"])
    assert row.permissions == [
        {"resource_id": a, "resource_scopes": ["view"]},
        {"resource_id": b, "resource_scopes": []},
    ]


def test_tickets_differ_every_time_G_57(http, pat):
    rid = register(http, pat, ["view"])
    tickets = {
        http.post(PERM, headers=pat.headers, json={"resource_id": rid, "resource_scopes": []}).json()["ticket"]
        for _ in range(5)
    }
    assert len(tickets) == 5


def test_unknown_resource_is_invalid_resource_id_F_36(http, pat):
    response = http.post(PERM, headers=pat.headers, json={"resource_id": "nope", "resource_scopes": []})
    assert response.status_code == 400 and response.json()["error"] == "invalid_resource_id"


def test_another_owners_or_rss_resource_is_invalid_resource_id_F_34(http, pat, pat_for):
    rid = register(http, pat, ["view"])
    for intruder in (pat_for(unique("mallory"), rs=pat.rs), pat_for(pat.owner)):
        response = http.post(PERM, headers=intruder.headers, json={"resource_id": rid, "resource_scopes": ["view"]})
        assert response.status_code == 400 and response.json()["error"] == "invalid_resource_id"


def test_unregistered_scope_is_invalid_scope_F_36(http, pat):
    rid = register(http, pat, ["view"])
    response = http.post(PERM, headers=pat.headers, json=[{"resource_id": rid, "resource_scopes": ["view", "delete"]}])
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_deleted_resource_can_no_longer_be_asked_for_F_30(http, pat):
    rid = register(http, pat, ["view"])
    assert http.delete(f"/uma/resources/{rid}", headers=pat.headers).status_code == 204
    response = http.post(PERM, headers=pat.headers, json={"resource_id": rid, "resource_scopes": []})
    assert response.json()["error"] == "invalid_resource_id"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"resource_id": "r"},
        {"resource_scopes": ["view"]},
        {"resource_id": 5, "resource_scopes": []},
        {"resource_id": "", "resource_scopes": []},
        {"resource_id": "r", "resource_scopes": "view"},
        {"resource_id": "r", "resource_scopes": [1]},
        {"resource_id": "r", "resource_scopes": None},
        ["r"],
        [{"resource_id": "r", "resource_scopes": []}, 7],
        [{"resource_id": "r", "resource_scopes": []}] * 101,
        "r",
        None,
        True,
    ],
)
def test_malformed_permission_requests_are_invalid_request_F_36_A7(http, pat, body):
    response = http.post(PERM, headers=pat.headers, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def test_weird_resource_ids_are_invalid_resource_id_not_500(http, pat):
    for rid in ["x" * 10000, "\u202e\ud7ff", "../../etc/passwd", "' OR 1=1 --"]:
        response = http.post(PERM, headers=pat.headers, json={"resource_id": rid, "resource_scopes": []})
        assert response.status_code == 400 and response.json()["error"] == "invalid_resource_id", rid
    nul = http.post(PERM, headers=pat.headers, json={"resource_id": "a\u0000b", "resource_scopes": []})
    assert nul.status_code == 400 and nul.json()["error"] == "invalid_request"


def test_permission_endpoint_requires_a_pat_F_03(http, pat_for):
    assert http.post(PERM, json={"resource_id": "r", "resource_scopes": []}).status_code == 401
    view_only = pat_for(unique("alice"), scope="view")
    response = http.post(PERM, headers=view_only.headers, json={"resource_id": "r", "resource_scopes": []})
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    assert http.get(PERM, headers=view_only.headers).status_code == 405
