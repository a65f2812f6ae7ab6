"""The served app's fixtures (tests/support/server.py): a database per session and
xdist worker, the live HTTP server, users, clients and PATs."""

import pytest

from tests.support.server import *


@pytest.fixture()
def cli_env(monkeypatch, database_url, tmp_path):
    """The ``uma`` command's environment on the test database (also for ``uma`` processes)."""
    monkeypatch.setenv("UMA_DATABASE_URL", database_url)
    monkeypatch.setenv("UMA_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("UMA_SECRET_KEY", "cli-test")
    monkeypatch.delenv("UMA_CONFIG", raising=False)
    return {
        "UMA_DATABASE_URL": database_url,
        "UMA_INSTANCE_PATH": str(tmp_path / "instance"),
        "UMA_SECRET_KEY": "cli-test",
    }
