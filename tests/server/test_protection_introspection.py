"""Token introspection (F-38…F-42, O-16…O-22) with RPTs issued by ``issue_rpt``,
PATs, unknown and revoked tokens; RPT refresh (G-53, G-54) and revocation (G-56)."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import Session

from app.protection.rpt import introspect_rpt, issue_rpt
from app.security import now
from tests.support.server import serve_app, unique

INTRO = "/uma/introspect"
UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"


#: Access follows the policy: the owner of these tests grants everything, so what is tested is the
#: introspection answer itself (tests/server/test_live_access.py takes grants away).
GRANT_ALL = "permit any scope on any resource"


@pytest.fixture()
def pat(pat_for, make_user, http):
    owner = make_user(unique("alice"))
    uploaded = http.put(
        "/owner/policy",
        content=GRANT_ALL.encode(),
        auth=(owner.username, owner.password),
        headers={"Content-Type": "text/plain"},
    )
    assert uploaded.status_code == 200, uploaded.text
    return pat_for(owner.username)


@pytest.fixture()
def uma_client(make_client):
    return make_client(grant_types=[UMA_GRANT, "refresh_token"], scope="view")


def register(http, pat, scopes) -> str:
    return http.post("/uma/resources/", headers=pat.headers, json={"resource_scopes": scopes}).json()["_id"]


def rpt(app, engine, settings, pat, client, permissions, **kwargs):
    with app.app_context(), Session(engine, expire_on_commit=False) as session:
        return issue_rpt(
            client_id=client.client_id,
            owner=pat.owner,
            rs_client_id=pat.rs.client_id,
            permissions=permissions,
            requesting_party="bob",
            session=session,
            settings=kwargs.pop("use_settings", settings),
            **kwargs,
        )


def introspect(http, pat, token, **extra) -> dict:
    response = http.post(INTRO, headers=pat.headers, data={"token": token, **extra})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def test_active_jwt_rpt_has_permissions_and_no_scope_F_39_F_40(http, app, engine, settings, pat, uma_client):
    rid = register(http, pat, ["view", "edit"])
    issued = rpt(app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}])
    assert issued.token.count(".") == 2  # a JWT
    info = introspect(http, pat, issued.token, token_type_hint="access_token")
    assert info["active"] is True and "scope" not in info
    assert info["client_id"] == uma_client.client_id and info["sub"] == "bob"
    assert info["aud"] == pat.rs.client_id and info["exp"] > info["iat"]
    [perm] = info["permissions"]
    assert perm["resource_id"] == rid and perm["resource_scopes"] == ["view"]
    assert perm["exp"] <= info["exp"] and isinstance(perm["iat"], int)


def test_opaque_rpt_introspects_too_F_38(http, app, engine, settings, pat, uma_client):
    rid = register(http, pat, ["view"])
    opaque = settings.model_copy(update={"rpt_format": "opaque"})
    issued = rpt(
        app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}], use_settings=opaque
    )
    assert "." not in issued.token
    info = introspect(http, pat, issued.token)
    assert info["active"] is True and info["permissions"][0]["resource_id"] == rid


def test_rpt_of_another_rs_is_not_active_F_42(http, app, engine, settings, pat, pat_for, uma_client):
    rid = register(http, pat, ["view"])
    issued = rpt(app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}])
    other_rs = pat_for(pat.owner)
    assert introspect(http, other_rs, issued.token) == {"active": False}


def test_unknown_token_is_only_active_false_O_19(http, pat):
    assert introspect(http, pat, "never-issued") == {"active": False}


def test_expired_rpt_and_rpt_past_a_permission_bound_are_inactive_O_21(http, app, engine, settings, pat, uma_client):
    rid = register(http, pat, ["view", "edit"])
    expired = rpt(
        app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}], lifetime=0
    )
    assert introspect(http, pat, expired.token) == {"active": False}
    other = register(http, pat, ["view"])
    mixed = rpt(
        app,
        engine,
        settings,
        pat,
        uma_client,
        [
            {"resource_id": rid, "resource_scopes": ["view"], "exp": now() - 10},
            {"resource_id": other, "resource_scopes": ["view"]},
        ],
    )
    # The earliest bound of its permissions caps the RPT (test_live_access.py: time-bounded grants).
    assert mixed.row["expires_at"] <= now() - 10
    assert introspect(http, pat, mixed.token) == {"active": False}


def test_deregistered_resources_and_dropped_scopes_disappear_F_30_F_42(http, app, engine, settings, pat, uma_client):
    a = register(http, pat, ["view", "edit"])
    b = register(http, pat, ["view"])
    issued = rpt(
        app,
        engine,
        settings,
        pat,
        uma_client,
        [{"resource_id": a, "resource_scopes": ["view", "edit"]}, {"resource_id": b, "resource_scopes": ["view"]}],
    )
    assert http.put(f"/uma/resources/{a}", headers=pat.headers, json={"resource_scopes": ["view"]}).status_code == 200
    assert http.delete(f"/uma/resources/{b}", headers=pat.headers).status_code == 204
    assert introspect(http, pat, issued.token)["permissions"] == [
        {"resource_id": a, "resource_scopes": ["view"], "iat": issued.row["issued_at"], "exp": issued.row["expires_at"]}
    ]
    assert http.delete(f"/uma/resources/{a}", headers=pat.headers).status_code == 204
    assert introspect(http, pat, issued.token) == {"active": False}


def test_revoked_rpt_is_not_active_G_56_O_31(http, app, engine, settings, pat, uma_client):
    rid = register(http, pat, ["view"])
    issued = rpt(app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}])
    assert introspect(http, pat, issued.token)["active"] is True
    revoked = http.post("/revoke", auth=uma_client.basic_auth, data={"token": issued.token})
    assert revoked.status_code == 200
    assert introspect(http, pat, issued.token) == {"active": False}


def test_tampered_jwt_rpt_is_not_active(http, app, engine, settings, pat, uma_client):
    rid = register(http, pat, ["view"])
    issued = rpt(app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}])
    head, payload, sig = issued.token.split(".")
    assert introspect(http, pat, f"{head}.{payload}.{sig[:-2]}AA") == {"active": False}


def test_introspect_rpt_function_for_both_formats(app, engine, settings, pat, uma_client, http):
    rid = register(http, pat, ["view"])
    for fmt in ("jwt", "opaque"):
        s = settings.model_copy(update={"rpt_format": fmt})
        issued = rpt(
            app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}], use_settings=s
        )
        with app.app_context(), Session(engine) as session:
            info = introspect_rpt(issued.token, rs_client_id=pat.rs.client_id, session=session, settings=s)
            assert info["active"] is True and info["jti"] == issued.row["jti"]
            assert introspect_rpt("nope", session=session, settings=s) is None


def test_pat_introspection_has_the_usual_members_F_41(http, pat, pat_for):
    info = introspect(http, pat, pat.token)
    assert info["active"] is True and info["scope"] == "uma_protection"
    assert info["client_id"] == pat.rs.client_id and info["sub"] == pat.owner and "permissions" not in info
    stranger = pat_for(unique("carol"))
    assert introspect(http, stranger, pat.token) == {"active": False}


def test_client_credentials_alone_learn_nothing_about_rpts_O_17_O_19(http, app, engine, settings, pat, uma_client):
    """Issue 10, point 6: the RS's own client credentials authenticate it, but learn about an RPT
    only with its PAT (or when the operator lists the client); bad ones are 401 invalid_client."""
    rid = register(http, pat, ["view"])
    issued = rpt(app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}])
    assert introspect(http, pat, issued.token)["active"] is True
    basic = http.post(INTRO, auth=pat.rs.basic_auth, data={"token": issued.token})
    assert basic.status_code == 200 and basic.json() == {"active": False}
    # The client's own PAT stays its to introspect with its credentials (F-41).
    own = http.post(INTRO, auth=pat.rs.basic_auth, data={"token": pat.token})
    assert own.json()["active"] is True and own.json()["scope"] == "uma_protection"
    bad = http.post(INTRO, auth=(pat.rs.client_id, "wrong"), data={"token": issued.token})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


@pytest.mark.parametrize("authorization", [None, "Digest username=x", "Bearer", ""])
def test_no_credentials_is_401_with_both_challenges_O_17_O_20(http, authorization):
    """Without a PAT or client credentials: 401, ``WWW-Authenticate: Bearer`` and ``Basic`` (the two
    ways in), no error code in the challenges (RFC 6750 §3.1)."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = http.post(INTRO, headers=headers, data={"token": "x"})
    assert response.status_code == 401
    challenges = response.headers.get_list("www-authenticate")
    if authorization == "Bearer":  # a Bearer header without a token is a malformed PAT
        assert challenges[0].startswith("Bearer ") and 'error="invalid_token"' in challenges[0]
        return
    assert challenges == ['Bearer realm="uma"', 'Basic realm="uma"']
    assert response.json()["error"] == "invalid_client" and response.headers["cache-control"] == "no-store"


def test_pat_of_another_owner_at_the_same_rs_learns_nothing_O_22_F_42(
    http, app, engine, settings, pat, pat_for, make_user, uma_client
):
    """A PAT is for one owner at one RS: the same RS software holding a PAT for another owner is
    not the resource server of this owner's resources."""
    rid = register(http, pat, ["view"])
    issued = rpt(app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}])
    carol = make_user(unique("carol"))
    carols_pat = pat_for(carol.username, rs=pat.rs)
    assert introspect(http, carols_pat, issued.token) == {"active": False}
    assert introspect(http, pat, issued.token)["active"] is True


def test_a_client_listed_by_the_operator_may_introspect_any_rpt_O_17(
    http, app, engine, settings, database_url, tmp_path, pat, make_rs, make_client, uma_client
):
    """``introspection_clients``: a gateway client learns about RPTs of any RS, with its client
    credentials; clients not listed still learn nothing."""
    rid = register(http, pat, ["view"])
    issued = rpt(app, engine, settings, pat, uma_client, [{"resource_id": rid, "resource_scopes": ["view"]}])
    gateway = make_client(grant_types=["client_credentials"])
    other = make_rs()
    config = {
        "database_url": database_url,
        "instance_path": str(tmp_path),
        "introspection_clients": [gateway.client_id],
    }
    with serve_app(config) as url:
        listed = httpx.post(f"{url}{INTRO}", auth=gateway.basic_auth, data={"token": issued.token})
        assert listed.status_code == 200, listed.text
        info = listed.json()
        assert info["active"] is True and info["aud"] == pat.rs.client_id
        assert [p["resource_id"] for p in info["permissions"]] == [rid]
        not_listed = httpx.post(f"{url}{INTRO}", auth=other.basic_auth, data={"token": issued.token})
        assert not_listed.json() == {"active": False}
    # The same client on a server whose operator did not list it: nothing.
    assert http.post(INTRO, auth=gateway.basic_auth, data={"token": issued.token}).json() == {"active": False}


def test_introspection_errors_O_16_O_20(http, pat):
    missing = http.post(INTRO, headers=pat.headers, data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    bad_pat = http.post(INTRO, headers={"Authorization": "Bearer nope"}, data={"token": "x"})
    assert bad_pat.status_code == 401 and bad_pat.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in bad_pat.headers["www-authenticate"]
    assert http.get(INTRO, headers=pat.headers).status_code == 405
    weird_hint = http.post(INTRO, headers=pat.headers, data={"token": "x", "token_type_hint": "pct"})
    assert weird_hint.json() == {"active": False}


def test_rpt_refresh_rotates_and_narrows_to_scope_G_53_G_54(http, app, engine, settings, pat, uma_client):
    rid = register(http, pat, ["view", "edit"])
    issued = rpt(
        app,
        engine,
        settings,
        pat,
        uma_client,
        [{"resource_id": rid, "resource_scopes": ["view", "edit"]}],
        with_refresh_token=True,
    )
    assert issued.refresh_token
    response = http.post(
        "/token",
        auth=uma_client.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": issued.refresh_token, "scope": "view"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "scope" not in body and body["refresh_token"] != issued.refresh_token
    info = introspect(http, pat, body["access_token"])
    assert info["permissions"][0]["resource_scopes"] == ["view"]  # G-54 narrowing
    assert introspect(http, pat, issued.token) == {"active": False}  # old RPT retired
    again = http.post(
        "/token",
        auth=uma_client.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": issued.refresh_token},
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_rpt_refresh_cannot_widen_scope_A15(http, app, engine, settings, pat, uma_client):
    rid = register(http, pat, ["view", "edit"])
    issued = rpt(
        app,
        engine,
        settings,
        pat,
        uma_client,
        [{"resource_id": rid, "resource_scopes": ["view"]}],
        with_refresh_token=True,
    )
    response = http.post(
        "/token",
        auth=uma_client.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": issued.refresh_token, "scope": "edit"},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
