"""A storage of the ``limits`` library in this server's database (issue 13, point 3).

The brute-force protection (:mod:`app.identity.lockout`) counts failures with the ``limits``
library's strategies; they need a storage every process and machine shares. Redis is not part
of every deployment, while the database is: this storage keeps the counts in two small tables
(migration 0008), so a default deployment (SQLite, or PostgreSQL for many machines) needs
nothing more. A ``lockout_storage_uri`` setting selects any other ``limits`` storage instead.

* fixed window (``incr``/``get``/``get_expiry``): one row per key in ``rate_limit_counters``,
  incremented by one atomic upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``);
* moving window (``acquire_entry``/``get_moving_window``): one row per counted event in
  ``rate_limit_entries``, at most ``limit`` live rows per key. An entry is added, then the
  entries in the window counted, in one transaction, serialised per key (SQLite: its one
  writer; PostgreSQL: a transaction-level advisory lock on the key), and taken back when
  the count goes over the limit.

Expired rows are deleted by the background purge (:mod:`app.purge`); an acquisition also
drops its own key's expired entries. Each write is its own short transaction on its own
connection, so a count stays even when the request's transaction rolls back; so is each read.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from limits.storage import MovingWindowSupport, Storage
from sqlalchemy import Engine, bindparam, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from ..models import RateLimitCounter, RateLimitEntry

_COUNTERS: Any = RateLimitCounter.__table__
_ENTRIES: Any = RateLimitEntry.__table__
#: First half of the PostgreSQL advisory lock (two-int form) serialising one key's acquisitions.
_PG_LOCK_SPACE = 0x4C4D54  # "LMT"
_MAX_KEY = 255
#: The reads, built once: built at each read, the check before an authentication took 600 µs
#: of CPU instead of 200, 15% of a client-credentials token request instead of 6%
#: (bench/request_overhead.py, run with the SELECT written inline).
_COUNT = select(_COUNTERS.c.count).where(_COUNTERS.c.key == bindparam("key"), _COUNTERS.c.expires_at > bindparam("now"))
_EXPIRY = select(_COUNTERS.c.expires_at).where(
    _COUNTERS.c.key == bindparam("key"), _COUNTERS.c.expires_at > bindparam("now")
)
_WINDOW = select(func.min(_ENTRIES.c.at), func.count()).where(
    _ENTRIES.c.key == bindparam("key"), _ENTRIES.c.at > bindparam("since")
)


def _stored_key(key: str) -> str:
    """The key as stored: as given, or its SHA-256 when longer than the column."""
    return key if len(key) <= _MAX_KEY else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class DatabaseStorage(Storage, MovingWindowSupport):
    """``limits`` storage on a SQLAlchemy engine (SQLite or PostgreSQL) of this server's schema."""

    STORAGE_SCHEME = None  # made from the app's engine (app.identity.lockout), not from a URI

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"no database storage for {engine.dialect.name}: set lockout_storage_uri")
        super().__init__(uri=None, wrap_exceptions=True)
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    # -- fixed window ----------------------------------------------------------
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to the counter of ``key`` (a new window of ``expiry`` seconds when it
        had none or it expired); returns the count now."""
        now = time.time()
        fresh = _COUNTERS.c.expires_at <= now
        stmt = self._insert(_COUNTERS).values(key=_stored_key(key), count=amount, expires_at=now + expiry)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_COUNTERS.c.key],
            set_={
                "count": case((fresh, amount), else_=_COUNTERS.c.count + amount),
                "expires_at": case((fresh, now + expiry), else_=_COUNTERS.c.expires_at),
            },
        ).returning(_COUNTERS.c.count)
        with self.engine.begin() as conn:
            return int(conn.execute(stmt).scalar_one())

    def get(self, key: str) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(_COUNT, {"key": _stored_key(key), "now": time.time()}).scalar_one_or_none()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with self.engine.connect() as conn:
            expires = conn.execute(_EXPIRY, {"key": _stored_key(key), "now": now}).scalar_one_or_none()
        return float(expires) if expires is not None else now

    # -- moving window ---------------------------------------------------------
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Count ``amount`` events now unless that makes more than ``limit`` in the last
        ``expiry`` seconds; whether they were counted."""
        if amount > limit:
            return False
        stored = _stored_key(key)
        now = time.time()
        with self.engine.connect() as conn, conn.begin() as transaction:
            if self.engine.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_SPACE, func.hashtext(stored))))
            conn.execute(delete(_ENTRIES).where(_ENTRIES.c.key == stored, _ENTRIES.c.at <= now - expiry))
            conn.execute(_ENTRIES.insert(), [{"key": stored, "at": now, "expires_at": now + expiry}] * amount)
            counted = conn.execute(
                select(func.count()).select_from(_ENTRIES).where(_ENTRIES.c.key == stored, _ENTRIES.c.at > now - expiry)
            ).scalar_one()
            if counted > limit:
                transaction.rollback()
                return False
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest event in the window, number of events in it); (now, 0) when none."""
        now = time.time()
        with self.engine.connect() as conn:
            oldest, counted = conn.execute(_WINDOW, {"key": _stored_key(key), "since": now - expiry}).one()
        return (float(oldest), int(counted)) if counted else (now, 0)

    # -- the rest of the Storage interface -----------------------------------------
    def check(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as conn:
            removed = conn.execute(delete(_COUNTERS)).rowcount + conn.execute(delete(_ENTRIES)).rowcount
        return int(removed)

    def clear(self, key: str) -> None:
        stored = _stored_key(key)
        with self.engine.begin() as conn:
            conn.execute(delete(_COUNTERS).where(_COUNTERS.c.key == stored))
            conn.execute(delete(_ENTRIES).where(_ENTRIES.c.key == stored))
