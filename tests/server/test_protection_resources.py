"""Resource registration endpoint over HTTP (FedAuthz §3.2; F-14…F-30, G-02)."""

from __future__ import annotations

import pytest

from tests.support.server import unique

RREG = "/uma/resources"


@pytest.fixture()
def alice() -> str:
    return unique("alice")


@pytest.fixture()
def pat(alice, pat_for):
    return pat_for(alice)


def create(http, pat, body) -> str:
    response = http.post(RREG + "/", headers=pat.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()["_id"]


def test_create_answers_201_location_and_id_F_22_A9(http, pat, live_server):
    response = http.post(
        RREG + "/",
        headers=pat.headers,
        json={"resource_scopes": ["view", "https://rs.example.net/scopes/print"], "name": "Album"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"_id"} and body["_id"]
    assert response.headers["location"] == f"{live_server.url}{RREG}/{body['_id']}"
    assert response.headers["content-type"].startswith("application/json")


def test_create_without_trailing_slash_also_works(http, pat):
    response = http.post(RREG, headers=pat.headers, json={"resource_scopes": []})
    assert response.status_code == 201


def test_read_returns_the_description_with_id_and_unknown_members_G_02_F_23(http, pat):
    description = {
        "resource_scopes": ["view", "edit"],
        "name": "Summer",
        "name#de": "Sommer",
        "type": "https://rs.example.net/types/album",
        "description": "photos",
        "icon_uri": "https://rs.example.net/i.png",
        "x-ext": {"nested": [1, 2]},
    }
    rid = create(http, pat, description)
    response = http.get(f"{RREG}/{rid}", headers=pat.headers)
    assert response.status_code == 200
    assert response.json() == {**description, "_id": rid}
    assert response.headers["cache-control"] == "no-store"


def test_update_replaces_the_whole_description_F_24(http, pat):
    rid = create(http, pat, {"resource_scopes": ["view"], "name": "Old", "description": "gone", "x": 1})
    response = http.put(f"{RREG}/{rid}", headers=pat.headers, json={"resource_scopes": ["view", "print"], "type": "t"})
    assert response.status_code == 200 and response.json() == {"_id": rid}
    assert http.get(f"{RREG}/{rid}", headers=pat.headers).json() == {
        "resource_scopes": ["view", "print"],
        "type": "t",
        "_id": rid,
    }


def test_delete_answers_204_then_not_found_F_25_F_27(http, pat):
    rid = create(http, pat, {"resource_scopes": ["view"]})
    deleted = http.delete(f"{RREG}/{rid}", headers=pat.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    for call in (http.get, http.delete):
        gone = call(f"{RREG}/{rid}", headers=pat.headers)
        assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    assert http.put(f"{RREG}/{rid}", headers=pat.headers, json={"resource_scopes": []}).status_code == 404


def test_list_returns_ids_of_the_pats_owner_and_rs_only_F_26_A8(http, alice, pat, pat_for):
    mine = [create(http, pat, {"resource_scopes": ["a"]}) for _ in range(3)]
    same_owner_other_rs = pat_for(alice)
    create(http, same_owner_other_rs, {"resource_scopes": ["a"]})
    other_owner_same_rs = pat_for(unique("mallory"), rs=pat.rs)
    create(http, other_owner_same_rs, {"resource_scopes": ["a"]})
    response = http.get(RREG + "/", headers=pat.headers)
    assert response.status_code == 200 and sorted(response.json()) == sorted(mine)
    assert sorted(http.get(RREG, headers=pat.headers).json()) == sorted(mine)


def test_unknown_id_is_404_not_found_F_27(http, pat):
    response = http.get(f"{RREG}/does-not-exist", headers=pat.headers)
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_another_owners_pat_can_neither_read_nor_change_nor_delete_F_05_F_27(http, pat, pat_for):
    rid = create(http, pat, {"resource_scopes": ["view"], "name": "private"})
    mallory = pat_for(unique("mallory"), rs=pat.rs)  # same RS, another owner
    other_rs = pat_for(pat.owner)  # same owner, another RS
    for intruder in (mallory, other_rs):
        assert http.get(f"{RREG}/{rid}", headers=intruder.headers).status_code == 404
        assert http.put(f"{RREG}/{rid}", headers=intruder.headers, json={"resource_scopes": []}).status_code == 404
        assert http.delete(f"{RREG}/{rid}", headers=intruder.headers).status_code == 404
        assert rid not in http.get(RREG, headers=intruder.headers).json()
    assert http.get(f"{RREG}/{rid}", headers=pat.headers).json()["name"] == "private"


@pytest.mark.parametrize(
    "method, path",
    [("PATCH", "/x"), ("POST", "/x"), ("DELETE", "/"), ("PUT", "/"), ("DELETE", ""), ("PATCH", "")],
)
def test_unsupported_methods_are_405_F_28(http, pat, method, path):
    response = http.request(method, RREG + path, headers=pat.headers, json={"resource_scopes": []})
    assert response.status_code == 405
    assert response.json()["error"] == "unsupported_method_type"


def test_no_pat_is_401_with_a_bearer_challenge_without_error_F_03_O_14(http):
    response = http.get(RREG)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'realm="uma"' in challenge and "error=" not in challenge


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer", "Bearer a b", "Bearer \u00e9t\u00e9", "bearer ??"])
def test_bad_pat_is_401_invalid_token_F_03_O_15(http, header):
    response = http.get(RREG, headers={"Authorization": header.encode("utf-8")})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_other_auth_scheme_is_401_challenge(http, pat):
    response = http.get(RREG, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer ")


def test_token_without_uma_protection_is_403_insufficient_scope_F_03_O_15(http, alice, pat_for):
    token = pat_for(alice, scope="view")
    response = http.get(RREG, headers=token.headers)
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="uma_protection"' in challenge


def test_revoked_and_expired_pats_are_invalid_token_F_03(http, alice, pat, engine):
    from sqlalchemy import update
    from sqlmodel import Session

    from app.models import Token
    from app.security import hash_token

    assert http.get(RREG, headers=pat.headers).status_code == 200
    with Session(engine) as session:
        session.execute(update(Token).where(Token.access_token_hash == hash_token(pat.token)).values(expires_at=0))
        session.commit()
    response = http.get(RREG, headers=pat.headers)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "no scopes"},
        {"resource_scopes": "view"},
        {"resource_scopes": [1, 2]},
        {"resource_scopes": [None]},
        {"resource_scopes": [""]},
        {"resource_scopes": ["has space"]},
        {"resource_scopes": ["x" * 600]},
        {"resource_scopes": ["s%d" % i for i in range(300)]},
        {"resource_scopes": [], "name": 5},
        {"resource_scopes": [], "description": ["x"]},
        {"resource_scopes": [], "type": {"a": 1}},
        {"resource_scopes": [], "icon_uri": "not a uri"},
        {"resource_scopes": [], "icon_uri": "javascript:alert(1)"},
        {"resource_scopes": [], "name": "x" * 5000},
        {"resource_scopes": [], "name": "nul\u0000byte"},
        {"resource_scopes": ["a\u0000b"]},
        {"resource_scopes": [], "extra": "nul\u0000"},
        {"resource_scopes": [], "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        [],
        ["view"],
        "resource",
        42,
        None,
    ],
)
def test_malformed_descriptions_are_400_invalid_request_F_14_F_29(http, pat, body):
    for response in (
        http.post(RREG + "/", headers=pat.headers, json=body),
        http.put(f"{RREG}/{create(http, pat, {'resource_scopes': []})}", headers=pat.headers, json=body),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b"", "application/json"),
        (b"{", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b'{"resource_scopes": [NaN]}', "application/json"),
        (b"[" * 100000, "application/json"),
    ],
)
def test_unreadable_bodies_are_400_invalid_request_F_29(http, pat, content, content_type):
    response = http.post(RREG + "/", headers={**pat.headers, "Content-Type": content_type}, content=content)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "content, content_type",
    [(b'{"resource_scopes": []}', "text/plain"), (b"resource_scopes=view", "application/x-www-form-urlencoded")],
)
def test_bodies_of_another_media_type_are_415_naming_json_F_29(http, pat, content, content_type):
    response = http.post(RREG + "/", headers={**pat.headers, "Content-Type": content_type}, content=content)
    assert response.status_code == 415 and response.json()["error"] == "invalid_request"
    assert response.json()["accepted"] == ["application/json"]


def test_huge_body_is_refused_without_500(http, pat):
    big = b'{"resource_scopes": [], "description": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = http.post(RREG + "/", headers={**pat.headers, "Content-Type": "application/json"}, content=big)
    assert response.status_code in (400, 413)
    assert response.json()["error"] == "invalid_request"


def test_user_access_policy_uri_is_returned_when_configured_F_21(live_server, database_url, tmp_path, pat_for):
    from app import create_app

    app = create_app(
        {
            "database_url": database_url,
            "issuer": live_server.url,
            "secret_key": "k",
            "instance_path": str(tmp_path),
            "user_access_policy_uri": "{issuer}/owner/resources/{id}",
        }
    )
    pat = pat_for(unique("bob"))
    client = app.test_client()
    created = client.post(RREG + "/", headers=pat.headers, json={"resource_scopes": ["view"]})
    rid = created.json["_id"]
    assert created.json["user_access_policy_uri"] == f"{live_server.url}/owner/resources/{rid}"
    assert client.get(f"{RREG}/{rid}", headers=pat.headers).json["user_access_policy_uri"].endswith(rid)
    assert (
        client.put(f"{RREG}/{rid}", headers=pat.headers, json={"resource_scopes": []})
        .json["user_access_policy_uri"]
        .endswith(rid)
    )
