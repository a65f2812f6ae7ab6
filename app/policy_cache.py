"""Policy texts read at start, kept between starts (issue 11, point 1: ready within 10 s).

Reading a policy text (``policy_lang.parse_source``: the grammar, the syntax tree) is about
two thirds of the start-up compile. This cache keeps each text's reading in the instance folder
(``policy-cache/``, setting ``policy_cache``), one file per text, so that a start reads from
it every text that did not change and reads again only the others; checking and compiling
the set run at every start as before.

Safe to lose, never trusted beyond what made it:

* a file is named by the SHA-256 of the library's own code (every ``policy_lang`` source file:
  any change to the library, a version or a local edit, is a new name, so a file written by
  another version is never read), the Python version, and the text's name, owner and text:
  a changed text is another file;
* it holds the SHA-256 of its pickled payload, checked before the payload is unpickled; a file
  that is truncated, corrupt or unreadable is ignored (that text is read afresh) and written
  again;
* it is read only when it is a regular file of this process's user that no one else may write
  (the folder is made ``0700``, the files ``0600``, written to a temporary name and renamed);
* it is written only after the set checked, and files no text of the set uses go then.

Measured at 100,000 rules in 1,001 files (``bench/server.py``'s files, one process): reading every
text 4.5 to 4.7 s of CPU; from the cache 1.7 to 2.0 s; writing the whole cache 1.8 to 3.2 s (the
first start, or the first after the library changed; 50 MB). A gunicorn restart at that size
took 5.2 to 5.8 s of the master's CPU, against 9.8 to 10.7 s for a first start
(docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import logging
import os
import pickle
import stat
import sys
from pathlib import Path

import policy_lang

log = logging.getLogger(__name__)

#: The files' name ends so; anything else in the folder is left alone.
SUFFIX = ".parsed"
_MAGIC = b"uma-policy-cache 1\n"


def library_tag() -> str:
    """SHA-256 of the code of ``policy_lang`` (every ``.py`` file under it, by path), of this
    module (which writes and reads the files) and the Python version: what a cached reading
    depends on besides its text."""
    root = Path(str(importlib.resources.files("policy_lang")))
    h = hashlib.sha256(sys.version.encode() + b"\0" + Path(__file__).read_bytes() + b"\0")
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class ParsedCache:
    """Readings (:class:`policy_lang.ParsedSource`) of policy texts in one folder. Used by one
    thread at a time (the start-up compile)."""

    def __init__(self, folder: Path, tag: str | None = None):
        self.folder = folder
        self.tag = tag if tag is not None else library_tag()
        self.hits = self.misses = 0
        self._wanted: dict[str, policy_lang.ParsedSource | None] = {}  # file name → reading to write

    def _name(self, src: policy_lang.Source) -> str:
        h = hashlib.sha256(self.tag.encode() + b"\0")
        for part in (src.name, src.owner or "", src.text):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return h.hexdigest() + SUFFIX

    def parsed(self, src: policy_lang.Source) -> policy_lang.ParsedSource:
        """The reading of ``src``: from the cache when a trusted file has it, else read now
        (and written by :meth:`write`)."""
        name = self._name(src)
        got = self._read(self.folder / name)
        if isinstance(got, policy_lang.ParsedSource) and got.source == src:
            self.hits += 1
            self._wanted[name] = None
            return got
        self.misses += 1
        parsed = policy_lang.parse_source(src)
        self._wanted[name] = parsed
        return parsed

    @staticmethod
    def _read(path: Path) -> object:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not _private(st, 0o077):
                log.warning("policy cache file %s ignored: not a private file of this user", path)
                return None
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read()
        except OSError:
            return None
        finally:
            os.close(fd)
        head, digest, payload = data[: len(_MAGIC)], data[len(_MAGIC) : len(_MAGIC) + 32], data[len(_MAGIC) + 32 :]
        if head != _MAGIC or hashlib.sha256(payload).digest() != digest:
            return None
        try:
            return pickle.loads(payload)
        except Exception:  # a file of this user that does not unpickle: read the text again
            return None

    def write(self) -> None:
        """Write the readings made since the start, and remove the files the texts asked for
        (:meth:`parsed`) do not use. Errors are logged: the cache is only a shortcut."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(os.stat(self.folder), 0o022, directory=True):
                log.warning("policy cache folder %s not written: not a private folder of this user", self.folder)
                return
            for name, parsed in self._wanted.items():
                if parsed is not None:
                    self._write(self.folder / name, parsed)
            for entry in os.scandir(self.folder):
                if entry.name.endswith(SUFFIX) and entry.name not in self._wanted:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        except OSError as exc:
            log.warning("policy cache folder %s not written: %s", self.folder, exc)
        finally:
            self._wanted = {name: None for name in self._wanted}

    @staticmethod
    def _write(path: Path, parsed: policy_lang.ParsedSource) -> None:
        payload = pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _private(st: os.stat_result, others: int, directory: bool = False) -> bool:
    """A file (or folder) of this process's user, without the permission bits ``others``."""
    kind = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    return kind and st.st_uid == os.getuid() and not st.st_mode & others
