"""Database engines, sessions and schema migrations.

* :func:`init_app` builds one engine per Flask app (``app.extensions["uma_db"]``);
* :func:`get_session` gives the request's session (closed at teardown);
* :func:`session_scope` gives a session outside requests (CLI, tests);
* :func:`upgrade_database` applies the alembic migrations in ``app/migrations``
  under a lock, so several processes starting together migrate once.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event, func, make_url, select, update
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session

from .models import PolicySetVersion
from .security import now

if TYPE_CHECKING:
    from .config import SqliteSynchronous

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Arbitrary constant naming the PostgreSQL advisory lock taken while migrating.
_PG_MIGRATION_LOCK = 0x554D41  # "UMA"


def make_engine(
    url: str, *, pool_size: int = 5, pool_recycle: int = 1800, sqlite_synchronous: SqliteSynchronous = "normal"
) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys and ``synchronous``
    as the setting ``sqlite_synchronous`` says (``normal``: a commit does not wait for the disk,
    the WAL is synced at checkpoints; ``full``: every commit is synced).

    A server database (PostgreSQL) gets a pool of ``pool_size`` connections (as many
    again in overflow) that are replaced after ``pool_recycle`` seconds, and no
    "pre-ping": a ping on every checkout cost a round trip per request (issue 11),
    while recycling keeps connections younger than any idle timeout of the server
    or of a proxy in between. A connection dropped anyway fails that one request
    (500), and the pool then replaces every connection it holds.

    A URL SQLAlchemy cannot read, or whose driver is not installed (PostgreSQL
    needs the ``postgres`` extra), is a :class:`~app.config.ConfigError`.
    """
    from .config import ConfigError
    from .logs import safe_database_url

    try:
        return _make_engine(url, pool_size, pool_recycle, sqlite_synchronous)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"database_url = {safe_database_url(url)!r}: its driver (Python package {exc.name!r}) is not installed;"
            " for PostgreSQL install the postgres extra: pip install 'uma-as[postgres]'"
        ) from None
    except ArgumentError as exc:
        shown = safe_database_url(url)
        # SQLAlchemy's message quotes a URL it cannot parse, password and all: say it only of one it parsed.
        why = f" ({exc})" if shown != "(not a valid URL)" else ""
        raise ConfigError(
            f"database_url = {shown!r}: expected an SQLAlchemy URL such as postgresql+psycopg://user:pw@host/db{why}"
        ) from None


def _make_engine(url: str, pool_size: int, pool_recycle: int, sqlite_synchronous: SqliteSynchronous) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no branch
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous.upper()}")
            cur.close()

        database = sqlite_file(url)
        OneWriter(f"{database}-writer-lock" if database else None).install(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=pool_recycle)


#: Statements with which SQLite (in the driver's default mode) begins a write transaction.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class OneWriter:
    """One SQLite write transaction at a time per process, queued on a lock.

    SQLite has one writer at a time. A thread that finds the database locked waits in SQLite's
    busy handler, which sleeps in growing steps (1, 2, 5 … 100 ms) and checks again, so under
    concurrent grants a waiting thread slept through many releases: 8 concurrent clients of
    ``uma serve`` saw a grant p99 of about 1 s (issue 11, ``bench/server.py --server uma-serve``).
    Here the threads of a process wait on one lock instead, taken at the first write statement
    of a transaction and released when it commits, rolls back or its connection closes; each
    waiting thread runs as soon as the lock is free. A thread that writes on a second connection
    while its first still holds the lock does not wait for itself: SQLite decides that case as before.

    Between processes (gunicorn's workers, ``uma`` commands beside a server) the same holds: the
    lock's holder also takes an exclusive ``flock`` on ``<database>-writer-lock`` (``lock_path``),
    which a process waiting for it tries again every half millisecond rather than after SQLite's
    1, 2, 5, 10 … ms sleeps (2 gunicorn workers, 8 clients doing grants: the figures are in
    docs/benchmarks.md, issue 11). A process that cannot have it within 30 s goes on, and SQLite's
    busy timeout decides, as without it.
    """

    def __init__(self, lock_path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._holder: Any = None  # the DBAPI connection whose transaction holds the lock
        self._thread: int | None = None
        self._between_processes = _ProcessLock(lock_path) if lock_path else None
        self._process_locked = False

    def install(self, engine: Engine) -> None:
        dialect = engine.dialect
        commit, rollback, close = dialect.do_commit, dialect.do_rollback, dialect.do_close

        @event.listens_for(engine, "before_cursor_execute")
        def _first_write(conn, cursor, statement, parameters, context, executemany):  # pragma: no branch
            if statement.lstrip()[:7].upper().startswith(_WRITES):
                self._before_write(cursor.connection)

        def ended(end: Any) -> Any:
            def wrapper(connection: Any) -> None:
                try:
                    end(connection)
                finally:
                    self._ended(connection)

            return wrapper

        dialect.do_commit = ended(commit)  # type: ignore[method-assign]
        dialect.do_rollback = ended(rollback)  # type: ignore[method-assign]
        dialect.do_close = ended(close)  # type: ignore[method-assign]

    def _before_write(self, dbapi_conn: Any) -> None:
        if self._holder is dbapi_conn or self._thread == threading.get_ident():
            return
        if self._lock.acquire(timeout=30):  # else SQLite's busy timeout decides, as without this lock
            self._holder, self._thread = dbapi_conn, threading.get_ident()
            if self._between_processes is not None:
                self._process_locked = self._between_processes.acquire(timeout=30)

    def _ended(self, connection: Any) -> None:
        raw = getattr(connection, "dbapi_connection", connection)
        if raw is not None and raw is self._holder:
            if self._process_locked and self._between_processes is not None:
                self._between_processes.release()
            self._process_locked = False
            self._holder = self._thread = None
            self._lock.release()


class _ProcessLock:
    """An exclusive ``flock`` on a file, one holder process at a time (:class:`OneWriter`).

    Each process opens the file itself: a descriptor inherited through ``fork`` shares its lock
    with the parent, so a child (a gunicorn worker of a preloaded app) opens its own."""

    #: Seconds between two tries of a waiting process.
    POLL = 0.0005

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Any = None
        self._pid: int | None = None

    def _descriptor(self) -> int:
        if self._pid != os.getpid():
            self._file = open(self.path, "a+b")  # noqa: SIM115 - kept open for the process's life
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
            self._pid = os.getpid()
        return self._file.fileno()

    def acquire(self, timeout: float) -> bool:
        descriptor = self._descriptor()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(self.POLL)

    def release(self) -> None:
        fcntl.flock(self._descriptor(), fcntl.LOCK_UN)


def sqlite_file(url: str) -> str | None:
    """The file of an SQLite URL, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or "mode=memory" in url:
        return None
    return database


def init_app(app: Flask, url: str) -> Engine:
    settings = app.config["UMA_SETTINGS"]
    engine = make_engine(
        url,
        pool_size=settings.database_pool_size,
        pool_recycle=settings.database_pool_recycle,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    app.extensions["uma_db"] = engine
    # A process forked from this one (gunicorn's workers of a preloaded app) must not use the
    # connections this one opened: the child starts with an empty pool, leaving them to the parent.
    os.register_at_fork(after_in_child=functools.partial(_new_pool_in_child, weakref.ref(engine)))
    app.teardown_appcontext(_close_session)
    return engine


def _new_pool_in_child(engine: weakref.ref[Engine]) -> None:
    alive = engine()
    if alive is not None:
        alive.dispose(close=False)


def get_engine(app: Flask | None = None) -> Engine:
    return (app or current_app).extensions["uma_db"]


def get_session() -> Session:
    """The session of the current app context (one per request)."""
    session = g.get("_uma_session")
    if session is None:
        session = Session(get_engine(), expire_on_commit=False)
        g._uma_session = session
    return session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("_uma_session", None)
    if session is not None:
        session.close()


@contextlib.contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# -- migrations ---------------------------------------------------------------


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def schema_is_current(engine: Engine) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads()) == heads


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    with open(str(database) + ".migrate-lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``, once even if several processes call it together."""
    cfg = alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    else:
        with _file_lock(engine), engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def database_url_for(instance_path: str, configured: str) -> str:
    if configured:
        return configured
    os.makedirs(instance_path, exist_ok=True)
    return "sqlite:///" + str(Path(instance_path) / "uma.db")


# -- the global policy-set version (architecture: "many processes, one truth") --


def remember_policy_set_version(session: Session, version: int) -> None:
    """Record ``version`` as read by a statement of the session's current transaction (the UMA
    grant reads it with the ticket, introspection with the RPT), so that
    :func:`policy_set_version` does not read it again in that transaction."""
    session.info["uma_policy_set_version"] = (session.get_transaction(), int(version or 0))


_VERSION_COLUMN = select(PolicySetVersion.version).where(PolicySetVersion.id == 1).scalar_subquery()


def policy_set_version_column() -> Any:
    """The policy-set version as a scalar subquery, to read in a statement the request makes anyway."""
    return _VERSION_COLUMN


def policy_set_version(session: Session) -> int:
    """The version of the policy set every process must decide with (read once per transaction)."""
    known = session.info.get("uma_policy_set_version")
    transaction = session.get_transaction()
    if known is not None and transaction is not None and known[0] is transaction:
        return known[1]
    version = session.execute(select(PolicySetVersion.version).where(PolicySetVersion.id == 1)).scalar_one_or_none()
    return int(version or 0)


def bump_policy_set_version(session: Session) -> int:
    """Atomically increment the policy-set version (call in the transaction that changes
    policies); returns the new version, which the transaction's later reads see."""
    bumped = session.execute(
        update(PolicySetVersion)
        .where(PolicySetVersion.id == 1)
        .values(version=PolicySetVersion.version + 1, updated_at=now())
        .returning(PolicySetVersion.version)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if bumped is None:
        session.add(PolicySetVersion(id=1, version=1))
        session.flush()
        bumped = 1
    remember_policy_set_version(session, bumped)
    return int(bumped)
