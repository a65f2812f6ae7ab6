"""The language's tests stand alone: importing every module of this tree (and
``policy_lang`` itself) loads neither Flask nor the server package ``app``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_policy_lang_tests_import_no_flask_and_no_app() -> None:
    modules = sorted(f"tests.policy_lang.{p.stem}" for p in HERE.glob("*.py") if p.stem != "__init__")
    assert "tests.policy_lang.test_api" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'app', 'werkzeug', 'sqlmodel'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the policy_lang tests load server modules: {out.stdout.strip()}"
