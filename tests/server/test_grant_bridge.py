"""The bridge's policy request: the section-4 shape, G-21/A3 scope arithmetic, the requesting party."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidScopeError

import policy_lang
from app.grant.bridge import policy_request, requested_scopes, requesting_party_of
from app.models import OAuthClient, PermissionTicket, Resource


def _resources() -> dict[str, Resource]:
    return {
        "album": Resource(
            id="album",
            owner="alice",
            rs_client_id="rs",
            name="summer",
            type="photo-album",
            description="Summer photos",
            resource_scopes=["view", "edit", "download"],
        ),
        "photo1": Resource(
            id="photo1", owner="alice", rs_client_id="rs", resource_scopes=["view", "resize", "print", "download"]
        ),
        "photo2": Resource(
            id="photo2", owner="alice", rs_client_id="rs", resource_scopes=["view", "resize", "print", "download"]
        ),
    }


def _ticket() -> PermissionTicket:
    return PermissionTicket(
        ticket_hash="h",
        owner="alice",
        rs_client_id="rs",
        expires_at=0,
        permissions=[
            {"resource_id": "album", "resource_scopes": ["edit"]},
            {"resource_id": "photo1", "resource_scopes": ["view"]},
            {"resource_id": "photo2", "resource_scopes": ["view"]},
        ],
    )


def _client(scope: str = "download") -> OAuthClient:
    return OAuthClient(
        client_id="photo-app",
        client_name="Photo app",
        scope=scope,
        grant_types=[],
        client_metadata={"trusted": True, "software_id": "x"},
    )


def test_worked_example_of_the_spec_G_21():
    """[Grant §3.3.4] example: the client pre-registered for download asks scope=download."""
    requested = requested_scopes(_ticket(), _resources(), "download", _client())
    assert [(r.id, scopes) for r, scopes in requested] == [
        ("album", ["edit", "download"]),
        ("photo1", ["view", "download"]),
        ("photo2", ["view", "download"]),
    ]


def test_client_scope_only_where_the_resource_offers_it_A3():
    requested = requested_scopes(_ticket(), _resources(), "resize", _client("resize"))
    assert [(r.id, scopes) for r, scopes in requested] == [
        ("album", ["edit"]),
        ("photo1", ["view", "resize"]),
        ("photo2", ["view", "resize"]),
    ]


@pytest.mark.parametrize("scope,registered", [("delete", "delete"), ("print", "download")])
def test_scope_offered_nowhere_or_not_registered_is_invalid_scope_G_39_G_20(scope, registered):
    with pytest.raises(InvalidScopeError):
        requested_scopes(_ticket(), _resources(), scope, _client(registered))


def test_ticket_whose_resources_are_all_gone_is_invalid_grant():
    with pytest.raises(InvalidGrantError):
        requested_scopes(_ticket(), {}, None, _client())


def test_policy_request_is_the_section_4_shape_and_decides():
    requested = requested_scopes(_ticket(), _resources(), None, _client())
    request = policy_request(
        requested,
        _client(),
        {"email": "bob@example.com"},
        {"email": {"issuer": "https://idp.example.com", "format": "id_token"}},
        {"photo1": [{"scope": "view", "answer": "approved"}]},
        "2026-11-27T10:00:00Z",
    )
    first = request["permissions"][0]
    assert first == {
        "resource": {
            "id": "album",
            "owner": "alice",
            "scopes": ["view", "edit", "download"],
            "type": "photo-album",
            "name": "summer",
            "description": "Summer photos",
        },
        "scopes": ["edit"],
        "approvals": [],
    }
    assert request["permissions"][1]["resource"] == {
        "id": "photo1",
        "owner": "alice",
        "scopes": ["view", "resize", "print", "download"],
    }
    assert request["permissions"][1]["approvals"] == [{"scope": "view", "answer": "approved"}]
    assert request["client"]["id"] == "photo-app" and request["client"]["name"] == "Photo app"
    assert request["client"]["trusted"] is True
    assert request["time"] == "2026-11-27T10:00:00Z"
    ps = policy_lang.loads(
        'owner "alice"\n'
        'permit edit on type "photo-album" when client.name == "Photo app" and resource.description == "Summer photos"\n'
        'ask view on any resource when claims.email == "bob@example.com"\n'
    )
    decision = ps.decide(request)
    assert decision.decision == "request_submitted"
    assert decision.granted == [
        {"resource_id": "album", "scopes": ["edit"], "expires_at": None},
        {"resource_id": "photo1", "scopes": ["view"], "expires_at": None},
    ]
    assert decision.submitted == [{"resource_id": "photo2", "scopes": ["view"]}]


@pytest.mark.parametrize(
    "claims,sources,expected",
    [
        ({"sub": "bob"}, {"sub": {"issuer": "https://as.example"}}, "bob"),
        ({"sub": "bob"}, {"sub": {"issuer": "https://idp.example", "format": "jwt"}}, "https://idp.example#bob"),
        (
            {"email": "bob@example.com"},
            {"email": {"issuer": "https://idp.example"}},
            "https://idp.example#email:bob@example.com",
        ),
        ({}, {}, "client:photo-app"),
        ({"sub": "x" * 300}, {}, None),
    ],
)
def test_requesting_party_is_a_stable_subject(claims, sources, expected):
    party = requesting_party_of(claims, sources, "https://as.example", "photo-app")
    if expected is None:
        assert party.startswith("sha256:") and len(party) <= 255
    else:
        assert party == expected
