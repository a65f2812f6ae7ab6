"""Discovery metadata, JWKS and key rotation, dynamic client registration."""

from __future__ import annotations

import jwt
import pytest
from sqlmodel import Session

from app.oauth.keys import rotate_signing_key
from app.protection.rpt import issue_rpt

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"


def test_uma2_configuration_has_every_member_of_the_digest_G_04_G_05_F_09(http, live_server):
    response = http.get("/.well-known/uma2-configuration")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    meta = response.json()
    assert meta["issuer"] == live_server.url  # O-25
    base = live_server.url
    assert meta["authorization_endpoint"] == base + "/authorize"
    assert meta["token_endpoint"] == base + "/token"
    assert meta["jwks_uri"] == base + "/jwks"
    assert meta["registration_endpoint"] == base + "/register"
    assert meta["revocation_endpoint"] == base + "/revoke"
    assert meta["introspection_endpoint"] == base + "/uma/introspect"  # F-12
    assert meta["resource_registration_endpoint"] == base + "/uma/resources"  # F-11
    assert meta["permission_endpoint"] == base + "/uma/permission"  # F-10
    assert meta["scopes_supported"] == ["uma_protection"]
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "refresh_token",
        UMA_GRANT,
    }
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post", "none"}
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "Bearer" in meta["introspection_endpoint_auth_methods_supported"]
    # O-24: no empty arrays; nothing advertised that is not offered.
    assert "uma_profiles_supported" not in meta
    assert all(value != [] for value in meta.values())
    assert "token_endpoint_auth_signing_alg_values_supported" not in meta


def test_both_well_known_locations_serve_the_same_document_O_26(http):
    a = http.get("/.well-known/uma2-configuration").json()
    b = http.get("/.well-known/oauth-authorization-server").json()
    assert a == b


def test_extension_metadata_and_profiles_are_added(app):
    from app.oauth.metadata import register_metadata, server_metadata

    settings = app.config["UMA_SETTINGS"]
    probe = type(app)("probe")
    assert "claims_interaction_endpoint" not in server_metadata(probe, settings)
    register_metadata(
        probe,
        lambda s: {
            "claims_interaction_endpoint": s.url("/uma/claims"),
            "uma_profiles_supported": ["https://x.example/p"],
        },
    )
    meta = server_metadata(probe, settings)
    assert meta["claims_interaction_endpoint"] == settings.url("/uma/claims")
    assert meta["uma_profiles_supported"] == ["https://x.example/p"]


def test_jwks_publishes_active_and_recent_keys_and_verifies_jwt_rpts(http, engine, app, settings):
    with app.app_context(), Session(engine, expire_on_commit=False) as session:
        old = rotate_signing_key(session)
        issued = issue_rpt(
            client_id="c",
            owner="alice",
            rs_client_id="rs",
            permissions=[{"resource_id": "r", "resource_scopes": ["view"]}],
            session=session,
            settings=settings,
        )
        new = rotate_signing_key(session)
    keys = http.get("/jwks").json()["keys"]
    kids = [k["kid"] for k in keys]
    assert new.kid in kids and old.kid in kids
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and "d" not in k for k in keys)
    header = jwt.get_unverified_header(issued.token)
    assert header["kid"] == old.kid and header["alg"] == "RS256"
    jwk = next(k for k in keys if k["kid"] == old.kid)
    claims = jwt.decode(issued.token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="rs", issuer=settings.issuer)
    assert claims["permissions"][0]["resource_id"] == "r" and claims["azp"] == "c"


def test_dynamic_registration_with_claims_redirect_uris_G_10_O_33_O_34(http):
    response = http.post(
        "/register",
        json={
            "client_name": "Photo app",
            "redirect_uris": ["https://client.example.com/cb"],
            "claims_redirect_uris": ["https://client.example.com/claims-cb"],
            "grant_types": ["authorization_code", UMA_GRANT, "client_credentials"],
            "scope": "view download",
            "client_uri": "https://client.example.com",
            "owner": "alice",  # not RFC 7591 metadata: must be ignored
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_id"] and body["client_secret"] and body["client_secret_expires_at"] == 0
    assert body["claims_redirect_uris"] == ["https://client.example.com/claims-cb"]
    assert body["redirect_uris"] == ["https://client.example.com/cb"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_uri"] == "https://client.example.com" and body["scope"] == "view download"
    assert "owner" not in body
    token = http.post(
        "/token",
        auth=(body["client_id"], body["client_secret"]),
        data={"grant_type": "client_credentials", "scope": "view"},
    )
    assert token.status_code == 200 and token.json()["scope"] == "view"


def test_dynamic_registration_of_a_public_client(http):
    response = http.post(
        "/register", json={"redirect_uris": ["http://127.0.0.1:9999/cb"], "token_endpoint_auth_method": "none"}
    )
    assert response.status_code == 201
    assert "client_secret" not in response.json()


@pytest.mark.parametrize(
    "body, error",
    [
        ({"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata"),
        ({"redirect_uris": [5]}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb"], "claims_redirect_uris": ["not a uri"]}, "invalid_redirect_uri"),
        (
            {"redirect_uris": ["https://a.example/cb"], "claims_redirect_uris": "https://a.example/c"},
            "invalid_client_metadata",
        ),
        ({"grant_types": ["password"], "redirect_uris": ["https://a.example/cb"]}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code"]}, "invalid_redirect_uri"),
        (
            {"token_endpoint_auth_method": "private_key_jwt", "redirect_uris": ["https://a.example/cb"]},
            "invalid_client_metadata",
        ),
        ({"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"scope": ["a"], "redirect_uris": ["https://a.example/cb"]}, "invalid_client_metadata"),
        ({"client_name": {"x": 1}, "redirect_uris": ["https://a.example/cb"]}, "invalid_client_metadata"),
        ({"jwks": {"keys": 5}, "redirect_uris": ["https://a.example/cb"]}, "invalid_client_metadata"),
        ([{"redirect_uris": ["https://a.example/cb"]}], "invalid_request"),
        ({}, "invalid_request"),
    ],
)
def test_dynamic_registration_errors_O_35(http, body, error):
    response = http.post("/register", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


@pytest.mark.parametrize("content", [b"", b"not json", b"[" * 5000, b"\xff\xfe", b'{"a": NaN}'])
def test_dynamic_registration_with_unreadable_bodies_O_35(http, content):
    response = http.post("/register", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
