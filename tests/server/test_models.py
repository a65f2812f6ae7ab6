"""Schema, migration and storage-level guarantees (single-use tickets, hashed secrets)."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlmodel import Session, SQLModel

from app.db import bump_policy_set_version, policy_set_version, schema_is_current
from app.models import OAuthClient, PermissionTicket, User
from app.protection.tickets import issue_ticket, redeem_ticket
from app.security import hash_password, hash_token, verify_password


def test_alembic_revision_matches_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []
    assert schema_is_current(engine)


def test_policy_set_version_row_exists_and_bumps(engine):
    with Session(engine, expire_on_commit=False) as session:
        before = policy_set_version(session)
        after = bump_policy_set_version(session)
        session.commit()
    # Other tests' apps share the database and may bump it too between the read and the bump.
    assert after >= before + 1
    with Session(engine, expire_on_commit=False) as session:
        assert policy_set_version(session) >= after


def _ticket(session: Session, lifetime: int = 300) -> str:
    raw, _ = issue_ticket(
        session,
        owner="alice",
        rs_client_id="rs-1",
        permissions=[{"resource_id": "r1", "resource_scopes": ["view"]}],
        lifetime=lifetime,
    )
    session.commit()
    return raw


def test_ticket_is_stored_hashed_G_57(engine):
    with Session(engine, expire_on_commit=False) as session:
        raw = _ticket(session)
        assert len(raw) >= 43  # 256 bits, URL-safe base64
        row = session.execute(
            select(PermissionTicket).where(PermissionTicket.ticket_hash == hash_token(raw))
        ).scalar_one()
        assert raw not in (row.ticket_hash,)


def test_ticket_is_single_use_G_59(engine):
    with Session(engine, expire_on_commit=False) as session:
        raw = _ticket(session)
        first = redeem_ticket(session, raw)
        second = redeem_ticket(session, raw)
    assert first is not None and first.consumed and first.permissions[0]["resource_id"] == "r1"
    assert second is None


def test_expired_ticket_is_not_redeemable_G_60(engine):
    with Session(engine, expire_on_commit=False) as session:
        raw = _ticket(session, lifetime=0)
        assert redeem_ticket(session, raw) is None


def test_unknown_ticket_is_not_redeemable_G_15(engine):
    with Session(engine, expire_on_commit=False) as session:
        assert redeem_ticket(session, "no-such-ticket") is None


def test_ticket_race_between_two_connections_G_59(engine):
    """Two connections present the same ticket at once: exactly one wins, every time."""
    with Session(engine, expire_on_commit=False) as session:
        raws = [_ticket(session) for _ in range(8)]
    for raw in raws:
        barrier = threading.Barrier(2)
        results: list[object] = []
        lock = threading.Lock()

        def attempt() -> None:
            with Session(engine, expire_on_commit=False) as own:
                barrier.wait()
                row = redeem_ticket(own, raw)
            with lock:
                results.append(row)

        threads = [threading.Thread(target=attempt) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 2
        assert sum(r is not None for r in results) == 1


def test_ticket_rotation_keeps_permissions_and_claims(engine):
    with Session(engine, expire_on_commit=False) as session:
        raw, first = issue_ticket(
            session,
            owner="alice",
            rs_client_id="rs-1",
            permissions=[{"resource_id": "r1", "resource_scopes": ["view"]}],
            lifetime=60,
            claims={"email": "bob@example.com"},
        )
        session.commit()
        used = redeem_ticket(session, raw)
        raw2, second = issue_ticket(
            session,
            owner=used.owner,
            rs_client_id=used.rs_client_id,
            permissions=used.permissions,
            lifetime=60,
            predecessor=used,
            client_id="client-a",
            claims={"email_verified": True},
        )
        session.commit()
    assert raw2 != raw
    assert second.predecessor_id == first.id
    assert second.client_id == "client-a"
    assert second.claims == {"email": "bob@example.com", "email_verified": True}


def test_password_is_hashed_with_a_kdf(make_user, engine):
    info = make_user(password="correct horse")
    with Session(engine, expire_on_commit=False) as session:
        user = session.execute(select(User).where(User.username == info.username)).scalar_one()
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash
    assert verify_password("correct horse", user.password_hash)
    assert not verify_password("wrong", user.password_hash)
    assert hash_password("x") != hash_password("x")  # salted


def test_client_secret_is_stored_hashed(make_client, engine):
    info = make_client(grant_types=["client_credentials"])
    with Session(engine, expire_on_commit=False) as session:
        row = session.execute(select(OAuthClient).where(OAuthClient.client_id == info.client_id)).scalar_one()
    assert row.client_secret_hash == hash_token(info.client_secret)
    assert row.check_client_secret(info.client_secret)
    assert not row.check_client_secret(info.client_secret + "x")


def test_a_user_cannot_take_the_name_of_a_client_O_51(make_client, engine):
    import pytest

    from app.users import USERNAME_RE, UserError, create_user

    # a random client id may start with '-' or '_', which no user name may: such an id
    # is refused as a name before the clash is looked for; test the clash itself
    client = make_client(grant_types=["client_credentials"])
    while not USERNAME_RE.match(client.client_id):
        client = make_client(grant_types=["client_credentials"])
    with Session(engine) as session, pytest.raises(UserError, match="id of a client"):
        create_user(session, client.client_id, "pw")
