"""Passwords (app/security.py, app/users.py): Argon2id at or above OWASP's parameters; every
older hash (scrypt, weaker Argon2) keeps verifying and is replaced on the next successful login,
through the login form and the owner API's Basic authentication alike (O-07)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest
from argon2 import PasswordHasher, Type
from argon2.low_level import Type as LowType
from sqlalchemy import update
from sqlmodel import Session, select

from app.models import User
from app.security import hash_password, needs_rehash, verify_password
from app.users import authenticate

#: OWASP Password Storage Cheat Sheet, Argon2id: at least m=19 MiB with t=2 and p=1.
OWASP_MIN_MEMORY_KIB, OWASP_MIN_TIME = 19 * 1024, 2


def scrypt_hash(password: str, n: int = 2**14) -> str:
    """A hash as earlier versions of this server stored them (``scrypt$N$r$p$salt$hash``)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${n}$8$1${b64(salt)}${b64(digest)}"


def weak_argon2_hash(password: str, kind: Type = Type.ID) -> str:
    return PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=kind).hash(password)


def params(stored: str) -> dict[str, int]:
    _, kind, _, costs, _, _ = stored.split("$")
    assert kind == "argon2id"
    return {k: int(v) for k, v in (part.split("=") for part in costs.split(","))}


def test_new_hashes_are_argon2id_at_or_above_owasp():
    stored = hash_password("correct horse")
    p = params(stored)
    assert p["m"] >= OWASP_MIN_MEMORY_KIB and p["t"] >= OWASP_MIN_TIME and p["p"] >= 1
    assert verify_password("correct horse", stored) and not verify_password("correct hors", stored)
    assert hash_password("correct horse") != stored  # salted
    assert not needs_rehash(stored)


def test_unusual_passwords_hash_and_verify():
    for password in ["é€😀", "\ud800lone surrogate", " spaces ", "x" * 4096]:
        assert verify_password(password, hash_password(password))


@pytest.mark.parametrize(
    "make_old",
    [scrypt_hash, lambda pw: scrypt_hash(pw, n=2**10), weak_argon2_hash, lambda pw: weak_argon2_hash(pw, LowType.I)],
    ids=["scrypt", "weak-scrypt", "weak-argon2id", "argon2i"],
)
def test_older_hashes_verify_and_need_rehash(make_old):
    old = make_old("s3cret")
    assert verify_password("s3cret", old) and not verify_password("s3cre", old)
    assert needs_rehash(old)


@pytest.mark.parametrize("garbage", ["", "scrypt$", "scrypt$x$8$1$AA==$AA==", "$argon2id$v=19$nonsense", "plain"])
def test_malformed_stored_hashes_never_verify(garbage):
    assert not verify_password("anything", garbage)


def _user_with_hash(engine, make_user, stored_for) -> tuple[str, str]:
    user = make_user()
    with Session(engine) as session:
        session.execute(
            update(User).where(User.username == user.username).values(password_hash=stored_for(user.password))
        )
        session.commit()
    return user.username, user.password


def _stored(engine, username: str) -> str:
    with Session(engine) as session:
        return session.exec(select(User.password_hash).where(User.username == username)).one()


def test_authenticate_upgrades_an_old_hash_and_leaves_it_on_a_wrong_password(engine, make_user):
    username, password = _user_with_hash(engine, make_user, scrypt_hash)
    old = _stored(engine, username)
    with Session(engine) as session:
        assert authenticate(session, username, "wrong") is None
    assert _stored(engine, username) == old
    with Session(engine) as session:
        user = authenticate(session, username, password)
        assert user is not None and user.password_hash.startswith("$argon2id$")
        assert not session.dirty  # the upgrade went through its own transaction
    new = _stored(engine, username)
    assert new.startswith("$argon2id$") and not needs_rehash(new) and verify_password(password, new)
    with Session(engine) as session:
        assert authenticate(session, username, password) is not None
    assert _stored(engine, username) == new  # a current hash is left alone


@pytest.mark.parametrize("make_old", [scrypt_hash, weak_argon2_hash], ids=["scrypt", "weak-argon2id"])
def test_owner_api_basic_authentication_upgrades_the_hash(engine, make_user, http, make_old):
    username, password = _user_with_hash(engine, make_user, make_old)
    wrong = base64.b64encode(f"{username}:nope".encode()).decode()
    assert http.get("/owner/policy", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert needs_rehash(_stored(engine, username))
    right = base64.b64encode(f"{username}:{password}".encode()).decode()
    assert http.get("/owner/policy", headers={"Authorization": f"Basic {right}"}).status_code != 401
    upgraded = _stored(engine, username)
    assert upgraded.startswith("$argon2id$") and not needs_rehash(upgraded)
    assert http.get("/owner/policy", headers={"Authorization": f"Basic {right}"}).status_code != 401


def test_login_form_upgrades_the_hash(engine, make_user, http, login):
    from tests.support.server import UserInfo

    username, password = _user_with_hash(engine, make_user, scrypt_hash)
    login(http, UserInfo(username, password, {}))
    upgraded = _stored(engine, username)
    assert upgraded.startswith("$argon2id$") and verify_password(password, upgraded)
    http.cookies.clear()
    login(http, UserInfo(username, password, {}))
