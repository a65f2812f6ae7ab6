"""The sharing policy language of the UMA authorization server.

No Flask, no database: text in, decisions out. The server and the offline
``uma policy`` tools call the same :meth:`PolicySet.decide`.

    >>> import policy_lang
    >>> ps = policy_lang.loads('owner "alice"\\npermit view on any resource when claims.email == "bob@example.com"')
    >>> ps.decide({"resource": {"id": "r1", "owner": "alice"}, "scopes": ["view"],
    ...            "claims": {"email": "bob@example.com"}}).decision
    'permit'
"""

from .decide import Decision, RequestError
from .diagnostics import Diagnostic, PolicyError
from .policyset import PolicySet, Source, check_sources, compile_sources, load, loads, read_sources

__all__ = [
    "Decision",
    "Diagnostic",
    "PolicyError",
    "PolicySet",
    "RequestError",
    "Source",
    "check_sources",
    "compile_sources",
    "load",
    "loads",
    "read_sources",
]
