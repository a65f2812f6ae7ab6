"""The policies in use: owner uploads checked before acceptance, versions, reload across processes, files."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import pytest

from app import create_app
from app.db import make_engine, upgrade_database
from tests.server.grant_support import *
from tests.support.server import close_app, wait_for

GOOD = 'permit view on type "photo-album"'
BROKEN = 'permit view on type "photo-album" when claims.email = "x"'


def test_upload_that_does_not_check_is_refused_with_diagnostics(uma):
    owner = uma.user()
    r = uma.put_policy(owner, BROKEN)
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_policy"
    d = body["diagnostics"][0]
    assert d["severity"] == "error" and d["line"] == 1 and d["column"] and d["code"].startswith("E")
    assert d["rendered"]
    assert uma.http.get("/owner/policy", auth=(owner.username, owner.password)).status_code == 404


@pytest.mark.parametrize(
    "text,code",
    [
        ('owner "somebody-else"\npermit view on any resource', "E202"),
        ("global\nforbid any scope on any resource", "E212"),
        ("", "E-EMPTY"),
    ],
)
def test_upload_may_only_govern_the_uploader(uma, text, code):
    owner = uma.user()
    r = uma.put_policy(owner, text)
    assert r.status_code == 400, r.text
    assert r.json()["diagnostics"][0]["code"] == code


def test_accepted_upload_is_effective_at_once_and_versioned(uma):
    flow = uma.flow(GOOD)
    auth = (flow.owner.username, flow.owner.password)
    assert flow.token(flow.ticket(("album", ["view"]))).status_code == 200
    r = uma.put_policy(flow.owner, 'permit download on type "photo-album"')
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["active"] is True
    denied = flow.token(flow.ticket(("album", ["view"])))
    assert denied.status_code == 403 and denied.json()["error"] == "request_denied"
    versions = uma.http.get("/owner/policy/versions", auth=auth).json()["versions"]
    assert [(v["version"], v["active"]) for v in versions] == [(2, True), (1, False)]
    assert uma.http.get("/owner/policy/versions/1", auth=auth).json()["text"] == GOOD
    restored = uma.http.post("/owner/policy/versions/1/restore", auth=auth)
    assert restored.status_code == 200 and restored.json()["version"] == 3
    assert uma.http.get("/owner/policy", auth=auth).json()["text"] == GOOD
    assert flow.token(flow.ticket(("album", ["view"]))).status_code == 200


def test_owner_header_is_filled_in_and_rules_govern_only_the_uploader(uma):
    uma.flow(GOOD)
    other = uma.flow(None)
    r = other.token(other.ticket(("album", ["view"])))
    assert r.status_code == 403 and r.json()["error"] == "request_denied"


def test_removed_upload_stops_granting(uma):
    flow = uma.flow(GOOD)
    auth = (flow.owner.username, flow.owner.password)
    assert uma.http.delete("/owner/policy", auth=auth).status_code == 200
    assert uma.http.delete("/owner/policy", auth=auth).status_code == 404
    assert flow.token(flow.ticket(("album", ["view"]))).json()["error"] == "request_denied"


def test_warnings_are_returned_with_an_accepted_upload(uma):
    owner = uma.user()
    r = uma.put_policy(owner, 'group friends = ["a@example.com"]\n' + GOOD)
    assert r.status_code == 200
    assert any(w["code"] == "W303" for w in r.json()["warnings"])


def test_version_bump_is_seen_by_a_second_app_instance(uma, database_url, tmp_path):
    second = create_app(
        {
            "database_url": database_url,
            "issuer": "http://127.0.0.1:1",
            "secret_key": secrets.token_hex(16),
            "instance_path": str(tmp_path),
            "policy_dir": uma.settings.policy_dir,
            "policy_reload_interval": 0,
        }
    )
    client = second.test_client()
    owner = uma.user()
    auth = {
        "Authorization": "Basic "
        + __import__("base64").b64encode(f"{owner.username}:{owner.password}".encode()).decode()
    }
    try:
        # Other tests' apps on this database may have moved the version: wait until this one serves it.
        before = wait_for(
            lambda: (
                (st := client.get("/policies/status", headers=auth).json)["serving_version"] == st["version"] and st
            ),
            "the second instance to serve the stored version",
        )
        assert uma.put_policy(owner, GOOD).status_code == 200
        # The second instance's background thread (started by its first request) compiles the
        # new version; it converges within the reload interval plus the compile.
        after = wait_for(
            lambda: (
                (st := client.get("/policies/status", headers=auth).json)["serving_version"] == st["version"] and st
            ),
            "the second instance to serve the new version",
        )
        assert after["version"] > before["version"]
        store = second.extensions["uma_policies"]
        rule_files = {r.ref.split(":")[0] for r in store.current().policy_set.rules}
        assert f"uploads/{owner.username}/owner.policy" in rule_files
    finally:
        close_app(second)


def test_status_needs_authentication(uma):
    r = uma.http.get("/policies/status")
    assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]


# -- the operator's files, on a database of their own ------------------------------


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    # a distinct mtime even on coarse file systems, without sleeping
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_changed_files_bump_the_version_and_broken_files_keep_the_last_good_set(fresh_database_url, tmp_path, caplog):
    engine = make_engine(fresh_database_url)
    upgrade_database(engine)
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    _write(policy_dir / "op.policy", 'owner "op"\npermit view on any resource')
    app = create_app(
        {
            "database_url": fresh_database_url,
            "instance_path": str(tmp_path / "instance"),
            "secret_key": "k" * 32,
            "policy_dir": str(policy_dir),
            "policy_reload_interval": 0,
        }
    )
    store = app.extensions["uma_policies"]
    first = store.status()
    assert first["files"] == ["policies/op.policy"] and first["error"] is None
    _write(policy_dir / "op.policy", 'owner "op"\npermit view, print on any resource')
    assert store.sync()  # what the background thread does (tests/server/test_policy_swaps.py: over HTTP)
    second = store.status()
    assert second["version"] == first["version"] + 1 and second["serving_version"] == second["version"]
    with caplog.at_level(logging.ERROR, logger="app.policies"):
        _write(policy_dir / "op.policy", 'owner "op"\npermit view on any resource when claims.x = 1')
        store.sync()  # version 3: the last good file (with the current uploads) serves as version 3
        broken = store.status()
    assert broken["version"] == second["version"] + 1
    assert broken["error"]["version"] == broken["version"]
    assert broken["error"]["diagnostics"][0]["file"] == "policies/op.policy"
    assert "does not check" in caplog.text
    # The last good files keep serving.
    ps = store.current().policy_set
    decision = ps.decide({"resource": {"id": "r", "owner": "op"}, "scopes": ["print"]})
    assert decision.decision == "permit"
    _write(policy_dir / "op.policy", 'owner "op"\npermit view on any resource')
    assert store.sync()
    fixed = store.status()
    assert fixed["error"] is None and fixed["serving_version"] == fixed["version"]
    assert (
        store.current().policy_set.decide({"resource": {"id": "r", "owner": "op"}, "scopes": ["print"]}).decision
        == "deny"
    )
    engine.dispose()


def test_unchanged_files_do_not_bump_the_version(fresh_database_url, tmp_path):
    engine = make_engine(fresh_database_url)
    upgrade_database(engine)
    policy_dir = tmp_path / "p"
    policy_dir.mkdir()
    _write(policy_dir / "a.policy", 'owner "a"\npermit view on any resource')
    config = {
        "database_url": fresh_database_url,
        "secret_key": "k" * 32,
        "policy_dir": str(policy_dir),
        "policy_reload_interval": 0,
    }
    one = create_app({**config, "instance_path": str(tmp_path / "i1")}).extensions["uma_policies"]
    two = create_app({**config, "instance_path": str(tmp_path / "i2")}).extensions["uma_policies"]
    v1 = one.status()["version"]
    for _ in range(3):
        assert not two.sync() and not one.sync()
        assert two.status()["version"] == v1 and one.status()["version"] == v1
    engine.dispose()


def test_upload_conflicting_with_the_owners_file_is_refused(fresh_database_url, tmp_path):
    from sqlmodel import Session

    from app.policies import PolicyRejected

    engine = make_engine(fresh_database_url)
    upgrade_database(engine)
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    _write(
        policy_dir / "op.policy",
        'owner "op"\nclaims email from "https://a.example" as jwt\npermit view on any resource when claims.email == "x"',
    )
    app = create_app(
        {
            "database_url": fresh_database_url,
            "instance_path": str(tmp_path / "i"),
            "secret_key": "k" * 32,
            "policy_dir": str(policy_dir),
            "policy_reload_interval": 0,
        }
    )
    store = app.extensions["uma_policies"]
    with Session(engine, expire_on_commit=False) as session:
        with pytest.raises(PolicyRejected) as refused:
            store.store_upload(
                session,
                "op",
                'claims email from "https://b.example" as jwt\npermit read on any resource when claims.email == "y"',
            )
        session.rollback()
        doc, _ = store.store_upload(session, "op", 'permit read on any resource when claims.email == "y"')
    assert refused.value.diagnostics[0]["code"] == "E207"
    status = store.status()
    assert status["error"] is None and status["owner_documents"] == 1 and doc.version == 1
    engine.dispose()


def test_status_hides_other_owners_texts_in_diagnostics(fresh_database_url, tmp_path):
    import base64

    from sqlmodel import Session

    from app.users import create_user

    engine = make_engine(fresh_database_url)
    upgrade_database(engine)
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    _write(policy_dir / "op.policy", 'owner "op"\npermit view on any resource')
    app = create_app(
        {
            "database_url": fresh_database_url,
            "instance_path": str(tmp_path / "i"),
            "secret_key": "k" * 32,
            "policy_dir": str(policy_dir),
            "policy_reload_interval": 0,
        }
    )
    with Session(engine) as session:
        create_user(session, "op", "pw-op")
        create_user(session, "other", "pw-other")
        session.commit()
    client = app.test_client()

    def auth(user, pw):
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

    secret_rule = (
        'claims email from "https://b.example" as jwt\npermit read on any resource when claims.email == "secret@x"'
    )
    assert client.put("/owner/policy", data=secret_rule, headers=auth("op", "pw-op")).status_code == 200
    # The operator's file now declares the claim differently: the set no longer checks.
    _write(
        policy_dir / "op.policy",
        'owner "op"\nclaims email from "https://a.example" as jwt\npermit view on any resource',
    )
    assert app.extensions["uma_policies"].sync()  # the uploads are compiled with the last good file
    mine = client.get("/policies/status", headers=auth("op", "pw-op")).json
    theirs = client.get("/policies/status", headers=auth("other", "pw-other")).json
    assert mine["error"] and theirs["error"]
    assert [(d["code"], d["file"], d["line"]) for d in mine["error"]["diagnostics"]] == [
        ("E207", "uploads/op/owner.policy", 1)
    ]
    assert [(d["code"], d["file"], d["line"]) for d in theirs["error"]["diagnostics"]] == [
        ("E207", "uploads/(another owner)", None)
    ]
    assert "b.example" not in str(theirs) and "uploads/op/" not in str(theirs)
    # The last good set (the earlier file with op's upload) keeps serving.
    assert mine["serving_version"] == mine["version"] and mine["rules"] == 2
    close_app(app)
    engine.dispose()
