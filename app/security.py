"""Secrets at rest: token hashing, password KDF, constant-time checks (O-07)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

#: scrypt cost parameters (RFC 7914): N=2**14, r=8, p=1 — 16 MiB, the common interactive choice.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


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


def hash_password(password: str) -> str:
    """scrypt hash in the form ``scrypt$N$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against :func:`hash_password` output in constant time."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def dummy_password_check(password: str) -> None:
    """Spend as much time as a real check, so a login for an unknown user is not faster."""
    verify_password(password, _DUMMY_HASH)


_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + base64.b64encode(b"\0" * 32).decode("ascii")
