"""The policies in use: where their text comes from, their versions, the compiled set.

Sources of one policy set:

* the operator's files, ``*.policy`` under the ``policy_dir`` setting (default
  ``./policies``), read recursively;
* the owners' uploaded texts (``policy_documents``, the active version of each
  owner's document), compiled with ``owner=`` so they can only govern that owner.

One number says which set every process must decide with: the policy-set
version in the database (:func:`app.db.policy_set_version`). It is bumped

* in the transaction that stores an owner's upload (or restore, or removal);
* by whichever process first notices that the operator's files changed: every
  process scans them at most every ``policy_reload_interval`` seconds (stat
  first, content hash only of files whose size or mtime moved) and compares the
  hash with the one stored beside the version.

Every process checks the version at most every ``policy_reload_interval``
seconds and recompiles when it changed, so all processes decide with the same
version within a bounded delay. A set that does not check never goes into use:
the process keeps serving its last good set, logs the diagnostics and stores
them beside the version (``GET /policies/status`` shows them). When only the
files are broken, the owners' uploads are still compiled with the last good
files, so an operator's typo does not freeze the owners' changes.

A set is made of units, one per text (:class:`UnitCache`): a new version
replaces in the set in use only the texts that changed, so one owner's upload
costs reading, checking and compiling that text (checked with the owner's
other texts and the global files), not a rebuild of every owner's rules.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine, func, or_, select, update
from sqlmodel import Session

import policy_lang

from .db import bump_policy_set_version, get_engine, policy_set_version
from .models import PolicyDocument, PolicySetVersion
from .security import now

log = logging.getLogger(__name__)

#: Name under which an owner's uploaded document appears in diagnostics and rule references.
UPLOAD_PREFIX = "uploads"
MAX_POLICY_BYTES = 256 * 1024


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


@dataclass
class _FileEntry:
    mtime_ns: int
    size: int
    digest: str
    text: str


@dataclass
class InUse:
    """The set a process decides with and what it was built from."""

    version: int
    policy_set: policy_lang.PolicySet
    file_sources: list[policy_lang.Source]
    upload_sources: list[policy_lang.Source]
    compiled_at: float = field(default_factory=time.time)


class UnitCache:
    """Policy texts compiled one unit each (:class:`policy_lang.Unit`), by (name, text, owner),
    and sets built by changing only the units whose text changed.

    A new version of the policy set is the set in use with each added, changed or removed
    text replaced (:meth:`policy_lang.PolicySet.replace` / ``remove``): reading, checking
    and compiling only that text (with the owner's other texts and the global files it is
    checked with), and sharing everything else with the set in use. Units are immutable, so
    successive sets share them. Entries unused by the last set built go.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str | None], policy_lang.Unit] = {}

    def unit(self, src: policy_lang.Source) -> policy_lang.Unit:
        key = (src.name, src.text, src.owner)
        with self._lock:
            hit = self._entries.get(key)
        if hit is None:
            hit = policy_lang.compile_unit(src)
            with self._lock:
                self._entries[key] = hit
        return hit

    def build(
        self, sources: list[policy_lang.Source], start: policy_lang.PolicySet | None = None
    ) -> policy_lang.PolicySet:
        """The set of ``sources``: ``start`` with the texts that differ replaced, or (without
        a start, or when a step in between does not check) built from all the units. Raises
        ``PolicyError`` (every diagnostic of the set) when the texts do not check."""
        if start is not None:
            try:
                return self._changed(start, sources)
            except policy_lang.PolicyError:
                pass  # two texts may only check together: the whole set decides
        return policy_lang.PolicySet.from_units(self.unit(s) for s in sources)

    def _changed(self, ps: policy_lang.PolicySet, sources: list[policy_lang.Source]) -> policy_lang.PolicySet:
        wanted = {s.name: s for s in sources}
        for name in [n for n in ps.units if n not in wanted]:
            ps = ps.remove(name)
        for name, src in wanted.items():
            had = ps.units.get(name)
            if had is None or had.source != src:
                ps = ps.replace(self.unit(src))
        return ps

    def diagnostics(
        self, sources: list[policy_lang.Source], start: policy_lang.PolicySet | None = None
    ) -> list[policy_lang.Diagnostic]:
        """Every diagnostic of these texts as one set (its errors, or its warnings)."""
        try:
            return self.build(sources, start).diagnostics
        except policy_lang.PolicyError as exc:
            return list(exc.diagnostics)

    def keep_only(self, sources: list[policy_lang.Source]) -> None:
        keep = {(s.name, s.text, s.owner) for s in sources}
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k in keep}


class PolicyStore:
    """One per Flask app (``app.extensions["uma_policies"]``); thread-safe."""

    def __init__(self, engine: Engine, policy_dir: str, interval: float):
        self.engine = engine
        self.policy_dir = Path(policy_dir)
        self.interval = max(0.0, float(interval))
        self._lock = threading.RLock()
        self._in_use: InUse | None = None
        self._checked_at = 0.0
        self._scanned_at = 0.0
        self._files: dict[str, _FileEntry] = {}
        self._failed_version: int | None = None
        self._last_error: list[dict[str, Any]] | None = None
        self._units = UnitCache()

    # -- the operator's files --------------------------------------------------
    def scan_files(self) -> tuple[str, list[policy_lang.Source]]:
        """(hash over all files, their sources); stat first, rereading only changed files."""
        seen: dict[str, _FileEntry] = {}
        if self.policy_dir.is_dir():
            for path in sorted(p for p in self.policy_dir.rglob("*.policy") if p.is_file()):
                # "policies/alice.policy": the same on every machine, and what rule references show
                key = f"{self.policy_dir.name}/{path.relative_to(self.policy_dir).as_posix()}"
                try:
                    st = path.stat()
                    old = self._files.get(key)
                    if old is not None and old.mtime_ns == st.st_mtime_ns and old.size == st.st_size:
                        seen[key] = old
                        continue
                    raw = path.read_bytes()
                    text = raw.decode("utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    # Unreadable: hash its error so a fix is noticed; the compile reports it.
                    text = f"\x00unreadable: {exc}"
                    raw = text.encode()
                    st = None
                seen[key] = _FileEntry(
                    st.st_mtime_ns if st else 0, st.st_size if st else -1, hashlib.sha256(raw).hexdigest(), text
                )
        self._files = seen
        h = hashlib.sha256()
        for key, entry in seen.items():
            h.update(key.encode() + b"\0" + entry.digest.encode() + b"\0")
        sources = [policy_lang.Source(key, entry.text) for key, entry in seen.items()]
        return h.hexdigest(), sources

    def _sync_files(self, session: Session) -> list[policy_lang.Source]:
        """Bump the version when the files differ from those last recorded (once across processes)."""
        digest, sources = self.scan_files()
        recorded = session.execute(
            select(PolicySetVersion.files_hash).where(PolicySetVersion.id == 1)
        ).scalar_one_or_none()
        if recorded == digest:
            session.rollback()
            return sources
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
        return sources

    # -- uploads ---------------------------------------------------------------
    @staticmethod
    def upload_sources(session: Session, exclude_owner: str | None = None) -> list[policy_lang.Source]:
        rows = session.execute(
            select(PolicyDocument)
            .where(PolicyDocument.active.is_(True))
            .order_by(PolicyDocument.owner, PolicyDocument.name)
        ).scalars()
        return [
            policy_lang.Source(upload_name(r.owner, r.name), r.text, owner=r.owner)
            for r in rows
            if r.owner != exclude_owner
        ]

    # -- the set in use --------------------------------------------------------
    def current(self) -> InUse:
        """The set to decide with now (re-checking the version at most every interval)."""
        with self._lock:
            at = time.monotonic()
            if self._in_use is None or at - self._checked_at >= self.interval:
                self._checked_at = at
                self.refresh(scan=at - self._scanned_at >= self.interval or self._in_use is None)
            if self._in_use is None:
                # Nothing ever checked (e.g. broken files at first start): decide with no rules (default deny).
                self._in_use = InUse(-1, policy_lang.compile_sources([]), [], [])
            return self._in_use

    def latest(self, session: Session) -> InUse:
        """The set of the version stored in the database now: a decision made with it sees a
        policy change made in any process at once (one small read), not after the reload
        interval. A version that does not check leaves the last good set in use."""
        in_use = self.current()
        if policy_set_version(session) not in (in_use.version, self._failed_version):
            self.invalidate()
            in_use = self.current()
        return in_use

    def refresh(self, scan: bool = True) -> None:
        """Check the database version (and the files when ``scan``) and recompile if needed."""
        with self._lock, Session(self.engine, expire_on_commit=False) as session:
            if scan:
                self._scanned_at = time.monotonic()
                file_sources = self._sync_files(session)
            else:
                file_sources = None
            version = policy_set_version(session)
            in_use = self._in_use
            if in_use is not None and in_use.version == version:
                return
            if version == self._failed_version and in_use is not None:
                return
            if file_sources is None:
                file_sources = self.scan_files()[1]
            uploads = self.upload_sources(session)
            attempts = [file_sources]
            if in_use is not None and in_use.file_sources != file_sources:
                attempts.append(in_use.file_sources)
            errors: list[policy_lang.Diagnostic] = []
            for files in attempts:
                try:
                    ps = self._units.build([*files, *uploads], in_use.policy_set if in_use is not None else None)
                    self._units.keep_only([*files, *uploads])
                except policy_lang.PolicyError as exc:
                    if not errors:
                        errors = [d for d in exc.diagnostics if d.is_error]
                    continue
                self._in_use = InUse(version, ps, list(files), uploads)
                break
            if errors:
                self._failed_version = version
                self._last_error = diagnostics_json(errors)
                log.error(
                    "policy set version %s does not check; %s:\n%s",
                    version,
                    "serving the last good files with the current uploads"
                    if self._in_use is not None and self._in_use.version == version
                    else "the last good set keeps serving",
                    "\n".join(d.render() for d in errors),
                )
                self._record_error(session, version, self._last_error)
            else:
                self._failed_version = None
                self._last_error = None
                self._clear_error(session, version)
            if self._in_use is not None and self._in_use.version == version:
                log.info(
                    "policy set version %s in use: %d rules from %d policy files and %d owner uploads",
                    version,
                    len(self._in_use.policy_set.rules),
                    len(self._in_use.file_sources),
                    len(self._in_use.upload_sources),
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
            "rules": len(in_use.policy_set.rules),
            "files": [s.name for s in in_use.file_sources],
            "owner_documents": int(documents),
            "reload_interval": self.interval,
            "error": error,
            "warnings": diagnostics_json(in_use.policy_set.diagnostics),
        }

    # -- owner uploads ---------------------------------------------------------
    def validate_upload(
        self, session: Session, owner: str, text: str, name: str = "owner.policy"
    ) -> list[dict[str, Any]]:
        """Check ``text`` as ``owner``'s document together with the set in use.

        Raises :class:`PolicyRejected` with the errors the upload brings in (its own,
        and those it causes elsewhere, e.g. a claims declaration conflicting with an
        operator's file); returns the upload's warnings.
        """
        if not isinstance(text, str) or not text.strip():
            raise PolicyRejected(
                [
                    {
                        "code": "E-EMPTY",
                        "severity": "error",
                        "message": "the policy text is empty",
                        "file": upload_name(owner, name),
                        "line": None,
                        "column": None,
                        "hint": None,
                        "rendered": "the policy text is empty",
                    }
                ]
            )
        own = policy_lang.Source(upload_name(owner, name), text, owner=owner)
        in_use = self.current()
        base = [*in_use.file_sources, *self.upload_sources(session, exclude_owner=owner)]
        diags = self._units.diagnostics([*base, own], in_use.policy_set)
        errors = [d for d in diags if d.is_error]
        if errors:
            # Refuse what the upload brings in: its own errors, and errors it causes in other
            # files (a conflicting declaration may be reported at either place). Errors the set
            # already had without it are not the owner's to fix.
            before = {d.render() for d in self._units.diagnostics(base, in_use.policy_set) if d.is_error}
            new = [d for d in errors if d.file == own.name or d.render() not in before]
            if new:
                raise PolicyRejected(diagnostics_json(new))
        return diagnostics_json([d for d in diags if not d.is_error and d.file == own.name])

    def store_upload(
        self, session: Session, owner: str, text: str, name: str = "owner.policy"
    ) -> tuple[PolicyDocument, list[dict[str, Any]]]:
        """Validate and store a new active version of ``owner``'s document, bump the
        policy-set version (same transaction) and put the new set in use here at once."""
        warnings = self.validate_upload(session, owner, text, name)
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
        bump_policy_set_version(session)
        session.commit()
        self.invalidate()
        return doc, warnings

    def remove_upload(self, session: Session, owner: str, name: str = "owner.policy") -> bool:
        result = session.execute(
            update(PolicyDocument)
            .where(PolicyDocument.owner == owner, PolicyDocument.name == name, PolicyDocument.active.is_(True))
            .values(active=False)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:
            session.rollback()
            return False
        bump_policy_set_version(session)
        session.commit()
        self.invalidate()
        return True

    def invalidate(self) -> None:
        """Re-check the version on the next :meth:`current` (after a change made here)."""
        with self._lock:
            self._checked_at = float("-inf")


def init_policies(app: Flask) -> PolicyStore:
    settings = app.config["UMA_SETTINGS"]
    store = PolicyStore(get_engine(app), os.path.abspath(settings.policy_dir), settings.policy_reload_interval)
    app.extensions["uma_policies"] = store
    return store


def get_store(app: Flask | None = None) -> PolicyStore:
    return (app or current_app).extensions["uma_policies"]
