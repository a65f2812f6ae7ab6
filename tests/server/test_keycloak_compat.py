"""Keycloak's layout and grant extensions (issue 16), driven by the real clients, unchanged:
``python-keycloak``'s ``KeycloakUMA`` / ``KeycloakOpenID`` against a served app with
``keycloak_compat = true`` on the session's database (the standard live server, on the same
database, has it off and shows the same data through ``/uma/...``)."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from keycloak import KeycloakOpenID, KeycloakOpenIDConnection, KeycloakUMA
from keycloak.exceptions import KeycloakGetError, KeycloakPostError
from keycloak.uma_permissions import UMAPermission

from tests.server.grant_support import ID_TOKEN, IDP_AUDIENCE, IDP_ISSUER, UMA_GRANT, idp  # noqa: F401
from tests.support.server import serve_app, unique, wait_for

REALM = "uma"


@pytest.fixture(scope="module")
def kc(database_url, idp, tmp_path_factory) -> Iterator[str]:  # noqa: F811
    """An app serving Keycloak's layout (realm ``uma``) on the session's database."""
    config = {
        "database_url": database_url,
        "instance_path": str(tmp_path_factory.mktemp("kc-instance")),
        "keycloak_compat": True,
        "rpt_format": "jwt",
        "purge_interval": 0,
        "lockout_address_attempts": 0,
        "trusted_issuers": [
            {"issuer": IDP_ISSUER, "jwks_file": str(idp.jwks_file), "audience": IDP_AUDIENCE, "algorithms": ["RS256"]}
        ],
    }
    with serve_app(config) as url:
        yield url


class Realm:
    """One owner, a Keycloak-style resource server client (confidential, client credentials and
    the UMA grant; its client-credentials PATs are the owner's), a requesting party."""

    def __init__(self, url: str, make_user, make_client, pat_for) -> None:
        self.url = url
        self.owner = make_user()
        self.bob = make_user(claims={"email": unique("bob") + "@example.org"})
        self.rs = make_client(
            owner=self.owner.username,
            grant_types=["client_credentials", UMA_GRANT, "refresh_token"],
            scope="uma_protection",
            token_endpoint_auth_method="client_secret_post",
        )
        self.connection = KeycloakOpenIDConnection(
            server_url=url, realm_name=REALM, client_id=self.rs.client_id, client_secret_key=self.rs.client_secret
        )
        self.uma = KeycloakUMA(connection=self.connection)
        self.openid = KeycloakOpenID(
            server_url=url, realm_name=REALM, client_id=self.rs.client_id, client_secret_key=self.rs.client_secret
        )
        # An access token this AS issued to the RS's client for bob (as a sign-in at the client would give).
        self.bob_token = pat_for(self.bob.username, self.rs, scope="").token
        self.http = httpx.Client(base_url=url, timeout=30)

    def put_policy(self, text: str) -> None:
        r = self.http.put(
            "/owner/policy",
            content=text.encode(),
            auth=(self.owner.username, self.owner.password),
            headers={"Content-Type": "text/plain"},
        )
        assert r.status_code == 200, r.text

    def owner_text(self) -> str:
        r = self.http.get("/owner/policy", auth=(self.owner.username, self.owner.password))
        assert r.status_code == 200, r.text
        return r.json()["text"]

    def album(self, **extra: Any) -> dict[str, Any]:
        body = {"name": unique("album"), "type": "photo-album", "resource_scopes": ["view", "edit"], **extra}
        return self.uma.resource_set_create(body)


@pytest.fixture()
def realm(kc, make_user, make_client, pat_for) -> Iterator[Realm]:
    r = Realm(kc, make_user, make_client, pat_for)
    yield r
    r.http.close()


def test_realm_discovery_points_into_the_realm_G04(kc) -> None:
    """The realm's uma2- and openid-configuration, and RFC 8414's inserted well-known URL."""
    base = f"{kc}/realms/{REALM}"
    with httpx.Client(base_url=kc) as http:
        docs = [
            http.get(f"/realms/{REALM}/.well-known/uma2-configuration"),
            http.get(f"/realms/{REALM}/.well-known/openid-configuration"),
            http.get(f"/.well-known/oauth-authorization-server/realms/{REALM}"),
        ]
        assert http.get("/realms/other/.well-known/uma2-configuration").status_code == 404
        standard = http.get("/.well-known/uma2-configuration").json()
    for r in docs:
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["issuer"] == base
        assert doc["token_endpoint"] == base + "/protocol/openid-connect/token"
        assert doc["introspection_endpoint"] == base + "/protocol/openid-connect/token/introspect"
        assert doc["jwks_uri"] == base + "/protocol/openid-connect/certs"
        assert doc["resource_registration_endpoint"] == base + "/authz/protection/resource_set"
        assert doc["permission_endpoint"] == base + "/authz/protection/permission"
        assert doc["policy_endpoint"] == base + "/authz/protection/uma-policy"
    assert standard["issuer"] == kc and standard["token_endpoint"] == kc + "/token"


def test_realm_urls_are_404_when_disabled(http) -> None:
    """The standard live server (keycloak_compat off): none of the realm's URLs exists."""
    for path in (
        f"/realms/{REALM}/.well-known/uma2-configuration",
        f"/.well-known/oauth-authorization-server/realms/{REALM}",
        f"/realms/{REALM}/protocol/openid-connect/certs",
        f"/realms/{REALM}",
    ):
        assert http.get(path).status_code == 404, path
    assert (
        http.post(f"/realms/{REALM}/protocol/openid-connect/token", data={"grant_type": UMA_GRANT}).status_code == 404
    )
    assert http.post(f"/realms/{REALM}/authz/protection/resource_set", json={}).status_code == 404
    assert http.get(f"/realms/{REALM}/authz/protection/uma-policy").status_code == 404
    assert http.post(f"/realms/{REALM}/authz/protection/permission", json={}).status_code == 404


def test_openid_scope_gets_a_pat_only_on_the_realm_F03(realm, http) -> None:
    """python-keycloak asks client credentials with ``scope=openid``: a PAT at the realm, refused
    (invalid_scope) at the standard token endpoint, which is unchanged."""
    token = realm.openid.token(grant_type="client_credentials")
    assert "uma_protection" in token["scope"].split()
    r = http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "openid"},
        auth=(realm.rs.client_id, realm.rs.client_secret),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_keycloak_uma_resource_crud_same_data_F22_F26(realm, http) -> None:
    """Create 201 (representation with _id), read, update 204, list with Keycloak's filters,
    delete 204 — and the standard surface sees the same resource."""
    created = realm.album(uris=["/albums/7"], attributes={"colour": ["red"]})
    rid = created["_id"]
    assert created["name"].startswith("album-")
    pat = realm.connection.token["access_token"]
    standard = http.get(f"/uma/resources/{rid}", headers={"Authorization": f"Bearer {pat}"})
    assert standard.status_code == 200 and standard.json()["resource_scopes"] == ["view", "edit"]
    assert standard.json()["uris"] == ["/albums/7"]

    read = realm.uma.resource_set_read(rid)
    assert read["_id"] == rid and [s["name"] for s in read["resource_scopes"]] == ["view", "edit"]
    assert read["owner"]["name"] == realm.owner.username

    other = realm.album(type="document", uris=["/docs/{id}"])
    assert realm.uma.resource_set_update(rid, {**read, "name": read["name"] + "-renamed"}) == {}
    assert realm.uma.resource_set_read(rid)["name"] == read["name"] + "-renamed"

    ids = realm.uma.resource_set_list_ids
    assert set(ids()) == {rid, other["_id"]}
    assert ids(name=read["name"] + "-renamed", exact_name=True) == [rid]
    assert ids(name=read["name"], exact_name=True) == []
    assert ids(name="RENAMED") == [rid]  # a part of the name, any case
    assert ids(uri="/albums/7") == [rid]
    assert ids(uri="/docs/42") == []
    assert ids(uri="/docs/42", matchingUri=True) == [other["_id"]]
    assert ids(resource_type="document") == [other["_id"]]
    assert ids(scope="edit", resource_type="photo-album") == [rid]
    assert set(ids(owner=realm.owner.username)) == {rid, other["_id"]}
    assert ids(owner="someone-else") == []
    first, rest = ids(maximum=1), ids(first=1)
    assert len(first) == 1 and len(rest) == 1 and set(first + rest) == {rid, other["_id"]}
    assert {r["_id"] for r in realm.uma.resource_set_list()} == {rid, other["_id"]}

    assert realm.uma.resource_set_delete(rid) == {}
    assert http.get(f"/uma/resources/{rid}", headers={"Authorization": f"Bearer {pat}"}).status_code == 404
    with pytest.raises(KeycloakGetError) as gone:
        realm.uma.resource_set_read(rid)
    assert gone.value.response_code == 404


def test_resource_of_another_owner_is_refused(realm) -> None:
    """A resource server cannot register a resource for someone its PAT does not act for."""
    with pytest.raises(KeycloakPostError) as info:
        realm.uma.resource_set_create({"name": "x", "resource_scopes": ["view"], "owner": "someone-else"})
    assert info.value.response_code == 400


def test_ticket_then_standard_grant_with_a_pushed_claim_token_G15_G16(realm, idp) -> None:  # noqa: F811
    """KeycloakUMA asks a ticket (by resource name); the client redeems it at the realm's token
    endpoint with a claim token; the policy decides as on the standard surface."""
    album = realm.album()
    realm.put_policy(f'permit view on resource "{album["_id"]}" when claims.email == "bob@example.org"')
    ticket = realm.uma.permission_ticket_create([UMAPermission(resource=album["name"], scope="view")])["ticket"]
    rpt = realm.openid.token(
        grant_type=UMA_GRANT,
        ticket=ticket,
        claim_token=idp.token(sub="bob-idp", email="bob@example.org"),
        claim_token_format=ID_TOKEN,
    )
    # The resource server introspects with its PAT as the bearer (Keycloak's requesting_party_token hint).
    pat = realm.connection.token["access_token"]
    info = realm.openid.introspect(pat, rpt=rpt["access_token"], token_type_hint="requesting_party_token")
    assert info["active"] is True and info["permissions"][0]["resource_id"] == album["_id"]
    decoded = realm.openid.decode_token(rpt["access_token"])  # verified with the realm's certs
    # ... and with the realm document's public_key, as older Keycloak clients do.
    from jwcrypto import jwk

    pem = f"-----BEGIN PUBLIC KEY-----\n{realm.openid.public_key()}\n-----END PUBLIC KEY-----"
    assert realm.openid.decode_token(rpt["access_token"], key=jwk.JWK.from_pem(pem.encode()))["permissions"]
    assert [p["resource_id"] for p in decoded["permissions"]] == [album["_id"]]
    assert decoded["permissions"][0]["resource_scopes"] == ["view"]

    ticket = realm.uma.permission_ticket_create([UMAPermission(resource=album["name"], scope="view")])["ticket"]
    with pytest.raises(KeycloakPostError) as info_denied:
        realm.openid.token(
            grant_type=UMA_GRANT,
            ticket=ticket,
            claim_token=idp.token(sub="eve", email="eve@example.org"),
            claim_token_format=ID_TOKEN,
        )
    assert info_denied.value.response_code == 403


def test_permissions_check_and_has_uma_access_by_bearer_token(realm) -> None:
    """``permission=<resource>#<scope>`` without a ticket, the party named by its bearer token,
    ``response_mode=decision`` and ``permissions``; same policy, same decision."""
    album = realm.album()
    realm.put_policy(f'permit view on resource "{album["_id"]}" when claims.sub == "{realm.bob.username}"')
    view = UMAPermission(resource=album["name"], scope="view")
    edit = UMAPermission(resource=album["name"], scope="edit")
    assert realm.uma.permissions_check(realm.bob_token, [view]) is True
    assert realm.uma.permissions_check(realm.bob_token, [edit]) is False
    assert realm.uma.permissions_check(realm.bob_token, [UMAPermission(resource=album["_id"], scope="view")]) is True

    granted = realm.openid.uma_permissions(realm.bob_token, f"{album['name']}#view")
    assert granted == [{"rsid": album["_id"], "rsname": album["name"], "scopes": ["view"]}]
    assert realm.openid.has_uma_access(realm.bob_token, f"{album['name']}#view").is_authorized
    refused = realm.openid.has_uma_access(realm.bob_token, f"{album['name']}#edit")
    assert refused.is_logged_in and not refused.is_authorized
    # Two permissions (python-keycloak repeats the parameter): the policy grants one, so not both.
    both = realm.openid.has_uma_access(realm.bob_token, {f"{album['name']}#view", f"{album['name']}#edit"})
    assert not both.is_authorized and both.missing_permissions == {f"{album['name']}#edit"}
    unknown = realm.openid.has_uma_access("not-a-token-" + secrets.token_hex(8), f"{album['name']}#view")
    assert not unknown.is_logged_in and not unknown.is_authorized


def test_ticketless_permission_without_response_mode_is_an_rpt(realm) -> None:
    """``permission`` + ``audience`` with no ``response_mode``: an RPT, as Keycloak answers."""
    album = realm.album()
    realm.put_policy(f'permit view on resource "{album["_id"]}" when claims.sub == "{realm.bob.username}"')
    r = realm.http.post(
        f"/realms/{REALM}/protocol/openid-connect/token",
        data={"grant_type": UMA_GRANT, "permission": f"{album['_id']}#view", "audience": realm.rs.client_id},
        headers={"Authorization": f"Bearer {realm.bob_token}"},
    )
    assert r.status_code == 200, r.text
    rpt = r.json()["access_token"]
    assert realm.openid.decode_token(rpt, validate=False)["permissions"][0]["resource_scopes"] == ["view"]


def test_ticketless_errors_are_clear(realm) -> None:
    album = realm.album()
    url = f"/realms/{REALM}/protocol/openid-connect/token"
    bearer = {"Authorization": f"Bearer {realm.bob_token}"}
    r = realm.http.post(
        url,
        data={"grant_type": UMA_GRANT, "permission": "nothing#view", "audience": realm.rs.client_id},
        headers=bearer,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_resource"
    r = realm.http.post(
        url,
        data={"grant_type": UMA_GRANT, "permission": f"{album['_id']}#fly", "audience": realm.rs.client_id},
        headers=bearer,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = realm.http.post(url, data={"grant_type": UMA_GRANT, "permission": f"{album['_id']}#view"}, headers=bearer)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = realm.http.post(url, data={"grant_type": UMA_GRANT, "response_mode": "nope", "permission": "x"}, headers=bearer)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = realm.http.post(
        url, data={"grant_type": UMA_GRANT, "permission": "x"}, headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_client_secret_post_at_the_standard_introspection_O20(realm, http) -> None:
    """Client credentials in the form (as Keycloak's clients send them) authenticate at
    ``/uma/introspect`` too: the client learns about its own token."""
    r = http.post(
        "/uma/introspect",
        data={"client_id": realm.rs.client_id, "client_secret": realm.rs.client_secret, "token": realm.bob_token},
    )
    assert r.status_code == 200 and r.json()["active"] is True and r.json()["sub"] == realm.bob.username


def test_uma_policy_endpoint_writes_rules_in_the_owners_text(realm, engine) -> None:
    """KeycloakUMA's policy calls: each policy is a labelled share rule of the owner's text, a
    new version each time, shown as a share on the owner's sharing page; the grant decides with it."""
    from sqlmodel import Session

    from app import owner_service
    from app.models import Resource

    album = realm.album()
    realm.put_policy(
        '# the owner\'s own rule stays as written\npermit edit on resource "elsewhere" when claims.sub == "x"\n'
    )
    owner = (realm.owner.username, realm.owner.password)
    versions = len(realm.http.get("/owner/policy/versions", auth=owner).json()["versions"])
    carol = unique("carol")
    created = realm.uma.policy_resource_create(
        album["_id"],
        {"name": "Family", "description": "my family may view", "scopes": ["view"], "users": [realm.bob.username]},
    )
    pid = created["id"]
    assert created["name"] == "Family" and created["scopes"] == ["view"] and created["users"] == [realm.bob.username]
    text = realm.owner_text()
    assert f"# label: uma-policy-{pid}" in text and 'permit edit on resource "elsewhere"' in text
    assert realm.uma.permissions_check(realm.bob_token, [UMAPermission(resource=album["_id"], scope="view")]) is True
    assert len(realm.http.get("/owner/policy/versions", auth=owner).json()["versions"]) == versions + 1
    with Session(engine) as session:  # what the owner's sharing page shows (app/web/sharing.py)
        resource = session.get(Resource, album["_id"])
        shown = owner_service.shares(session, realm.owner.username, resource)["shares"]
    assert [(s.person, s.scopes) for s in shown] == [(realm.bob.username, ("view",))]

    listed = realm.uma.policy_query(resource=album["_id"])
    assert [p["id"] for p in listed] == [pid]
    pat = {"Authorization": f"Bearer {realm.connection.token['access_token']}"}
    one = realm.http.get(f"/realms/{REALM}/authz/protection/uma-policy/{pid}", headers=pat)
    assert one.status_code == 200 and one.json() == listed[0] and one.json()["resources"] == [album["_id"]]
    assert realm.uma.policy_query(name="famil") == listed
    assert realm.uma.policy_query(resource=album["_id"], scope="edit") == []

    assert (
        realm.uma.policy_update(
            pid, {"name": "Family", "scopes": ["view", "edit"], "users": [realm.bob.username, carol]}
        )
        == b""
    )
    [updated] = realm.uma.policy_query(resource=album["_id"])
    assert updated["scopes"] == ["view", "edit"] and updated["users"] == [realm.bob.username, carol]
    assert realm.uma.permissions_check(realm.bob_token, [UMAPermission(resource=album["_id"], scope="edit")]) is True

    assert realm.uma.policy_delete(pid) == {}
    assert realm.uma.policy_query(resource=album["_id"]) == []
    text = realm.owner_text()
    assert "uma-policy" not in text and 'permit edit on resource "elsewhere"' in text
    assert realm.uma.permissions_check(realm.bob_token, [UMAPermission(resource=album["_id"], scope="view")]) is False


def test_uma_policy_refuses_what_has_no_share_form(realm) -> None:
    album = realm.album()
    for body in (
        {"name": "x", "scopes": ["view"], "roles": ["manager"]},
        {"name": "x", "scopes": ["view"]},
        {"name": "x", "scopes": ["fly"], "users": ["bob"]},
        {"name": "two\nlines", "scopes": ["view"], "users": ["bob"]},
    ):
        with pytest.raises(KeycloakPostError) as info:
            realm.uma.policy_resource_create(album["_id"], body)
        assert info.value.response_code == 400, body
    with pytest.raises(KeycloakPostError) as info:
        realm.uma.policy_resource_create("no-such-resource", {"scopes": ["view"], "users": ["bob"]})
    assert info.value.response_code == 404


def test_requests_oauthlib_uma_bearer_mode_G14(realm, monkeypatch) -> None:
    """``requests-oauthlib-uma``'s UMA2Session, as shipped: the resource server answers 401 with
    an UMA challenge naming the realm; the session gets an RPT at the realm's token endpoint with
    the user's access token as its Bearer credential, and the retried request succeeds."""
    from requests_oauthlib_uma import UMA2Session
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request as WsgiRequest
    from werkzeug.wrappers import Response as WsgiResponse

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test servers speak plain HTTP on 127.0.0.1
    album = realm.album()
    realm.put_policy(f'permit view on resource "{album["_id"]}" when claims.sub == "{realm.bob.username}"')
    pat = realm.connection.token["access_token"]

    @WsgiRequest.application
    def resource_server(req: WsgiRequest) -> WsgiResponse:
        rpt = req.headers.get("Authorization", "").removeprefix("Bearer ")
        info = realm.openid.introspect(pat, rpt=rpt, token_type_hint="requesting_party_token") if rpt else {}
        if any(
            p["resource_id"] == album["_id"] and "view" in p["resource_scopes"] for p in info.get("permissions", [])
        ):
            return WsgiResponse("the album")
        ticket = realm.uma.permission_ticket_create([UMAPermission(resource=album["name"], scope="view")])["ticket"]
        challenge = f'UMA realm="{REALM}", as_uri="{realm.url}/realms/{REALM}", ticket="{ticket}"'
        return WsgiResponse("", status=401, headers={"WWW-Authenticate": challenge})

    server = make_server("127.0.0.1", 0, resource_server, threaded=True)
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        session = UMA2Session(
            client_id=realm.rs.client_id, token={"access_token": realm.bob_token, "token_type": "Bearer"}
        )
        r = session.get(f"http://127.0.0.1:{server.port}/album")
        assert r.status_code == 200 and r.text == "the album"
        assert session.token["access_token"] != realm.bob_token  # now the RPT
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_bearer_jwt_of_a_trusted_issuer_names_the_party(realm, idp) -> None:  # noqa: F811
    """A trusted issuer's JWT as the bearer (the client authenticating in the form): its claims
    are the party's, verified as a pushed claim token would be; an untrusted one is 401."""
    album = realm.album()
    realm.put_policy(f'permit view on resource "{album["_id"]}" when claims.email == "dora@example.org"')
    url = f"/realms/{REALM}/protocol/openid-connect/token"
    form = {
        "grant_type": UMA_GRANT,
        "permission": f"{album['_id']}#view",
        "audience": realm.rs.client_id,
        "response_mode": "decision",
        "client_id": realm.rs.client_id,
        "client_secret": realm.rs.client_secret,
    }
    jwt_of = idp.token(sub="dora", email="dora@example.org")
    r = realm.http.post(url, data=form, headers={"Authorization": f"Bearer {jwt_of}"})
    assert r.status_code == 200 and r.json() == {"result": True}, r.text
    other = idp.token(sub="eve", email="eve@example.org")
    r = realm.http.post(url, data=form, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 403 and r.json() == {"error": "access_denied", "error_description": "request_denied"}
    forged = idp.token(sub="dora", email="dora@example.org", issuer="https://not-trusted.example")
    r = realm.http.post(url, data=form, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"


def test_parse_permissions_reads_keycloaks_forms() -> None:
    from authlib.oauth2.rfc6749.errors import InvalidRequestError

    from app.keycloak_compat.grant import parse_permissions

    assert parse_permissions(["A#x", "B", "C#y,z"]) == [("A", ["x"]), ("B", []), ("C", ["y", "z"])]
    assert parse_permissions(["Resource A#Scope A, Scope B", "r2#s"]) == [
        ("Resource A", ["Scope A", "Scope B"]),
        ("r2", ["s"]),
    ]
    assert parse_permissions(["a#x,b#y"]) == [("a", ["x"]), ("b", ["y"])]
    with pytest.raises(InvalidRequestError, match="resource"):
        parse_permissions(["#x"])
    with pytest.raises(InvalidRequestError, match="ticket"):
        parse_permissions([])


def test_submit_request_reaches_the_owner_through_an_ask_rule_G42(realm) -> None:
    """``submit_request=true`` without a ticket: the owner's ``ask`` rule puts the request before
    the owner (UMA's request_submitted, with the ticket to poll with); the owner's approval
    then grants it to the same party."""
    album = realm.album()
    realm.put_policy(f'ask view on resource "{album["_id"]}" when claims.sub == "{realm.bob.username}"')
    url = f"/realms/{REALM}/protocol/openid-connect/token"
    bearer = {"Authorization": f"Bearer {realm.bob_token}"}
    form = {"grant_type": UMA_GRANT, "permission": f"{album['_id']}#view", "audience": realm.rs.client_id}
    r = realm.http.post(url, data={**form, "submit_request": "true"}, headers=bearer)
    assert r.status_code == 403 and r.json()["error"] == "request_submitted" and r.json()["ticket"]
    owner = (realm.owner.username, realm.owner.password)
    pending = realm.http.get("/owner/requests", auth=owner).json()["requests"]
    assert [(p["resource_id"], p["requesting_party"]) for p in pending] == [(album["_id"], realm.bob.username)]
    assert realm.http.post(f"/owner/requests/{pending[0]['id']}/approve", auth=owner, json={}).status_code == 200
    r = realm.http.post(url, data={**form, "response_mode": "decision"}, headers=bearer)
    assert r.status_code == 200 and r.json() == {"result": True}, r.text


def _realm_export(client_id: str, alice: str, bob: str) -> tuple[dict[str, Any], str, str]:
    """A realm export as Keycloak writes it (the parts the import reads), with fresh resource ids."""
    album_id, default_id = str(uuid.uuid4()), str(uuid.uuid4())
    settings = {
        "resources": [
            {
                "_id": album_id,
                "name": "Alice Album",
                "type": "album",
                "owner": {"id": str(uuid.uuid4()), "name": alice},
                "ownerManagedAccess": True,
                "uris": ["/album/1"],
                "scopes": [{"name": "view"}, {"name": "delete"}],
            },
            {
                "_id": default_id,
                "name": "Default Resource",
                "owner": {"id": str(uuid.uuid4()), "name": client_id},
                "uris": ["/*"],
                "scopes": [{"name": "view"}],
            },
        ],
        "policies": [
            {"name": "Only Bob", "type": "user", "logic": "POSITIVE", "config": {"users": json.dumps([bob])}},
            {"name": "Admins", "type": "role", "logic": "POSITIVE", "config": {"roles": '[{"id":"admin"}]'}},
            {
                "name": "Album view",
                "type": "scope",
                "decisionStrategy": "AFFIRMATIVE",
                "config": {
                    "resources": '["Alice Album"]',
                    "scopes": '["view"]',
                    "applyPolicies": '["Only Bob", "Admins"]',
                },
            },
            {
                "name": "Default Permission",
                "type": "resource",
                "config": {"resources": '["Default Resource"]', "applyPolicies": '["Admins"]'},
            },
        ],
    }
    export = {"realm": "photoz", "clients": [{"clientId": client_id, "authorizationSettings": settings}]}
    return export, album_id, default_id


def test_keycloak_import_moves_resources_and_permissions(
    kc, cli_env, capsys, tmp_path, make_user, make_client, pat_for, engine
) -> None:
    """``uma keycloak import``: the dry run prints the plan; ``--apply`` registers the resources
    under their Keycloak ids and appends the translatable permissions to the owner's text as
    rules; what has no faithful translation is listed, not written. The grant then decides with
    them (python-keycloak's permissions_check against the realm)."""
    from sqlmodel import Session

    from app.cli import main
    from app.models import Resource

    alice, bob = make_user(), make_user()
    rs = make_client(owner=alice.username, grant_types=["client_credentials", UMA_GRANT], scope="uma_protection")
    export, album_id, default_id = _realm_export("photoz", alice.username, bob.username)
    path = tmp_path / "realm-export.json"
    path.write_text(json.dumps(export))

    assert main(["keycloak", "import", str(path), "--client", "photoz", "--rs", rs.client_id]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["owner"]) for r in dry["resources"]] == [(album_id, alice.username), (default_id, rs.client_id)]
    assert "applied" not in dry and list(dry["rules"]) == [alice.username]
    assert {s["reason"] for s in dry["skipped"]} == {
        "a role policy has no faithful translation; write it as a rule by hand"
    }
    with Session(engine) as session:
        assert session.get(Resource, album_id) is None  # a dry run changes nothing

    assert main(["keycloak", "import", str(path), "--client", "photoz", "--rs", rs.client_id, "--apply"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["applied"]["created"] == [album_id, default_id]
    with Session(engine) as session:
        album = session.get(Resource, album_id)
        assert album is not None and (album.owner, album.rs_client_id) == (alice.username, rs.client_id)
        assert album.resource_scopes == ["view", "delete"] and album.extra["uris"] == ["/album/1"]

    connection = KeycloakOpenIDConnection(
        server_url=kc, realm_name=REALM, client_id=rs.client_id, client_secret_key=rs.client_secret
    )
    uma = KeycloakUMA(connection=connection)
    bob_token = pat_for(bob.username, rs, scope="").token
    view = UMAPermission(resource="Alice Album", scope="view")
    assert wait_for(lambda: uma.permissions_check(bob_token, [view]), "the imported rule in use")
    assert uma.permissions_check(bob_token, [UMAPermission(resource="Alice Album", scope="delete")]) is False

    # Again: the resources are there already (reported, not changed).
    assert main(["keycloak", "import", str(path), "--client", "photoz", "--rs", rs.client_id, "--apply"]) == 0
    again = json.loads(capsys.readouterr().out)["applied"]
    assert again["created"] == [] and again["already_registered"] == [album_id, default_id]
    assert again["policy_versions"] == {}  # the rule is in alice's text already: no new version
    with Session(engine) as session:
        from app.owner_service import policy_text

        text, _version = policy_text(session, alice.username)
    assert text.count(f'on resource "{album_id}"') == 1 and "# Imported from Keycloak: Album view / Only Bob" in text


def test_keycloak_import_refuses_what_is_not_a_realm_export(cli_env, capsys, tmp_path) -> None:
    from app.cli import main

    path = tmp_path / "x.json"
    path.write_text('{"realm": "r"}')
    assert main(["keycloak", "import", str(path), "--client", "c", "--rs", "c"]) == 2
    assert "not a realm export" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(["keycloak", "import", str(path), "--client", "c", "--rs", "c"]) == 2


def test_bearer_token_of_another_client_is_refused(realm, make_client) -> None:
    """With client credentials in the request, the bearer token must have been issued to that
    client: a token names its user to its own client only."""
    album = realm.album()
    other = make_client(grant_types=[UMA_GRANT], token_endpoint_auth_method="client_secret_post")
    r = realm.http.post(
        f"/realms/{REALM}/protocol/openid-connect/token",
        data={
            "grant_type": UMA_GRANT,
            "permission": f"{album['_id']}#view",
            "audience": realm.rs.client_id,
            "client_id": other.client_id,
            "client_secret": other.client_secret,
        },
        headers={"Authorization": f"Bearer {realm.bob_token}"},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_bad_input_is_a_clear_4xx_never_a_500(realm) -> None:
    album = realm.album()
    pat = {"Authorization": f"Bearer {realm.connection.token['access_token']}"}
    base = f"/realms/{REALM}/authz/protection"
    cases = [
        realm.http.get(f"{base}/resource_set", params={"first": "abc"}, headers=pat),
        realm.http.get(f"{base}/resource_set", params={"first": "-1"}, headers=pat),
        realm.http.post(f"{base}/resource_set", json=["not", "an", "object"], headers=pat),
        realm.http.post(f"{base}/resource_set", json={"name": "x", "resource_scopes": [{"nom": 1}]}, headers=pat),
        realm.http.put(
            f"{base}/resource_set/{album['_id']}", content=b"{", headers={**pat, "Content-Type": "application/json"}
        ),
        realm.http.post(f"{base}/uma-policy/{album['_id']}", json="text", headers=pat),
        realm.http.post(f"{base}/uma-policy/{album['_id']}", json={"users": "bob"}, headers=pat),
        realm.http.put(f"{base}/uma-policy/0123456789abcdef", json={"users": ["bob"]}, headers=pat),
        realm.http.get(f"{base}/uma-policy", params={"max": "x"}, headers=pat),
        realm.http.post(f"{base}/permission", json={"resource_id": album["_id"]}, headers=pat),
        realm.http.post(f"/realms/{REALM}/protocol/openid-connect/token", data={"grant_type": UMA_GRANT}),
        realm.http.post(
            f"/realms/{REALM}/protocol/openid-connect/token",
            data={"grant_type": UMA_GRANT, "permission": "a\\x00b", "audience": "a" * 300},
            headers={"Authorization": f"Bearer {realm.bob_token}"},
        ),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text)
        assert r.json().get("error"), r.text
    assert realm.http.get(f"{base}/resource_set", headers={}).status_code == 401
