"""The served app's fixtures (tests/support/server.py): a database per session and
xdist worker, the live HTTP server, users, clients and PATs."""

from tests.support.server import *
