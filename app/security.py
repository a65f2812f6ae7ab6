"""Secrets at rest: token hashing, password hashing, constant-time checks (O-07).

Passwords — the only secrets a person chooses — are hashed with Argon2id
(argon2-cffi) at OWASP's Password Storage Cheat Sheet parameters: 19 MiB of
memory, 2 iterations, 1 lane. Hashes made earlier — scrypt (``scrypt$N$r$p$salt$hash``)
or Argon2 with other parameters — keep verifying, and :func:`needs_rehash` says
that they should be replaced: :func:`app.users.authenticate` does so on the next
successful login. Every other secret (tokens, client secrets, codes, tickets)
is 256 random bits, stored as a SHA-256 digest.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: Argon2id cost (OWASP: m=19 MiB, t=2, p=1 is the minimum; raise m or t, never lower them).
ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM = 19 * 1024, 2, 1
_HASHER = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_KIB,
    parallelism=ARGON2_PARALLELISM,
    hash_len=32,
    salt_len=16,
    type=Type.ID,
)


def now() -> int:
    """Current time, integer seconds since the epoch (all timestamps in the database)."""
    return int(time.time())


def new_token() -> str:
    """A fresh unguessable token: 256 bits, URL-safe (O-07, G-57)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a high-entropy token; what the database stores."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _secret_bytes(password: str) -> bytes:
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str) -> str:
    """Argon2id hash in the PHC string format (``$argon2id$v=19$m=19456,t=2,p=1$salt$hash``)."""
    return _HASHER.hash(_secret_bytes(password))


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored hash (Argon2id, or an older scrypt hash)."""
    if stored.startswith("scrypt$"):
        return _verify_scrypt(password, stored)
    try:
        return _HASHER.verify(stored, _secret_bytes(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash is older or weaker than what :func:`hash_password` makes now."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    """The scrypt hashes of earlier versions: ``scrypt$N$r$p$salt$hash`` (base64), RFC 7914."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(_secret_bytes(password), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def dummy_password_check(password: str) -> None:
    """Spend as much time as a real check, so a login for an unknown user is not faster."""
    verify_password(password, _dummy_hash())


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_bytes(16))
