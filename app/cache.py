"""Rows that every grant and introspection reads, reused for a few seconds (issue 11, point 3).

The UMA grant and introspection read the same few rows over and over: the
client, the signing keys, the registered resources. Each process keeps what it
read for ``row_cache_lifetime`` seconds (default 2, the ``policy_reload_interval``
of the policy set) so that the common grant costs three statements (ticket,
RPT, audit row) instead of eight:

* a change made through any session of this process (ORM add, change, delete,
  or ``session.execute(update(...))``/``delete(...)`` of one of these tables)
  empties the cache of that kind at once, and again when the change commits;
* a change made in another process counts here within ``row_cache_lifetime``
  seconds — the same bounded delay after which a policy change counts, stated
  in docs/operations.md. A row not found is never cached: a new client, key or
  resource is seen at once everywhere; an unknown key id reads the keys again.

Callers get detached copies (shared between threads): read them, never change
or ``session.add`` them. ``row_cache_lifetime = 0`` reads every row every time.
"""

from __future__ import annotations

import copy
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import SQLModel

from .models import OAuthClient, Resource, SigningKey

#: The cached tables and the name of their kind.
KINDS: dict[type, str] = {OAuthClient: "client", SigningKey: "signing_key", Resource: "resource"}

T = TypeVar("T", bound=SQLModel)
_MISSING = object()
_caches: weakref.WeakSet[RowCache] = weakref.WeakSet()


class RowCache:
    """Values by (kind, key) for ``lifetime`` seconds; thread-safe. One per app."""

    def __init__(self, lifetime: float):
        self.lifetime = float(lifetime)
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, Any], tuple[float, Any]] = {}
        _caches.add(self)

    def get(self, kind: str, key: Any, load: Callable[[], Any]) -> Any:
        """The cached value, or ``load()`` (cached unless None)."""
        if self.lifetime <= 0:
            return load()
        at = time.monotonic()
        with self._lock:
            hit = self._entries.get((kind, key), (0.0, _MISSING))
        if hit[1] is not _MISSING and at - hit[0] < self.lifetime:
            return hit[1]
        value = load()
        if value is not None:
            with self._lock:
                self._entries[(kind, key)] = (at, value)
        return value

    def clear(self, kinds: Iterable[str] | None = None) -> None:
        wanted = None if kinds is None else set(kinds)
        with self._lock:
            if wanted is None:
                self._entries.clear()
            else:
                self._entries = {k: v for k, v in self._entries.items() if k[0] not in wanted}


#: Outside an app (CLI helpers, tests on a bare session): nothing is kept.
_NO_CACHE = RowCache(0)


def init_app(app: Any) -> RowCache:
    cache = RowCache(app.config["UMA_SETTINGS"].row_cache_lifetime)
    app.extensions["uma_row_cache"] = cache
    return cache


def row_cache() -> RowCache:
    """The current app's cache (a cache that keeps nothing outside an app context)."""
    if has_app_context():
        return current_app.extensions.get("uma_row_cache", _NO_CACHE)
    return _NO_CACHE


def detached(row: T) -> T:
    """A copy of ``row`` in no session (safe to share between threads and requests)."""
    return type(row)(**copy.deepcopy(row.model_dump()))


def clear_everywhere(kinds: Iterable[str]) -> None:
    kinds = set(kinds)
    for cache in list(_caches):
        cache.clear(kinds)


# -- invalidation: any change of a cached table through a session of this process --------


@event.listens_for(OrmSession, "after_flush")
def _flushed(session: OrmSession, _context: Any) -> None:
    kinds = {KINDS[type(o)] for o in (*session.new, *session.dirty, *session.deleted) if type(o) in KINDS}
    if kinds:
        session.info.setdefault("uma_changed_kinds", set()).update(kinds)
        clear_everywhere(kinds)


@event.listens_for(OrmSession, "do_orm_execute")
def _bulk_change(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    kinds = {KINDS[m.class_] for m in state.all_mappers if m.class_ in KINDS}
    if kinds:
        state.session.info.setdefault("uma_changed_kinds", set()).update(kinds)
        clear_everywhere(kinds)


@event.listens_for(OrmSession, "after_commit")
def _committed(session: OrmSession) -> None:
    # Again after the commit: a concurrent request may have cached the old row in between.
    kinds = session.info.pop("uma_changed_kinds", None)
    if kinds:
        clear_everywhere(kinds)


@event.listens_for(OrmSession, "after_rollback")
def _rolled_back(session: OrmSession) -> None:
    session.info.pop("uma_changed_kinds", None)
