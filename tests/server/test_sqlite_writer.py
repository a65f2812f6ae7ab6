"""SQLite, the embedded default (issue 11, point 4): WAL, a busy timeout, and the threads of one
process queued on one lock for writing (:class:`app.db.OneWriter`) instead of SQLite's busy
handler. Runs on its own SQLite file whatever database the suite uses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import event, text

from app.db import get_engine, make_engine


def _engine(tmp_path, busy_timeout_ms: int):
    engine = make_engine(f"sqlite:///{tmp_path}/writer.db")

    @event.listens_for(engine, "connect")
    def _timeout(dbapi_conn, _record):  # after make_engine's pragmas: this test's busy timeout
        dbapi_conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    return engine


def test_sqlite_connections_use_wal_and_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/pragmas.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    engine.dispose()


def test_sqlite_synchronous_follows_the_setting(tmp_path):
    """``sqlite_synchronous``: ``full`` by default (no commit lost), ``normal`` on request."""
    from app import create_app

    for configured, pragma in ((None, 2), ("full", 2), ("normal", 1)):
        config = {"database_url": f"sqlite:///{tmp_path}/sync-{configured}.db", "instance_path": str(tmp_path)}
        if configured is not None:
            config["sqlite_synchronous"] = configured
        engine = get_engine(create_app(config))
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == pragma
        engine.dispose()


def test_a_second_writer_thread_waits_for_the_first_instead_of_failing(tmp_path):
    """With SQLite's busy timeout at 0, a write meeting another thread's open write transaction
    would fail at once ("database is locked"); queued on the process's lock, it waits its turn."""
    engine = _engine(tmp_path, busy_timeout_ms=0)
    order: list[str] = []
    errors: list[BaseException] = []
    first_wrote = threading.Event()

    def second() -> None:
        first_wrote.wait()
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t (who) VALUES ('second')"))
            order.append("second committed")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES ('first')"))
        first_wrote.set()
        time.sleep(0.3)  # the second thread meets this open transaction (not a measured time)
        order.append("first committing")
    thread.join(timeout=30)
    assert errors == []
    assert order == ["first committing", "second committed"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY id")).scalars().all() == ["first", "second"]
    engine.dispose()


def test_the_lock_is_released_by_a_rollback_and_reads_never_take_it(tmp_path):
    engine = _engine(tmp_path, busy_timeout_ms=0)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES ('gone')"))
        conn.rollback()
    done: list[str] = []

    def write() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (who) VALUES ('kept')"))
        done.append("written")

    with engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM t")).scalar()
        thread = threading.Thread(target=write)
        thread.start()
        thread.join(timeout=30)
    assert done == ["written"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t")).scalars().all() == ["kept"]
    engine.dispose()


# A process that holds a write transaction for a while, then commits; started by the tests below.
_HOLDER = """
import sys, time
from sqlalchemy import event, text
from app.db import make_engine

engine = make_engine(sys.argv[1])

@event.listens_for(engine, "connect")
def _timeout(dbapi_conn, _record):
    dbapi_conn.execute("PRAGMA busy_timeout=0")

with engine.begin() as conn:
    conn.execute(text("INSERT INTO t (who) VALUES ('other process')"))
    print("writing", flush=True)
    time.sleep(0.5)  # the test's process meets this open transaction (not a measured time)
print("committed", flush=True)
"""


def test_a_writer_in_another_process_waits_its_turn_instead_of_failing(tmp_path):
    """Between processes too (gunicorn's workers): with SQLite's busy timeout at 0 the second
    process's write would fail at once ("database is locked"); it waits on the writer lock file."""
    engine = _engine(tmp_path, busy_timeout_ms=0)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(engine.url)], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "writing"
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (who) VALUES ('this process')"))
        assert holder.stdout.readline().strip() == "committed"  # it committed before this one could write
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY id")).scalars().all() == ["other process", "this process"]
    assert Path(f"{engine.url.database}-writer-lock").exists()
    engine.dispose()


def test_a_forked_child_does_not_share_its_parents_writer_lock(tmp_path):
    """A descriptor inherited through fork shares its flock with the parent: the child (a worker of
    gunicorn's preloaded master) opens the lock file again, and so waits for the parent's write."""
    engine = _engine(tmp_path, busy_timeout_ms=0)
    with engine.begin() as conn:  # the parent has taken (and released) the lock once: its file is open
        conn.execute(text("INSERT INTO t (who) VALUES ('before')"))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh pool, as app.db gives a forked worker; writes once the parent does
        os.close(write_end)
        status = 1
        try:
            engine.dispose(close=False)
            os.read(read_end, 1)
            with engine.begin() as child:
                child.execute(text("INSERT INTO t (who) VALUES ('child')"))
            status = 0
        finally:
            os._exit(status)
    os.close(read_end)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (who) VALUES ('parent')"))
        os.write(write_end, b"x")
        time.sleep(0.3)  # the child meets this open transaction (not a measured time)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's write failed: it did not wait for the parent's"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT who FROM t ORDER BY id")).scalars().all() == ["before", "parent", "child"]
    engine.dispose()
