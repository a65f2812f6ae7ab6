"""The server benchmarks still run (issue 11): ``bench/grant_cpu.py`` seeds the application,
checks every answer of the grant, the floor endpoint and the bare grant (200 and a token, else
it stops with the answer) and prints its figures. Figures are not checked (no timing assertion):
that the bench runs against the code as it is, which it reaches into, is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_grant_cpu_runs_the_grant_the_floor_and_the_bare_grant(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "grant_cpu.py"), "--rounds", "1", "--batches", "2", "--batch", "3"]
        + ["--bare"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    rounds = [line for line in done.stdout.splitlines() if line.startswith("round 1:")]
    assert len(rounds) == 1 and "grant/floor" in rounds[0] and "bare/floor" in rounds[0], done.stdout
