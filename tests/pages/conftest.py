"""The served app's fixtures (tests/support/server.py): a database per session and
xdist worker, the live HTTP server, users, clients and PATs."""

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import *


@pytest.fixture()
def browser(live_server) -> Iterator[httpx.Client]:
    """A plain HTTP client of the live server that keeps its cookies, as a browser does (the
    Chromium tests use Playwright instead)."""
    with httpx.Client(base_url=live_server.url, timeout=30, follow_redirects=False) as client:
        yield client
