"""Administration from the command line (issue 13 point 1): ``uma client list|show|update|
rotate-secret|delete``, ``uma user list|show|passwd|disable|enable|delete|set-claim``, ``uma token
revoke``, each with ``--json``; unknown ids exit 1 with one line on stderr. The effects are
checked over real HTTP against the served app: a disabled user cannot log in (form, owner API)
and their session and tokens stop; a deleted client's tokens introspect inactive; a rotated
secret replaces the old one. Some commands run as a separate process (``python -m app.cli``):
users and tokens are read at every request, so what one process changes about them counts in
another at once."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import httpx
import pytest
from sqlmodel import Session, select

from app.models import AuthorizationCode, BrowserSession, OAuthClient, Pct, PolicyDocument, Resource, Rpt, Token, User
from app.oauth.tokens import issue_token
from app.protection.rpt import issue_rpt
from app.security import hash_token, new_token, now, verify_password
from tests.pages.pages_support import csrf_of, sign_in
from tests.server.test_cli_server import ROOT, run

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"


def run_json(capsys, *argv: str):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def uma_process(cli_env, *argv: str, stdin: str = "") -> subprocess.CompletedProcess:
    """``uma ARGV`` in a process of its own."""
    env = {**os.environ, **cli_env}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def owner_token(engine, settings, owner: str, scope: str, client_id: str = "owner-app") -> str:
    with Session(engine) as session:
        body, _ = issue_token(
            session,
            settings,
            client_id=client_id,
            subject=owner,
            scope=scope,
            grant_type="authorization_code",
            include_refresh=False,
        )
        session.commit()
    return body["access_token"]


def an_rpt(app, engine, settings, pat, client_id: str, requesting_party: str = "bob") -> str:
    resource = httpx.post(
        f"{settings.issuer}/uma/resources/", headers=pat.headers, json={"resource_scopes": ["view"]}
    ).json()["_id"]
    with app.app_context(), Session(engine, expire_on_commit=False) as session:
        issued = issue_rpt(
            client_id=client_id,
            owner=pat.owner,
            rs_client_id=pat.rs.client_id,
            permissions=[{"resource_id": resource, "resource_scopes": ["view"]}],
            requesting_party=requesting_party,
            session=session,
            settings=settings,
        )
    return issued.token


def introspect(http, pat, token: str) -> dict:
    response = http.post("/uma/introspect", headers=pat.headers, data={"token": token})
    assert response.status_code == 200, response.text
    return response.json()


def grant_all(http, user) -> None:
    r = http.put(
        "/owner/policy",
        content=b"permit any scope on any resource",
        auth=(user.username, user.password),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text


# -- clients ---------------------------------------------------------------------------


def test_client_list_and_show_print_metadata_never_the_secret(capsys, cli_env, make_client, engine):
    client = make_client(grant_types=["client_credentials"], scope="uma_protection")
    listed = run_json(capsys, "client", "list")
    mine = [c for c in listed if c["client_id"] == client.client_id]
    assert len(mine) == 1 and mine[0]["client_name"] == client.row.client_name
    shown = run_json(capsys, "client", "show", client.client_id)
    assert shown == mine[0] and shown["grant_types"] == ["client_credentials"]
    code, out, _ = run(capsys, "client", "show", client.client_id)
    assert code == 0 and f"client_id: {client.client_id}\n" in out and "scope: uma_protection\n" in out
    code, out, _ = run(capsys, "client", "list")
    assert code == 0 and out.startswith("client_id") and client.client_id in out
    with Session(engine) as session:
        digest = session.exec(select(OAuthClient).where(OAuthClient.client_id == client.client_id)).one()
    for text in (json.dumps(listed), json.dumps(shown), out):
        assert client.client_secret not in text and digest.client_secret_hash not in text
        assert "client_secret_hash" not in text and '"client_secret"' not in text


@pytest.mark.parametrize(
    "argv, what",
    [
        (["client", "show", "NOPE"], "no client 'NOPE'"),
        (["client", "update", "NOPE", "--name", "x"], "no client 'NOPE'"),
        (["client", "rotate-secret", "NOPE"], "no client 'NOPE'"),
        (["client", "delete", "NOPE"], "no client 'NOPE'"),
        (["user", "show", "nobody-here"], "no user 'nobody-here'"),
        (["user", "passwd", "nobody-here", "--password-stdin"], "no user 'nobody-here'"),
        (["user", "disable", "nobody-here"], "no user 'nobody-here'"),
        (["user", "enable", "nobody-here"], "no user 'nobody-here'"),
        (["user", "delete", "nobody-here"], "no user 'nobody-here'"),
        (["user", "set-claim", "nobody-here", "a=1"], "no user 'nobody-here'"),
        (["token", "revoke", "--client", "NOPE"], "no client 'NOPE'"),
        (["token", "revoke", "--user", "nobody-here"], "no user 'nobody-here'"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_unknown_ids_are_one_line_and_exit_1(capsys, cli_env, monkeypatch, argv, what, as_json):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-password\n"))
    code, out, err = run(capsys, *argv, *(["--json"] if as_json else []))
    assert code == 1 and out == ""
    assert what in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--redirect-uri", "http://rp.example/cb"], "must be https"),
        (["--redirect-uri", "https://rp.example/cb#x"], "fragment"),
        (["--redirect-uri", "/relative"], "must be https"),
        (["--claims-redirect-uri", "http://rp.example/claims"], "must be https"),
        (["--grant-type", "password"], "unsupported grant_types"),
        (["--no-redirect-uris"], "needs at least one redirect URI"),
        (["--redirect-uri", "https://a.example/cb", "--no-redirect-uris"], "contradict"),
        ([], "nothing to change"),
    ],
)
def test_client_update_is_checked_like_registration_O_35_O_43_O_53(capsys, cli_env, make_client, argv, needle):
    client = make_client(grant_types=["authorization_code"], redirect_uris=["https://rp.example/cb"])
    before = run_json(capsys, "client", "show", client.client_id)
    code, out, err = run(capsys, "client", "update", client.client_id, *argv)
    assert code == 2 and out == "" and needle in err and err.count("\n") == 1
    assert run_json(capsys, "client", "show", client.client_id) == before


def test_public_client_cannot_get_client_credentials_by_update_O_11(capsys, cli_env, make_client):
    client = make_client(
        grant_types=["authorization_code"], redirect_uris=["https://rp.example/cb"], token_endpoint_auth_method="none"
    )
    code, _, err = run(capsys, "client", "update", client.client_id, "--grant-type", "client_credentials")
    assert code == 2 and "public client" in err
    code, _, err = run(capsys, "client", "rotate-secret", client.client_id)
    assert code == 2 and "no secret" in err


def test_client_update_takes_effect_over_http_O_43(capsys, cli_env, make_client, http):
    client = make_client(grant_types=["authorization_code"], redirect_uris=["https://old.example/cb"], scope="a")
    updated = run_json(
        capsys,
        "client",
        "update",
        client.client_id,
        "--name",
        "Renamed",
        "--redirect-uri",
        "https://new.example/cb",
        "--redirect-uri",
        "https://new.example/cb2",
        "--claims-redirect-uri",
        "https://new.example/claims",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        UMA_GRANT,
        "--scope",
        "view  print",
    )
    assert updated["client_name"] == "Renamed"
    assert updated["redirect_uris"] == ["https://new.example/cb", "https://new.example/cb2"]
    assert updated["claims_redirect_uris"] == ["https://new.example/claims"]
    assert updated["grant_types"] == ["authorization_code", UMA_GRANT] and updated["scope"] == "view print"
    assert run_json(capsys, "client", "show", client.client_id) == updated

    def authorize(redirect_uri: str) -> httpx.Response:
        return http.get(
            "/authorize",
            params={
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": redirect_uri,
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
        )

    old = authorize("https://old.example/cb")
    assert old.status_code == 400 and "location" not in old.headers
    new = authorize("https://new.example/cb2")
    assert new.status_code == 303 and new.headers["location"].startswith("/login")
    cleared = run_json(capsys, "client", "update", client.client_id, "--no-claims-redirect-uris")
    assert cleared["claims_redirect_uris"] == [] and cleared["redirect_uris"] == updated["redirect_uris"]


def test_rotate_secret_shows_the_new_one_once_and_the_old_one_stops_O_03(capsys, cli_env, make_client, http, engine):
    client = make_client(grant_types=["client_credentials"], scope="uma_protection")
    form = {"grant_type": "client_credentials"}
    assert http.post("/token", auth=client.basic_auth, data=form).status_code == 200
    rotated = run_json(capsys, "client", "rotate-secret", client.client_id)
    secret = rotated.pop("client_secret")
    assert secret and secret != client.client_secret
    assert rotated == run_json(capsys, "client", "show", client.client_id)
    with Session(engine) as session:
        row = session.exec(select(OAuthClient).where(OAuthClient.client_id == client.client_id)).one()
    assert row.client_secret_hash == hash_token(secret)
    refused = http.post("/token", auth=client.basic_auth, data=form)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert http.post("/token", auth=(client.client_id, secret), data=form).status_code == 200


def test_deleted_client_tokens_introspect_inactive_O_31(
    capsys, cli_env, app, engine, settings, http, make_user, make_client, make_rs, pat_for
):
    owner = make_user()
    grant_all(http, owner)
    pat = pat_for(owner.username)
    client = make_client(grant_types=[UMA_GRANT, "client_credentials"], scope="view")
    token = an_rpt(app, engine, settings, pat, client.client_id)
    assert introspect(http, pat, token)["active"] is True
    own = http.post("/token", auth=client.basic_auth, data={"grant_type": "client_credentials"})
    assert own.status_code == 200
    deleted = run_json(capsys, "client", "delete", client.client_id)
    assert deleted["deleted"] == client.client_id and deleted["revoked"]["rpts"] == 1
    assert deleted["revoked"]["tokens"] == 1
    assert introspect(http, pat, token) == {"active": False}
    assert http.post("/token", auth=client.basic_auth, data={"grant_type": "client_credentials"}).status_code == 401
    code, _, err = run(capsys, "client", "show", client.client_id)
    assert code == 1 and "no client" in err
    with Session(engine) as session:
        assert session.exec(select(Token).where(Token.client_id == client.client_id)).one().revoked


def test_tokens_another_process_issued_to_a_deleted_client_are_revoked_after_the_row_cache_lifetime(
    capsys, cli_env, engine, settings, make_client, monkeypatch
):
    """Other processes know a deleted client for ``row_cache_lifetime`` seconds (app/cache.py):
    ``uma client delete`` waits that long, then revokes what they issued to it meanwhile."""
    import time

    client = make_client(grant_types=["client_credentials"])
    waited: list[float] = []

    def another_process_issues_a_token(seconds: float) -> None:
        waited.append(seconds)
        owner_token(engine, settings, "someone", "uma_protection", client_id=client.client_id)

    monkeypatch.setattr(time, "sleep", another_process_issues_a_token)
    deleted = run_json(capsys, "client", "delete", client.client_id)
    assert waited == [settings.row_cache_lifetime + 1] and settings.row_cache_lifetime > 0
    assert deleted["revoked"]["tokens"] == 1
    with Session(engine) as session:
        assert session.exec(select(Token).where(Token.client_id == client.client_id)).one().revoked


def test_deleted_resource_server_pat_stops_and_its_resources_go(capsys, cli_env, engine, http, make_user, make_rs):
    owner = make_user()
    rs = make_rs(owner=owner.username)
    pat = http.post("/token", auth=rs.basic_auth, data={"grant_type": "client_credentials"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {pat}"}
    assert http.post("/uma/resources/", headers=headers, json={"resource_scopes": ["view"]}).status_code == 201
    counts = run_json(capsys, "client", "delete", rs.client_id)["revoked"]
    assert counts["tokens"] == 1 and counts["resources"] == 1
    r = http.get("/uma/resources/", headers=headers)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    with Session(engine) as session:
        assert session.exec(select(Resource).where(Resource.rs_client_id == rs.client_id)).first() is None


# -- tokens ----------------------------------------------------------------------------


def _code_and_pct(engine, client_id: str, username: str) -> None:
    with Session(engine) as session:
        session.add(
            AuthorizationCode(
                code_hash=hash_token(new_token()), client_id=client_id, username=username, expires_at=now() + 60
            )
        )
        session.add(Pct(pct_hash=hash_token(new_token()), client_id=client_id, subject=username, expires_at=now() + 60))
        session.commit()


def test_token_revoke_user_revokes_every_token_of_theirs_O_31(
    capsys, cli_env, app, engine, settings, http, make_user, make_client, pat_for
):
    owner, party = make_user(), make_user()
    grant_all(http, owner)
    pat = pat_for(owner.username)
    client = make_client(grant_types=[UMA_GRANT], scope="view")
    rpt = an_rpt(app, engine, settings, pat, client.client_id, requesting_party=party.username)
    party_pat = pat_for(party.username)
    party_owner_token = owner_token(engine, settings, party.username, "uma_owner")
    _code_and_pct(engine, client.client_id, party.username)
    assert introspect(http, pat, rpt)["active"] is True

    result = uma_process(cli_env, "token", "revoke", "--user", party.username, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "user": party.username,
        "revoked": {"tokens": 2, "rpts": 1, "pcts": 1, "codes": 1, "tickets": 0},
    }
    assert introspect(http, pat, rpt) == {"active": False}
    assert http.get("/uma/resources/", headers=party_pat.headers).status_code == 401
    assert http.get("/owner/policy", headers={"Authorization": f"Bearer {party_owner_token}"}).status_code == 401
    # the owner's own tokens are untouched, and the party may still log in
    assert http.get("/uma/resources/", headers=pat.headers).status_code == 200
    assert http.get("/owner/requests", auth=(party.username, party.password)).status_code == 200
    again = run_json(capsys, "token", "revoke", "--user", party.username)
    assert set(again["revoked"].values()) == {0}


def test_token_revoke_client_revokes_every_token_issued_to_it_O_31(
    capsys, cli_env, app, engine, settings, http, make_user, make_client, pat_for
):
    owner = make_user()
    grant_all(http, owner)
    pat = pat_for(owner.username)
    client = make_client(grant_types=[UMA_GRANT, "client_credentials"], scope="view")
    other = make_client(grant_types=[UMA_GRANT], scope="view")
    rpt = an_rpt(app, engine, settings, pat, client.client_id)
    kept = an_rpt(app, engine, settings, pat, other.client_id)
    _code_and_pct(engine, client.client_id, owner.username)
    access = http.post("/token", auth=client.basic_auth, data={"grant_type": "client_credentials"})
    assert access.status_code == 200
    code, out, err = run(capsys, "token", "revoke", "--client", client.client_id)
    assert code == 0, err
    assert f"client: {client.client_id}\n" in out and "rpts: 1\n" in out and "tokens: 1\n" in out
    assert "codes: 1\n" in out and "pcts: 1\n" in out
    assert introspect(http, pat, rpt) == {"active": False}
    assert introspect(http, pat, kept)["active"] is True
    # the client itself stays: it may ask for new tokens
    assert http.post("/token", auth=client.basic_auth, data={"grant_type": "client_credentials"}).status_code == 200
    with Session(engine) as session:
        assert all(p.revoked for p in session.exec(select(Pct).where(Pct.client_id == client.client_id)))
        codes = session.exec(select(AuthorizationCode).where(AuthorizationCode.client_id == client.client_id))
        assert all(c.used for c in codes)


def test_token_revoke_needs_exactly_one_of_client_and_user(capsys, cli_env):
    for argv in (["token", "revoke"], ["token", "revoke", "--client", "a", "--user", "b"]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1


# -- users -----------------------------------------------------------------------------


def test_user_list_and_show(capsys, cli_env, make_user, engine):
    user = make_user(claims={"email": "u@example.org"})
    shown = run_json(capsys, "user", "show", user.username)
    assert shown["username"] == user.username and shown["enabled"] is True
    assert shown["claims"] == {"email": "u@example.org"} and isinstance(shown["created_at"], int)
    assert shown in run_json(capsys, "user", "list")
    code, out, _ = run(capsys, "user", "show", user.username)
    assert code == 0 and "enabled: yes\n" in out and f"username: {user.username}\n" in out
    with Session(engine) as session:
        digest = session.exec(select(User).where(User.username == user.username)).one().password_hash
    code, out, _ = run(capsys, "user", "list")
    assert digest not in out and "password" not in out


def test_disabled_user_cannot_log_in_and_session_and_tokens_stop(
    capsys, cli_env, engine, settings, live_server, make_user, make_rs, pat_for
):
    user = make_user()
    pat = pat_for(user.username)
    owner_bearer = owner_token(engine, settings, user.username, "uma_owner")
    rs = make_rs(owner=user.username)
    with httpx.Client(base_url=live_server.url, timeout=30) as browser:
        sign_in(browser, user)
        assert browser.get("/owner/requests").status_code == 200
        assert browser.get("/my/requests").status_code == 200

        result = uma_process(cli_env, "user", "disable", user.username, "--json")
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["enabled"] is False and shown["revoked"]["tokens"] == 2 and shown["revoked"]["sessions"] == 1

        # the signed-in session stops at its next request, in this other process
        assert browser.get("/owner/requests").status_code == 401
        page = browser.get("/my/requests")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        login = browser.get("/login")
        refused = browser.post(
            "/login",
            data={
                "username": user.username,
                "password": user.password,
                "csrf_token": csrf_of(login.text),
            },
        )
        assert refused.status_code == 401 and "Unknown user name or wrong password" in refused.text
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        assert http.get("/owner/requests", auth=(user.username, user.password)).status_code == 401
        assert http.get("/owner/policy", headers={"Authorization": f"Bearer {owner_bearer}"}).status_code == 401
        assert http.get("/uma/resources/", headers=pat.headers).status_code == 401
        # nor can a client acting for them get a new PAT
        r = http.post("/token", auth=rs.basic_auth, data={"grant_type": "client_credentials"})
        assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"

        enabled = run_json(capsys, "user", "enable", user.username)
        assert enabled["enabled"] is True
        assert http.get("/owner/requests", auth=(user.username, user.password)).status_code == 200
        assert http.get("/uma/resources/", headers=pat.headers).status_code == 401  # revoked stays revoked
        assert http.post("/token", auth=rs.basic_auth, data={"grant_type": "client_credentials"}).status_code == 200


def test_fresh_owner_token_of_a_disabled_user_is_refused(capsys, cli_env, engine, settings, http, make_user):
    """The owner API checks the user behind a token, not only the token."""
    user = make_user()
    run_json(capsys, "user", "disable", user.username)
    token = owner_token(engine, settings, user.username, "uma_owner")
    assert http.get("/owner/policy", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_passwd_replaces_the_password_and_ends_the_sessions(
    capsys, cli_env, engine, http, live_server, make_user, monkeypatch
):
    user = make_user()
    browser = httpx.Client(base_url=live_server.url, timeout=30)
    sign_in(browser, user)
    assert browser.get("/owner/requests").status_code == 200
    monkeypatch.setattr(sys, "stdin", io.StringIO("brand-new-pw\n"))
    code, out, err = run(capsys, "user", "passwd", user.username, "--password-stdin")
    assert code == 0, err
    assert "brand-new-pw" not in out and user.password not in out and "sessions_ended: 1\n" in out
    with Session(engine) as session:
        uid = session.exec(select(User).where(User.username == user.username)).one().id
        assert session.exec(select(BrowserSession).where(BrowserSession.user_id == uid)).first() is None
    assert browser.get("/owner/requests").status_code == 401
    browser.close()
    with Session(engine) as session:
        stored = session.exec(select(User).where(User.username == user.username)).one().password_hash
    assert stored.startswith("$argon2id$") and verify_password("brand-new-pw", stored)
    assert http.get("/owner/requests", auth=(user.username, user.password)).status_code == 401
    assert http.get("/owner/requests", auth=(user.username, "brand-new-pw")).status_code == 200
    code, _, err = run(capsys, "user", "passwd", user.username, "--password", "visible")
    assert code == 2 and "--password is refused" in err and "visible" not in err


def test_passwd_in_its_own_process_from_stdin(cli_env, http, make_user):
    user = make_user()
    result = uma_process(cli_env, "user", "passwd", user.username, "--password-stdin", "--json", stdin="other-pw\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["username"] == user.username and "other-pw" not in result.stdout
    assert http.get("/owner/requests", auth=(user.username, "other-pw")).status_code == 200


def test_set_claim_sets_and_unsets(capsys, cli_env, make_user):
    user = make_user(claims={"email": "a@example.org", "team": "x"})
    shown = run_json(capsys, "user", "set-claim", user.username, "age=42", "nick=not json", "--unset", "team")
    assert shown["claims"] == {"email": "a@example.org", "age": 42, "nick": "not json"}
    assert run_json(capsys, "user", "show", user.username)["claims"] == shown["claims"]
    code, _, err = run(capsys, "user", "set-claim", user.username, "--unset", "team")
    assert code == 2 and "no claim 'team'" in err
    code, _, err = run(capsys, "user", "set-claim", user.username, "novalue")
    assert code == 2 and "K=V" in err
    code, _, err = run(capsys, "user", "set-claim", user.username)
    assert code == 2 and "--unset" in err


def test_delete_user_removes_what_it_owns_and_a_new_account_of_that_name_starts_empty(
    capsys, cli_env, engine, settings, http, make_user, make_rs, pat_for
):
    user = make_user()
    grant_all(http, user)
    pat = pat_for(user.username)
    assert http.post("/uma/resources/", headers=pat.headers, json={"resource_scopes": ["view"]}).status_code == 201
    acting = make_rs(owner=user.username)
    code, _, err = run(capsys, "user", "delete", user.username)
    assert code == 2 and acting.client_id in err and "uma client delete" in err
    assert http.get("/owner/requests", auth=(user.username, user.password)).status_code == 200

    run_json(capsys, "client", "delete", acting.client_id)
    removed = run_json(capsys, "user", "delete", user.username)["removed"]
    assert removed["tokens"] == 1 and removed["resources"] == 1 and removed["policy_versions"] == 1
    assert http.get("/owner/requests", auth=(user.username, user.password)).status_code == 401
    assert http.get("/uma/resources/", headers=pat.headers).status_code == 401
    with Session(engine) as session:
        assert session.exec(select(User).where(User.username == user.username)).first() is None
        assert session.exec(select(Resource).where(Resource.owner == user.username)).first() is None
        assert session.exec(select(PolicyDocument).where(PolicyDocument.owner == user.username)).first() is None
        assert all(r.revoked for r in session.exec(select(Rpt).where(Rpt.owner == user.username)))

    again = make_user(user.username)
    assert http.get("/owner/policy", auth=(again.username, again.password)).status_code == 404
    assert http.get("/owner/audit", auth=(again.username, again.password)).json()["records"] == []
