"""Tests of the policy language alone: no Flask, no database, no server.

Nothing in this tree imports ``app`` or Flask (a test in test_api.py checks it).
"""
