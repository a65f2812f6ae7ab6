"""Management of a dynamically registered client (RFC 7592; issue 13 point 2), over HTTP:
registration returns ``registration_access_token`` and ``registration_client_uri``; GET, PUT and
DELETE there with the RFC's statuses and errors; the token is stored hashed and replaced by
every PUT."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, select

from app.models import OAuthClient
from app.security import hash_token
from tests.server.test_admin_cli import an_rpt, grant_all, introspect

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
METADATA = {
    "client_name": "Photo app",
    "redirect_uris": ["https://app.example.com/cb"],
    "claims_redirect_uris": ["https://app.example.com/claims-cb"],
    "grant_types": ["authorization_code", UMA_GRANT, "client_credentials"],
    "scope": "view download",
    "client_uri": "https://app.example.com",
}


@pytest.fixture()
def registered(http) -> dict:
    response = http.post("/register", json=METADATA)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def path_of(body: dict) -> str:
    return urlsplit(body["registration_client_uri"]).path


def test_registration_returns_the_token_and_uri_and_keeps_only_a_hash(registered, settings, engine):
    token = registered["registration_access_token"]
    assert registered["registration_client_uri"] == f"{settings.issuer}/register/{registered['client_id']}"
    assert len(token) >= 32
    with Session(engine) as session:
        row = session.exec(select(OAuthClient).where(OAuthClient.client_id == registered["client_id"])).one()
    assert row.registration_token_hash == hash_token(token) and token not in str(row.model_dump())


def test_read_answers_the_registered_metadata_without_the_secret(http, registered):
    response = http.get(path_of(registered), headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    expected = {k: v for k, v in registered.items() if k != "client_secret"}
    assert body == expected
    assert "client_secret" not in body


def _other_client(http) -> dict:
    return http.post("/register", json={"redirect_uris": ["https://other.example/cb"]}).json()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_bad_tokens_are_401_invalid_token(http, registered, make_client, method):
    path = path_of(registered)
    other = _other_client(http)
    added = make_client(grant_types=["client_credentials"])  # by the operator: no registration token
    cases = [
        (path, {}),
        (path, bearer("not-the-token")),
        (path, bearer(other["registration_access_token"])),  # another client's token
        (path, {"Authorization": f"Basic {registered['client_id']}:{registered['client_secret']}"}),
        (path, {"Authorization": registered["registration_access_token"]}),  # no scheme
        ("/register/no-such-client", bearer(registered["registration_access_token"])),
        (f"/register/{added.client_id}", bearer(registered["registration_access_token"])),
        (f"/register/{added.client_id}", {"Authorization": "Bearer"}),
    ]
    body = {**METADATA, "client_id": registered["client_id"]}
    for target, headers in cases:
        response = http.request(method, target, headers=headers, json=body if method == "PUT" else None)
        assert response.status_code == 401, (target, headers, response.text)
        assert response.json()["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    still = http.get(path, headers=bearer(registered["registration_access_token"]))
    assert still.status_code == 200  # nothing above changed or deleted the client


def test_update_replaces_the_metadata_and_rotates_the_token(http, registered, engine):
    path, old = path_of(registered), registered["registration_access_token"]
    change = {
        "client_id": registered["client_id"],
        "client_secret": registered["client_secret"],
        "client_name": "Photo app 2",
        "redirect_uris": ["https://app.example.com/cb2"],
        "grant_types": ["authorization_code", "client_credentials"],
        "scope": "view",
    }
    response = http.put(path, headers=bearer(old), json=change)
    assert response.status_code == 200, response.text
    body = response.json()
    new = body["registration_access_token"]
    assert new and new != old
    assert body["client_name"] == "Photo app 2" and body["redirect_uris"] == ["https://app.example.com/cb2"]
    assert body["grant_types"] == ["authorization_code", "client_credentials"] and body["scope"] == "view"
    # members left out are removed (RFC 7592 §2.2)
    assert body["claims_redirect_uris"] == [] and "client_uri" not in body
    assert body["client_id_issued_at"] == registered["client_id_issued_at"]
    assert body["registration_client_uri"] == registered["registration_client_uri"]
    assert "client_secret" not in body
    assert http.get(path, headers=bearer(old)).status_code == 401
    read = http.get(path, headers=bearer(new))
    assert read.status_code == 200 and read.json() == body
    with Session(engine) as session:
        row = session.exec(select(OAuthClient).where(OAuthClient.client_id == registered["client_id"])).one()
    assert row.registration_token_hash == hash_token(new)
    # the secret is unchanged and the new scope holds at the token endpoint
    token = http.post(
        "/token", auth=(registered["client_id"], registered["client_secret"]), data={"grant_type": "client_credentials"}
    )
    assert token.status_code == 200 and token.json()["scope"] == "view"


@pytest.mark.parametrize(
    "change, error",
    [
        ({"redirect_uris": ["http://app.example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://app.example.com/cb#x"]}, "invalid_redirect_uri"),
        ({"claims_redirect_uris": ["not a uri"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [], "grant_types": ["authorization_code"]}, "invalid_redirect_uri"),
        ({"grant_types": ["password"]}, "invalid_client_metadata"),
        ({"grant_types": "authorization_code"}, "invalid_client_metadata"),
        ({"scope": ["view"]}, "invalid_client_metadata"),
        ({"client_name": 5}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"client_id": None}, "invalid_request"),
        ({"client_id": "someone-else"}, "invalid_request"),
        ({"client_id": 5}, "invalid_request"),
        ({"client_secret": "chosen-by-the-client"}, "invalid_request"),
        ({"client_secret": 5}, "invalid_request"),
        ({"registration_access_token": "x"}, "invalid_request"),
        ({"registration_client_uri": "https://x.example"}, "invalid_request"),
        ({"client_secret_expires_at": 0}, "invalid_request"),
        ({"client_id_issued_at": 0}, "invalid_request"),
    ],
)
def test_bad_updates_are_400_and_change_nothing(http, registered, change, error):
    path, token = path_of(registered), registered["registration_access_token"]
    before = http.get(path, headers=bearer(token)).json()
    body = {**METADATA, "client_id": registered["client_id"], **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = http.put(path, headers=bearer(token), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error and response.json().get("error_description")
    assert http.get(path, headers=bearer(token)).json() == before  # the token was not rotated either


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 5000, b'{"a": NaN}', b'{"client_id": "\\ud800"}'],
)
def test_unreadable_update_bodies_are_400_invalid_request(http, registered, content):
    response = http.put(
        path_of(registered),
        content=content,
        headers={**bearer(registered["registration_access_token"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_public_client_stays_public(http):
    registered = http.post(
        "/register", json={"redirect_uris": ["http://127.0.0.1:9999/cb"], "token_endpoint_auth_method": "none"}
    ).json()
    body = {
        "client_id": registered["client_id"],
        "redirect_uris": ["http://127.0.0.1:9999/cb2"],
        "token_endpoint_auth_method": "none",
    }
    response = http.put(path_of(registered), headers=bearer(registered["registration_access_token"]), json=body)
    assert response.status_code == 200, response.text
    assert response.json()["redirect_uris"] == ["http://127.0.0.1:9999/cb2"] and "client_secret" not in response.json()


def test_delete_is_204_and_the_client_and_its_tokens_are_gone_O_31(
    http, registered, app, engine, settings, make_user, pat_for
):
    owner = make_user()
    grant_all(http, owner)
    pat = pat_for(owner.username)
    rpt = an_rpt(app, engine, settings, pat, registered["client_id"])
    assert introspect(http, pat, rpt)["active"] is True
    path, token = path_of(registered), registered["registration_access_token"]
    response = http.delete(path, headers=bearer(token))
    assert response.status_code == 204 and response.content == b""
    assert introspect(http, pat, rpt) == {"active": False}
    again = http.get(path, headers=bearer(token))
    assert again.status_code == 401 and again.json()["error"] == "invalid_token"
    refused = http.post(
        "/token", auth=(registered["client_id"], registered["client_secret"]), data={"grant_type": "client_credentials"}
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
