"""The Chromium that the browser tests drive, obtained where it is missing (issue 13 point 6).

The README's test command is all the set-up a fresh machine needs, so the first browser test
of a run finds a Chromium, in this order:

1. ``UMA_TEST_CHROMIUM``: a Chromium (or Chrome) executable chosen by the person running the
   tests;
2. Debian's package, ``/usr/bin/chromium``;
3. Playwright's own Chromium, if an earlier run downloaded it;
4. otherwise it installs one, under a lock so that parallel test workers do it once: Debian's
   package where the user may install it (root, or ``sudo`` without a password), else
   Playwright's own download (``python -m playwright install chromium``).

If all of that fails, the browser tests fail (never skip) with what was tried and why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SYSTEM_CHROMIUM = "/usr/bin/chromium"
ENV = "UMA_TEST_CHROMIUM"
LOCK = Path(tempfile.gettempdir()) / "uma-test-chromium.lock"


def _playwright_chromium() -> str | None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        path = p.chromium.executable_path
    return path if path and os.path.exists(path) else None


def _run(argv: list[str], tried: list[str]) -> bool:
    print(f"\n[browser tests] {' '.join(argv)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        tried.append(f"{' '.join(argv)}: {exc}")
        return False
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        tried.append(f"{' '.join(argv)}: exit {done.returncode}: {' / '.join(tail)}")
    return done.returncode == 0


def _install_system_package(tried: list[str]) -> bool:
    apt = shutil.which("apt-get")
    if apt is None:
        tried.append("apt-get: not on this machine")
        return False
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        tried.append("apt-get: not root and no password-less sudo")
        return False
    env_argv = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", apt]
    if not _run([*env_argv, "install", "-y", "-qq", "chromium"], tried):
        _run([*env_argv, "update", "-qq"], tried)
        _run([*env_argv, "install", "-y", "-qq", "chromium"], tried)
    if os.path.exists(SYSTEM_CHROMIUM):
        return True
    tried.append(f"apt-get install chromium: {SYSTEM_CHROMIUM} is still missing")
    return False


def chromium_executable() -> str:
    """The path of a Chromium to launch, installing one if needed (see the module's text)."""
    chosen = os.environ.get(ENV)
    if chosen:
        if not os.path.exists(chosen):
            pytest.fail(f"{ENV}={chosen} does not exist")
        return chosen
    if os.path.exists(SYSTEM_CHROMIUM):
        return SYSTEM_CHROMIUM
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test worker installs; the others wait and find it
        if os.path.exists(SYSTEM_CHROMIUM):
            return SYSTEM_CHROMIUM
        found = _playwright_chromium()
        if found:
            return found
        tried: list[str] = []
        if _install_system_package(tried):
            return SYSTEM_CHROMIUM
        if _run([sys.executable, "-m", "playwright", "install", "chromium"], tried):
            found = _playwright_chromium()
            if found:
                return found
            tried.append("playwright install chromium: finished, but its Chromium is not where Playwright looks")
    pytest.fail(
        "the browser tests need Chromium and none could be obtained:\n  "
        + "\n  ".join(tried)
        + f"\ninstall Debian's chromium package, or set {ENV} to a Chromium executable"
    )
