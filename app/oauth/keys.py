"""Signing keys for JWT RPTs: the active key signs; recent keys stay published.

* :func:`active_key` — the key to sign with (created on first need);
* :func:`rotate_signing_key` — make a new active key, retire the old one
  (``uma keys rotate``);
* :func:`jwks` — the public JWK set: the active key and keys retired less than
  ``key_retention`` seconds ago, so RPTs signed just before a rotation still verify.
"""

from __future__ import annotations

import functools
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import or_, select, update
from sqlmodel import Session

from ..cache import detached, row_cache
from ..models import SigningKey
from ..security import now

ALGORITHM = "RS256"


def _new_key_row() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return SigningKey(kid=secrets.token_urlsafe(12), algorithm=ALGORITHM, private_key_pem=pem, active=True)


def rotate_signing_key(session: Session | None = None) -> SigningKey:
    """Create a new active key and retire the previous ones; commits. Returns the new key.

    Without ``session``, uses the current app's request session.
    """
    if session is None:
        from ..db import get_session

        session = get_session()
    session.execute(
        update(SigningKey)
        .where(SigningKey.active.is_(True))
        .values(active=False, retired_at=now())
        .execution_options(synchronize_session=False)
    )
    row = _new_key_row()
    session.add(row)
    session.commit()
    return row


def active_key(session: Session) -> SigningKey:
    """The newest active key (a read-only copy, reused for ``row_cache_lifetime`` seconds,
    :mod:`app.cache`); one is created (and committed) if there is none yet."""

    def load() -> SigningKey | None:
        row = session.execute(
            select(SigningKey).where(SigningKey.active.is_(True)).order_by(SigningKey.id.desc()).limit(1)
        ).scalar_one_or_none()
        return detached(row) if row is not None else None

    row = row_cache().get("signing_key", "active", load)
    if row is None:
        row = _new_key_row()
        session.add(row)
        session.commit()
    return row


@functools.lru_cache(maxsize=32)
def _load_pem(pem: str) -> Any:
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


def private_key(row: SigningKey) -> Any:
    """The key object of ``row``; parsing and checking a PEM costs ~0.1 s, so parsed
    keys are cached per process (by their PEM, which never changes for a kid)."""
    return _load_pem(row.private_key_pem)


def public_jwk(row: SigningKey) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(private_key(row).public_key()))
    jwk.update(kid=row.kid, use="sig", alg=row.algorithm)
    return jwk


def _published(session: Session, retention: int) -> list[SigningKey]:
    cutoff = now() - retention
    return [
        detached(row)
        for row in session.execute(
            select(SigningKey)
            .where(or_(SigningKey.active.is_(True), SigningKey.retired_at >= cutoff))
            .order_by(SigningKey.id.desc())
        ).scalars()
    ]


def published_keys(session: Session, retention: int) -> list[SigningKey]:
    """The active key and the keys retired less than ``retention`` seconds ago (read-only
    copies, reused for ``row_cache_lifetime`` seconds)."""
    return row_cache().get("signing_key", ("published", retention), lambda: _published(session, retention))


def jwks(session: Session, retention: int) -> dict[str, list[dict[str, Any]]]:
    active_key(session)
    return {"keys": [public_jwk(row) for row in published_keys(session, retention)]}


def verification_key(session: Session, kid: str, retention: int) -> Any | None:
    """The public key for ``kid`` if it is still published, else None (an unknown ``kid``
    reads the keys again: a key made by another process verifies at once)."""
    for load in (published_keys, _published):
        for row in load(session, retention):
            if row.kid == kid:
                return private_key(row).public_key()
    return None
