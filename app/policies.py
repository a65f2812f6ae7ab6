"""The policies in use: where their text comes from, their versions, the compiled set.

Sources of one policy set:

* the operator's files, ``*.policy`` under the ``policy_dir`` setting (default
  ``./policies``), read recursively (files and folders whose name starts with a dot
  are skipped: editors' temporary files, the ``..data`` folders of a Kubernetes
  ConfigMap);
* the owners' uploaded texts (``policy_documents``, the active version of each
  owner's document), compiled with ``owner=`` so they can only govern that owner.

One number says which set every process must decide with: the policy-set
version in the database (:func:`app.db.policy_set_version`). It is bumped in the
transaction that stores an owner's upload (or restore, or removal), and by
whichever process first notices that the operator's files changed (the hash of
every file is stored beside the version).

Compiled before traffic, changed without stalls (issue 11, points 1 and 2):

* **At start** the whole set is compiled once, before the first request
  (:meth:`PolicyStore.sync`, called by ``create_app`` and ``uma serve``; with
  gunicorn's ``preload_app`` in the master, before the workers fork, so that they
  share it: ``app/gunicorn_conf.py``). ``/readyz`` answers 503 until then.
* **Afterwards** a background thread per process (:meth:`PolicyStore.start`) does
  all checking and compiling. Every ``policy_reload_interval`` seconds it reads the
  version (one small query) and, for the files, compares each file's ``stat``
  (mtime, size, inode) with the last scan, outside any lock that a request takes;
  where inotify works (``watchdog``) a change in the folder wakes it at once, and
  the stat scan then runs only on such an event (and once a minute). A grant or an
  introspection that reads a newer version with its ticket or RPT wakes it too.
* **Per unit**: a changed text is compiled as its own unit and replaces only its
  unit in the set in use (:class:`UnitCache`, ``PolicySet.replace``/``remove``);
  the new set goes into use with one assignment. A request reads the set in use
  once and decides with it: it never waits for a compile and sees a change
  entirely or not at all (a change of several files that one scan saw, or one
  upload, is one new set).
* **Bounded delay**: every process decides with the version stored in the
  database at most ``policy_reload_interval`` seconds plus the time to compile the
  changed texts after the change; at once in the process that stored an upload.
* **A set that does not check never goes into use**: the process keeps serving its
  last good set, logs the diagnostics and stores them beside the version
  (``GET /policies/status`` shows them). When only the files are broken, the
  owners' uploads are still compiled with the last good files, so an operator's
  typo does not freeze the owners' changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

import policy_lang

from .db import bump_policy_set_version, get_engine, policy_set_version
from .models import PolicyDocument, PolicySetVersion
from .policy_cache import ParsedCache
from .security import now

log = logging.getLogger(__name__)

#: Name under which an owner's uploaded document appears in diagnostics and rule references.
UPLOAD_PREFIX = "uploads"
MAX_POLICY_BYTES = 256 * 1024
#: Where inotify wakes the background thread on every change, the full stat scan of the files
#: still runs this often (seconds): a safety net for events the kernel dropped or never sent
#: (network file systems, a symlinked folder swapped for another).
RESCAN_WHEN_WATCHED = 60.0
#: The background thread's shortest period (``policy_reload_interval = 0``).
MIN_PERIOD = 0.1
#: After a file event, the scan waits until the folder has been quiet this long (at most 1 s),
#: so that an editor's truncate-and-write is read once, written.
QUIET = 0.05


def upload_name(owner: str, name: str = "owner.policy") -> str:
    return f"{UPLOAD_PREFIX}/{owner}/{name}"


def diagnostics_json(diags: list[policy_lang.Diagnostic]) -> list[dict[str, Any]]:
    """Diagnostics as JSON objects (file, line, column, code, message, hint, rendered text)."""
    out = []
    for d in diags:
        out.append(
            {
                "code": d.code,
                "severity": d.severity,
                "message": d.message,
                "file": d.file,
                "line": d.line,
                "column": d.column,
                "hint": getattr(d, "hint", None),
                "rendered": d.render(),
            }
        )
    return out


class PolicyRejected(ValueError):
    """An owner's text does not check; ``diagnostics`` says why (JSON-ready)."""

    def __init__(self, diagnostics: list[dict[str, Any]]):
        super().__init__("the policy does not check")
        self.diagnostics = diagnostics


@dataclass(frozen=True)
class InUse:
    """The set a process decides with and what it was built from. Never changed once made:
    a new version is a new ``InUse``, put in place with one assignment."""

    version: int
    policy_set: policy_lang.PolicySet
    file_sources: list[policy_lang.Source]
    upload_sources: list[policy_lang.Source]
    #: how many rules the set has (counted per unit, without walking the rules)
    rules: int = 0
    #: the owners an ``ask`` rule can apply to (None: an ask rule of a global file, so everyone)
    asking: frozenset[str | None] = frozenset()
    compiled_at: float = field(default_factory=time.time)
    #: how long building it took, seconds (the ``uma_policy_set_compile_seconds`` gauge)
    compile_seconds: float = 0.0

    def may_ask(self, owner: str) -> bool:
        """Whether an ``ask`` rule can apply to ``owner``'s resources: only then do the owner's
        answers count (an approval counts only where an ask applies), so only then are they read."""
        return owner in self.asking or None in self.asking


_nothing: InUse | None = None
#: Taken to start a store's background thread (once per store and process).
_starting = threading.Lock()


def _no_policies() -> InUse:
    """What a process decides with before any set checked: no rules (default deny)."""
    global _nothing
    if _nothing is None:
        _nothing = InUse(-1, policy_lang.compile_sources([]), [], [])
    return _nothing


class UnitCache:
    """Policy texts compiled one unit each (:class:`policy_lang.Unit`), by (name, text, owner),
    and sets built by changing only the units whose text changed.

    A new version of the policy set is the set in use with each added, changed or removed
    text replaced (:meth:`policy_lang.PolicySet.replace` / ``remove``): reading, checking
    and compiling only that text (with the owner's other texts and the global files it is
    checked with), and sharing everything else with the set in use. Units are immutable, so
    successive sets share them. Entries unused by the last set built go.

    Beside each unit it keeps what the server asks of a whole set (how many rules, whether an
    ``ask`` rule is among them), so that a new set's figures are summed over its units rather
    than over its rules: walking every rule of a set built before gunicorn forked would touch
    (and so copy) the memory every worker shares.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: where texts are read from while set (the start-up compile): :mod:`app.policy_cache`
        self.disk: ParsedCache | None = None
        self._entries: dict[tuple[str, str, str | None], policy_lang.Unit] = {}
        self._facts: dict[policy_lang.Unit, tuple[int, bool]] = {}

    def unit(self, src: policy_lang.Source) -> policy_lang.Unit:
        key = (src.name, src.text, src.owner)
        with self._lock:
            hit = self._entries.get(key)
        if hit is None:
            disk = self.disk
            hit = policy_lang.Unit(disk.parsed(src)) if disk is not None else policy_lang.compile_unit(src)
            with self._lock:
                self._entries[key] = hit
        return hit

    def facts(self, unit: policy_lang.Unit) -> tuple[int, bool]:
        """(rules, has an ask rule) of one unit."""
        got = self._facts.get(unit)
        if got is None:
            rules = unit.file.rules if unit.file is not None else []
            got = (len(rules), any(r.effect == "ask" for r in rules))
            with self._lock:
                self._facts[unit] = got
        return got

    def build(
        self, sources: list[policy_lang.Source], start: policy_lang.PolicySet | None = None
    ) -> policy_lang.PolicySet:
        """The set of ``sources``: ``start`` with the texts that differ replaced one by one, or
        (without a start, or when several texts changed and a step in between does not check)
        built from all the units. Raises ``PolicyError`` (every diagnostic of the set) when the
        texts do not check."""
        if start is not None:
            wanted = {s.name: s for s in sources}
            gone = [n for n in start.units if n not in wanted]
            changed = [s for n, s in wanted.items() if n not in start.units or _differ(start.units[n].source, s)]
            try:
                ps = start
                for name in gone:
                    ps = ps.remove(name)
                for src in changed:
                    ps = ps.replace(self.unit(src))
                return ps
            except policy_lang.PolicyError:
                if len(gone) + len(changed) == 1:
                    raise  # one text changed: replace reports what the resulting texts give
                # two texts may only check together: the whole set decides
        return policy_lang.PolicySet.from_units(self.unit(s) for s in sources)

    def in_use(
        self,
        version: int,
        ps: policy_lang.PolicySet,
        files: list[policy_lang.Source],
        uploads: list[policy_lang.Source],
        compile_seconds: float = 0.0,
    ) -> InUse:
        rules = 0
        asking: set[str | None] = set()
        for unit in ps.units.values():
            count, asks = self.facts(unit)
            rules += count
            if asks and unit.file is not None:
                asking.add(None if unit.file.is_global else unit.file.owner)
        return InUse(version, ps, list(files), list(uploads), rules, frozenset(asking), compile_seconds=compile_seconds)

    def keep_only(self, sources: list[policy_lang.Source]) -> None:
        keep = {(s.name, s.text, s.owner) for s in sources}
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k in keep}
            kept = set(self._entries.values())
            self._facts = {u: f for u, f in self._facts.items() if u in kept}


def _differ(a: policy_lang.Source, b: policy_lang.Source) -> bool:
    """Whether two texts differ; the file scan keeps the same object for an unchanged file, so a
    change compares 1,001 texts by identity rather than by value (4 ms of the 20 ms a change costs
    at 100,000 rules)."""
    return a is not b and a != b


@dataclass(frozen=True)
class _Seen:
    signature: tuple[int, int, int] | None  # (mtime_ns, size, inode); None: could not be read
    digest: str
    source: policy_lang.Source


class PolicyFiles:
    """The operator's files, checked per file: a ``stat`` each, and only the files whose
    (mtime, size, inode) moved are read again. Used by one thread at a time (the store's sync)."""

    def __init__(self, folder: Path):
        self.folder = folder
        #: the real folder last scanned (a symlinked folder may be swapped for another)
        self.root = os.path.realpath(folder)
        self._seen: dict[str, _Seen] = {}
        self.digest = self._digest({})

    def sources(self) -> list[policy_lang.Source]:
        return [entry.source for entry in self._seen.values()]

    def scan(self, only: Collection[str] | None = None) -> bool:
        """Look at every file, or (``only``) at these paths alone, which inotify named: the files
        written, created, moved or removed since the last scan. Returns whether every changed
        file read consistently (False: one was being written, and its last text is kept until
        the next scan)."""
        # The real folder once per scan: a symlinked folder swapped during the scan is read
        # entirely before or entirely after.
        root = os.path.realpath(self.folder)
        if only is not None and root == self.root:
            seen = dict(self._seen)
            found = self._named(root, only, seen)
        else:
            self.root = root
            seen = {}
            found = self._files(root)
        settled = True
        for path, rel, st in found:
            key = f"{self.folder.name}/{rel}"  # "policies/alice.policy": the same on every machine
            old = self._seen.get(key)
            signature: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
            if old is not None and old.signature == signature:
                seen[key] = old
                continue
            try:
                with open(path, "rb") as fh:
                    raw = fh.read()
                    after = os.fstat(fh.fileno())
                if (after.st_mtime_ns, after.st_size) != (st.st_mtime_ns, st.st_size):
                    settled = False  # being written: keep what was there, read it again soon
                    if old is not None:
                        seen[key] = old
                    continue
                text = raw.decode("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                # Unreadable: hash its error so a fix is noticed (read again at every scan); the
                # compile reports it.
                text = f"\x00unreadable: {exc}"
                raw = text.encode()
                signature = None
            seen[key] = _Seen(signature, hashlib.sha256(raw).hexdigest(), policy_lang.Source(key, text))
        self._seen = dict(sorted(seen.items()))
        self.digest = self._digest(self._seen)
        return settled

    def _named(
        self, root: str, paths: Collection[str], seen: dict[str, _Seen]
    ) -> list[tuple[str, str, os.stat_result]]:
        """(path, path relative to ``root``, stat) of those of ``paths`` that are policy files
        the full scan would take; the others that were policy files leave ``seen`` (removed, or
        moved away). The same choice of files as :meth:`_files`: no name starting with a dot on
        the way, ``*.policy``, a regular file (a symlink to one included)."""
        out: list[tuple[str, str, os.stat_result]] = []
        for path in sorted(set(paths)):
            rel = os.path.relpath(path, root)
            parts = rel.split(os.sep)
            if rel.startswith("..") or any(part.startswith(".") for part in parts) or not rel.endswith(".policy"):
                continue
            rel = "/".join(parts)
            try:
                st = os.stat(path)
                folder = root
                for part in parts[:-1]:  # the full scan does not enter a symlinked folder
                    folder = os.path.join(folder, part)
                    if os.path.islink(folder):
                        raise FileNotFoundError(path)
                if not stat.S_ISREG(st.st_mode):
                    raise FileNotFoundError(path)
            except OSError:
                seen.pop(f"{self.folder.name}/{rel}", None)
                continue
            out.append((path, rel, st))
        return out

    @staticmethod
    def _files(root: str) -> list[tuple[str, str, os.stat_result]]:
        """(path, path relative to ``root``, stat) of every ``*.policy`` file, in name order. One
        ``scandir`` per folder and one ``stat`` per file: a scan of 1,000 unchanged files takes
        11 to 16 ms, where ``os.walk`` with a ``stat``, ``isfile`` and ``relpath`` per file took
        40 to 45 ms (same machine, same load): time the background thread holds the interpreter
        from the requests of its process, at every change and, without inotify, every period."""
        out: list[tuple[str, str, os.stat_result]] = []

        def walk(folder: str, prefix: str) -> None:
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError:
                return
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        walk(entry.path, f"{prefix}{entry.name}/")
                    elif entry.name.endswith(".policy") and entry.is_file():
                        out.append((entry.path, prefix + entry.name, entry.stat()))
                except OSError:
                    continue  # gone since the folder was listed

        walk(root, "")
        return out

    @staticmethod
    def _digest(seen: dict[str, _Seen]) -> str:
        h = hashlib.sha256()
        for key, entry in seen.items():
            h.update(key.encode() + b"\0" + entry.digest.encode() + b"\0")
        return h.hexdigest()


class UploadedTexts:
    """The owners' active uploads, read as (id, owner, name) and the texts of new rows only: a
    stored version is never changed (a new text is a new row). Used by one thread at a time."""

    def __init__(self) -> None:
        self._by_id: dict[int, policy_lang.Source] = {}

    def read(self, session: Session) -> list[policy_lang.Source]:
        rows = session.execute(
            select(PolicyDocument.id, PolicyDocument.owner, PolicyDocument.name)
            .where(PolicyDocument.active.is_(True))
            .order_by(PolicyDocument.owner, PolicyDocument.name)
        ).all()
        missing = [r.id for r in rows if r.id not in self._by_id]
        for at in range(0, len(missing), 500):
            for doc_id, owner, name, text in session.execute(
                select(PolicyDocument.id, PolicyDocument.owner, PolicyDocument.name, PolicyDocument.text).where(
                    PolicyDocument.id.in_(missing[at : at + 500])
                )
            ):
                self._by_id[doc_id] = policy_lang.Source(upload_name(owner, name), text, owner=owner)
        self._by_id = {r.id: self._by_id[r.id] for r in rows}
        return list(self._by_id.values())


class PolicyStore:
    """One per Flask app (``app.extensions["uma_policies"]``); thread-safe.

    Requests read :meth:`current` (or :meth:`latest`), which never compiles nor takes a lock
    that compiling holds; :meth:`sync` (at start, then the background thread) does the rest."""

    def __init__(self, engine: Engine, policy_dir: str, interval: float, cache_dir: str | None = None):
        self.engine = engine
        #: where the start-up compile keeps the texts it read (None: nowhere)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.policy_dir = Path(policy_dir)
        self.interval = max(0.0, float(interval))
        self._in_use: InUse | None = None
        self._units = UnitCache()
        self._files = PolicyFiles(self.policy_dir)
        self._uploads = UploadedTexts()
        self._scanned = False
        self._scanned_at = float("-inf")
        self._failed_version: int | None = None
        self._last_error: list[dict[str, Any]] | None = None
        self._pid: int | None = None  # the process whose background thread runs
        self._thread: threading.Thread | None = None
        self._watched: str | None = None  # the real folder inotify watches, if it does
        self._observer: Any = None
        self._process_local()

    def _process_local(self) -> None:
        """Locks and events of this process (a forked worker makes its own: a lock held in the
        parent at the fork would stay held in the child)."""
        self._swap = threading.Lock()  # held only to compare and put a new set in place
        self._sync_lock = threading.Lock()  # one sync at a time; never taken by a request
        self._wake = threading.Event()
        self._touched = threading.Event()  # a file changed since the last scan (inotify)
        self._named_lock = threading.Lock()
        self._named: set[str] = set()  # the paths inotify named since the last scan
        self._scan_all = True  # an event the named paths do not describe: a folder, the link
        self._stopped = threading.Event()

    # -- what requests read ----------------------------------------------------
    def current(self) -> InUse:
        """The set to decide with now. Never waits: one attribute read."""
        in_use = self._in_use
        return in_use if in_use is not None else _no_policies()

    def latest(self, session: Session) -> InUse:
        """The set in use; when the version stored in the database (read with the request's
        ticket or RPT, or one small read) is another, the background thread is woken to compile
        it, and this request decides with the set in use meanwhile."""
        in_use = self.current()
        version = policy_set_version(session)
        if version != in_use.version and version != self._failed_version:
            self.wake()
        return in_use

    @property
    def compiled(self) -> bool:
        """Whether a set that checked is in use (``/readyz``)."""
        return self._in_use is not None

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details) for ``/readyz``: a checked set in use and the database answering."""
        database = "reachable"
        try:
            with self.engine.connect() as conn:
                try:
                    conn.execute(select(PolicySetVersion.version).where(PolicySetVersion.id == 1)).one_or_none()
                except SQLAlchemyError:
                    database = "not migrated"  # it answers, but not with this server's tables
        except SQLAlchemyError:
            database = "unreachable"
        in_use = self._in_use
        details: dict[str, Any] = {
            "database": database,
            "policies": "compiled" if in_use is not None else "not compiled",
            "policy_set_version": in_use.version if in_use is not None else None,
        }
        return in_use is not None and database == "reachable", details

    # -- bringing the set in use to the stored version ---------------------------
    def load(self) -> bool:
        """The start-up compile: :meth:`sync` before traffic, with the cyclic garbage collector's
        oldest generation held off meanwhile (see :func:`oldest_generation_held`) and the texts
        read from the cache of earlier starts where they did not change (:mod:`app.policy_cache`;
        written again after a set that checked)."""
        disk = ParsedCache(self.cache_dir) if self.cache_dir is not None else None
        with oldest_generation_held():
            self._units.disk = disk
            try:
                installed = self.sync()
            finally:
                self._units.disk = None
            if disk is not None and installed:
                disk.write()
        if disk is not None:
            log.info("policy cache %s: %d texts read from it, %d read afresh", disk.folder, disk.hits, disk.misses)
        return installed

    def sync(self, *, scan: bool = True, named: bool = False) -> bool:
        """Check the files (when ``scan``: every file, or with ``named`` only those inotify named
        since the last scan, unless an event said more) and the stored version once; compile what
        changed and put the new set in use. Returns whether a new set went into use. Called at
        start (before traffic) and by the background thread; never by a request."""
        with self._sync_lock:
            if scan or not self._scanned:
                with self._named_lock:
                    paths, whole = self._named, self._scan_all or not named or not self._scanned
                    self._named, self._scan_all = set(), False
                if not self._files.scan(None if whole else paths):
                    with self._named_lock:
                        self._scan_all = True  # a file was being written: scan again soon
                    self._touched.set()
                    self._wake.set()
                self._scanned = True
                if whole:
                    self._scanned_at = time.monotonic()
            files = self._files.sources()
            start = self._in_use
            with Session(self.engine, expire_on_commit=False) as session:
                row = session.execute(
                    select(PolicySetVersion.version, PolicySetVersion.files_hash, PolicySetVersion.error_version).where(
                        PolicySetVersion.id == 1
                    )
                ).one_or_none()
                version = int(row[0]) if row is not None else 0
                recorded_error = row is not None and row[2] is not None
                if row is not None and row[1] != self._files.digest:
                    version = self._files_changed(session, self._files.digest)
                if version == self._failed_version or (start is not None and version == start.version):
                    return False
                uploads = self._uploads.read(session)
            began = time.perf_counter()
            new, errors = self._compile(version, files, uploads, start)
            took = time.perf_counter() - began
            if new is not None:
                new = dataclasses.replace(new, compile_seconds=took)  # what the gauge of /metrics shows
            installed = new is not None and self._install(new, start)
            self._report(version, errors, new if installed else None, took, recorded_error)
            return installed

    def _files_changed(self, session: Session, digest: str) -> int:
        """Bump the version for files that differ from those last recorded (once across processes)."""
        result = session.execute(
            update(PolicySetVersion)
            .where(
                PolicySetVersion.id == 1,
                or_(PolicySetVersion.files_hash.is_(None), PolicySetVersion.files_hash != digest),
            )
            .values(version=PolicySetVersion.version + 1, files_hash=digest, updated_at=now())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:
            log.info("policy files changed: policy-set version bumped")
        session.commit()
        version = session.execute(select(PolicySetVersion.version).where(PolicySetVersion.id == 1)).scalar_one()
        return int(version)

    def _compile(
        self,
        version: int,
        files: list[policy_lang.Source],
        uploads: list[policy_lang.Source],
        start: InUse | None,
    ) -> tuple[InUse | None, list[policy_lang.Diagnostic]]:
        """The set of ``version`` (or, when the files do not check, the last good files with the
        current uploads), and the errors of the set as stored."""
        attempts = [files]
        if start is not None and start.file_sources != files:
            attempts.append(start.file_sources)
        errors: list[policy_lang.Diagnostic] = []
        for fs in attempts:
            try:
                ps = self._units.build([*fs, *uploads], start.policy_set if start is not None else None)
            except policy_lang.PolicyError as exc:
                if not errors:
                    errors = [d for d in exc.diagnostics if d.is_error]
                continue
            new = self._units.in_use(version, ps, fs, uploads)
            self._units.keep_only([*fs, *uploads])
            return new, errors
        if start is not None:
            self._units.keep_only([*start.file_sources, *start.upload_sources])
        return None, errors

    def _install(self, new: InUse, start: InUse | None) -> bool:
        """Put ``new`` in use, unless a newer set went in since ``start`` was read."""
        with self._swap:
            now_in_use = self._in_use
            if now_in_use is start or now_in_use is None or new.version > now_in_use.version:
                self._in_use = new
                return True
            return False

    def _report(
        self, version: int, errors: list[policy_lang.Diagnostic], new: InUse | None, took: float, recorded_error: bool
    ) -> None:
        in_use = self._in_use
        if errors:
            self._failed_version = version
            self._last_error = diagnostics_json(errors)
            log.error(
                "policy set version %s does not check; %s:\n%s",
                version,
                "serving the last good files with the current uploads"
                if in_use is not None and in_use.version == version
                else "the last good set keeps serving",
                "\n".join(d.render() for d in errors),
            )
        else:
            self._failed_version = None
            self._last_error = None
        try:
            with Session(self.engine) as session:
                if errors:
                    self._record_error(session, version, self._last_error or [])
                elif recorded_error:  # (a write only when there is an error to clear)
                    self._clear_error(session, version)
        except SQLAlchemyError:
            log.exception("could not record the state of policy set version %s", version)
        if new is not None:
            log.info(
                "policy set version %s in use: %d rules from %d policy files and %d owner uploads (compiled in %.2f s)",
                new.version,
                new.rules,
                len(new.file_sources),
                len(new.upload_sources),
                took,
            )

    @staticmethod
    def _record_error(session: Session, version: int, diags: list[dict[str, Any]]) -> None:
        session.execute(
            update(PolicySetVersion)
            .where(PolicySetVersion.id == 1)
            .values(last_error=diags, error_version=version)
            .execution_options(synchronize_session=False)
        )
        session.commit()

    @staticmethod
    def _clear_error(session: Session, version: int) -> None:
        session.execute(
            update(PolicySetVersion)
            .where(PolicySetVersion.id == 1, PolicySetVersion.error_version <= version)
            .values(last_error=None, error_version=None)
            .execution_options(synchronize_session=False)
        )
        session.commit()

    # -- the background thread ---------------------------------------------------
    def start(self, *, catch_up: bool = False) -> None:
        """Start this process's background thread, once per process (a worker forked from a
        preloaded app starts its own). ``catch_up``: first sync here, before returning (a
        gunicorn worker, before it serves, takes in what changed since the master compiled)."""
        if self._pid == os.getpid():
            return
        with _starting:
            if self._pid == os.getpid() or self._stopped.is_set():
                return
            if self._pid is not None:  # forked from a process that had started it
                self._process_local()
                self._observer = self._watched = None
            self._pid = os.getpid()
            self._watch()
            if catch_up:
                self.sync()
            self._thread = threading.Thread(target=self._run, name="uma-policies", daemon=True)
            self._thread.start()

    def noticed(self, *paths: str, everything: bool = False) -> None:
        """inotify saw these files change (or, ``everything``, a change the named files do not
        describe): the background thread's next scan looks at them (or at every file)."""
        with self._named_lock:
            self._named.update(paths)
            self._scan_all = self._scan_all or everything
        self._touched.set()
        self._wake.set()

    def wake(self) -> None:
        """Have the background thread check now (no wait here)."""
        self._wake.set()

    def stop(self, wait: float = 0.0) -> None:
        """End this process's background thread and file watch (after the sync it may be running);
        ``wait``: seconds to wait for the thread to end."""
        self._stopped.set()
        self._wake.set()
        observer, self._observer = self._observer, None
        if observer is not None:
            with contextlib.suppress(Exception):
                observer.stop()
        thread = self._thread
        if wait > 0 and thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    def _period(self) -> float:
        return max(self.interval, MIN_PERIOD)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._period())
            if self._stopped.is_set():
                return
            self._wake.clear()
            touched = self._touched.is_set()
            if touched:
                self._settle()
            due = time.monotonic() - self._scanned_at >= RESCAN_WHEN_WATCHED
            try:
                with switching_often():
                    watched = self._observer is not None
                    self.sync(scan=not watched or touched or due, named=watched and not due)
                if self._observer is not None and self._files.root != self._watched:
                    # The folder is a symlink that now points elsewhere: watch there, and scan
                    # once more for what changed before the new watch began.
                    self._watch()
                    self._touched.set()
                    self._wake.set()
            except Exception:
                log.exception("checking the policies failed; trying again in %s s", self._period())
                self._stopped.wait(self._period())

    def _settle(self) -> None:
        """Wait until the folder has been quiet for :data:`QUIET` seconds (at most 1 s)."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            self._touched.clear()
            if not self._touched.wait(QUIET):
                return

    def _watch(self) -> None:
        """Watch the folder with inotify (watchdog) where it works; else the stat scan runs every
        period. A change only wakes the thread: the scan decides what changed."""
        from watchdog.events import (
            EVENT_TYPE_CLOSED,
            EVENT_TYPE_CREATED,
            EVENT_TYPE_DELETED,
            EVENT_TYPE_MODIFIED,
            EVENT_TYPE_MOVED,
            FileSystemEvent,
            FileSystemEventHandler,
        )
        from watchdog.observers import Observer

        changes = {EVENT_TYPE_CLOSED, EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED}
        store = self

        folders = {EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED}

        class Touched(FileSystemEventHandler):
            def __init__(self, whole: bool = False):
                self.whole = whole  # the events of the symlink's parent: the scan looks at everything

            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in changes:  # not the scan's own reads (opened, closed_no_write)
                    return
                if self.whole or event.is_directory and event.event_type in folders:
                    store.noticed(everything=True)  # a folder came, went or moved: every file again
                elif not event.is_directory:  # (a folder's own change: its files' events tell)
                    store.noticed(*(os.fsdecode(p) for p in (event.src_path, event.dest_path) if p))
                else:
                    store.noticed()

        old, self._observer, self._watched = self._observer, None, None
        if old is not None:
            with contextlib.suppress(Exception):
                old.stop()
        root = os.path.realpath(self.policy_dir)
        if not os.path.isdir(root):
            return
        try:
            observer = Observer()
            observer.daemon = True
            observer.schedule(Touched(), root, recursive=True)
            if self.policy_dir.is_symlink():  # a symlinked folder swapped for another changes its parent
                observer.schedule(Touched(whole=True), str(self.policy_dir.parent), recursive=False)
            observer.start()
        except (OSError, RuntimeError) as exc:
            log.info("policy folder %s not watched (%s): its files are checked every %s s", root, exc, self._period())
            return
        self._observer, self._watched = observer, root
        with self._named_lock:
            self._scan_all = True  # what changed before the watch began: every file, at the next scan

    # -- status ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``GET /policies/status`` shows."""
        in_use = self.current()
        with Session(self.engine) as session:
            row = session.get(PolicySetVersion, 1)
            documents = session.execute(
                select(func.count()).select_from(PolicyDocument).where(PolicyDocument.active.is_(True))
            ).scalar_one()
        error = None
        if row is not None and row.last_error:
            error = {"version": row.error_version, "diagnostics": row.last_error}
        return {
            "version": row.version if row is not None else 0,
            "serving_version": in_use.version,
            "policy_set_hash": in_use.policy_set.version,
            "rules": in_use.rules,
            "files": [s.name for s in in_use.file_sources],
            "owner_documents": int(documents),
            "reload_interval": self.interval,
            "process": os.getpid(),
            "error": error,
            "warnings": diagnostics_json(in_use.policy_set.diagnostics),
        }

    # -- owner uploads ---------------------------------------------------------
    def validate_upload(self, owner: str, text: str, name: str = "owner.policy") -> list[dict[str, Any]]:
        """Check ``text`` as ``owner``'s document together with the set in use.

        Raises :class:`PolicyRejected` with the errors the upload brings in (its own, and those
        it causes in the owner's other texts, e.g. a claims declaration conflicting with an
        operator's file: the set in use checks, so every error is the upload's); returns the
        upload's warnings."""
        return self._checked(owner, text, name)[0]

    def _checked(
        self, owner: str, text: str, name: str
    ) -> tuple[list[dict[str, Any]], InUse, policy_lang.PolicySet, policy_lang.Source]:
        own = policy_lang.Source(upload_name(owner, name), text, owner=owner)
        if not isinstance(text, str) or not text.strip():
            raise PolicyRejected(
                [
                    {
                        "code": "E-EMPTY",
                        "severity": "error",
                        "message": "the policy text is empty",
                        "file": own.name,
                        "line": None,
                        "column": None,
                        "hint": None,
                        "rendered": "the policy text is empty",
                    }
                ]
            )
        start = self.current()
        try:
            ps = start.policy_set.replace(self._units.unit(own))
        except policy_lang.PolicyError as exc:
            raise PolicyRejected(diagnostics_json([d for d in exc.diagnostics if d.is_error])) from None
        warnings = diagnostics_json([d for d in ps.diagnostics if d.file == own.name])
        return warnings, start, ps, own

    def store_upload(
        self, session: Session, owner: str, text: str, name: str = "owner.policy"
    ) -> tuple[PolicyDocument, list[dict[str, Any]]]:
        """Validate and store a new active version of ``owner``'s document and bump the
        policy-set version (same transaction); the set checked goes into use here at once."""
        began = time.perf_counter()
        warnings, start, ps, own = self._checked(owner, text, name)
        took = time.perf_counter() - began
        latest = session.execute(
            select(func.max(PolicyDocument.version)).where(PolicyDocument.owner == owner, PolicyDocument.name == name)
        ).scalar_one_or_none()
        session.execute(
            update(PolicyDocument)
            .where(PolicyDocument.owner == owner, PolicyDocument.name == name, PolicyDocument.active.is_(True))
            .values(active=False)
            .execution_options(synchronize_session=False)
        )
        doc = PolicyDocument(owner=owner, name=name, version=(latest or 0) + 1, text=text, active=True)
        session.add(doc)
        version = bump_policy_set_version(session)
        session.commit()
        uploads = sorted([*(s for s in start.upload_sources if s.name != own.name), own], key=lambda s: s.name)
        self._changed_here(start, version, ps, uploads, took)
        return doc, warnings

    def remove_upload(self, session: Session, owner: str, name: str = "owner.policy") -> bool:
        start = self.current()
        result = session.execute(
            update(PolicyDocument)
            .where(PolicyDocument.owner == owner, PolicyDocument.name == name, PolicyDocument.active.is_(True))
            .values(active=False)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:
            session.rollback()
            return False
        version = bump_policy_set_version(session)
        session.commit()
        gone = upload_name(owner, name)
        began = time.perf_counter()
        try:
            ps = start.policy_set.remove(gone)
        except policy_lang.PolicyError:
            self.wake()  # the rest does not check without it: the background sync reports it
            return True
        took = time.perf_counter() - began
        self._changed_here(start, version, ps, [s for s in start.upload_sources if s.name != gone], took)
        return True

    def _changed_here(
        self,
        start: InUse,
        version: int,
        ps: policy_lang.PolicySet,
        uploads: list[policy_lang.Source],
        compile_seconds: float,
    ) -> None:
        """After this process stored a change as ``version``: when the set in use was the
        version just before (so the change is the only difference), the set built for the
        check is exactly the new version's and goes into use now; else the new version is compiled here (the changed units) before the
        owner's request returns."""
        if start is self._in_use and start.version == version - 1:
            new = self._units.in_use(version, ps, start.file_sources, uploads, compile_seconds)
            if self._install(new, start):
                log.info("policy set version %s in use (an owner's upload, here)", version)
                return
        # Another change came in between: bring this process up to the stored version now, so
        # that the owner's next request here sees the change (only the changed units compile).
        self.sync(scan=False)


@contextlib.contextmanager
def oldest_generation_held() -> Iterator[None]:
    """No full collection of the cyclic garbage collector inside; its thresholds as they were after.

    The start-up compile makes about 16 objects per rule that stay (1.6 million at 100,000
    rules), and CPython runs a full collection each time the objects that survived since the last
    one reach a quarter of those it kept then: a dozen full collections over a growing heap while
    the set builds, which cost the compile as much as the compile itself. Inside, the young
    generations are collected as usual (the compile's own cyclic garbage, about two objects per
    rule, goes at once) but the oldest is not. At 100,000 rules (bench files, one process, load
    average 2.5 on 2 cores): 12.8 s wall / 9.4 s CPU with the collector as it is, 7.1 s / 5.7 s held
    off, 5.5 s / 5.3 s with the collector off entirely (which would leave 200,000 garbage objects).

    The library (``policy_lang``) leaves the interpreter's state alone; this is the application's
    choice, for its start-up compile only. With gunicorn, the master freezes what it built next
    (``app/gunicorn_conf.py``); ``uma serve`` does the same (:func:`freeze_after_start`)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], 1_000_000_000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


#: The interpreter's switch interval while the background thread compiles a change (seconds).
SWITCH_INTERVAL_WHILE_SYNCING = 0.001


@contextlib.contextmanager
def switching_often() -> Iterator[None]:
    """CPython's switch interval at :data:`SWITCH_INTERVAL_WHILE_SYNCING` inside, as it was after.

    While the background thread compiles a change (about 20 ms of CPU at 100,000 rules: the stat
    scan of 1,001 files, reading, checking and compiling one unit of 100 rules), a request of the
    same process takes the interpreter's lock back after each of its own waits (a socket, the
    database), and with the default interval of 5 ms it may wait up to 5 ms each time behind the
    compiling thread. At 1 ms a wait costs at most 1 ms. ``bench/policy_swap_stall.py`` (100,000
    rules, 18 changes each, alternated, load average 8.2 to 8.6 on 2 cores): a request's worst
    latency during the compile, median 23.9 ms at 5 ms, 15.8 ms at 1 ms."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_WHILE_SYNCING)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def freeze_after_start() -> None:
    """Move every object made so far (the app, the policy set compiled at start) out of the cyclic
    collector's reach (:func:`gc.freeze`): the collections of a serving process then walk only
    what it made since, so none of them holds the interpreter for a walk of the whole set (0.6 s
    at 100,000 rules) while requests wait, and none writes to (so copies) the pages that gunicorn's
    workers share with the master. For a serving process only (gunicorn's master, ``uma serve``):
    frozen objects are never collected, so a process that builds many apps (the tests) must not.
    Without a full collection first: the start-up compile leaves little cyclic garbage (a few
    thousand objects at 100,000 rules), and a collection would add 0.6 s to the start.
    """
    gc.freeze()


def init_policies(app: Flask) -> PolicyStore:
    settings = app.config["UMA_SETTINGS"]
    cache = os.path.join(app.instance_path, "policy-cache") if settings.policy_cache else None
    store = PolicyStore(
        get_engine(app), os.path.abspath(settings.policy_dir), settings.policy_reload_interval, cache_dir=cache
    )
    app.extensions["uma_policies"] = store
    app.before_request(store.start)
    return store


def get_store(app: Flask | None = None) -> PolicyStore:
    return (app or current_app).extensions["uma_policies"]
