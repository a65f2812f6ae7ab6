"""The sharing policy language of the UMA authorization server.

No Flask, no database: text in, decisions out. The server and the offline
``uma policy`` tools call the same :meth:`PolicySet.decide`.

    >>> import policy_lang
    >>> ps = policy_lang.loads('owner "alice"\\npermit view on any resource when claims.email == "bob@example.com"')
    >>> ps.decide({"resource": {"id": "r1", "owner": "alice"}, "scopes": ["view"],
    ...            "claims": {"email": "bob@example.com"}}).decision
    'permit'

Everything named in ``__all__`` is the public API (the server uses nothing
else); the layers behind it are described in ``policy_lang/README.md``.
"""

from .analysis.diff import DiffReport, diff
from .analysis.explain import STEPS as EXPLAIN_STEPS
from .analysis.explain import explain, render_explanation
from .analysis.testing import TestFileError, TestReport, run_tests
from .analysis.who_can import who_can, who_can_data
from .check import check_parsed, check_sources
from .diagnostics import Diagnostic, PolicyError, sort_diagnostics
from .eval import Decision, RequestError
from .fmt import FormatError, format_text
from .policyset import PolicySet, Unit, compile_parsed, compile_sources, compile_unit, load, loads
from .syntax import ParsedSource, Source, parse_source, read_sources

__all__ = [
    "EXPLAIN_STEPS",
    "Decision",
    "Diagnostic",
    "DiffReport",
    "FormatError",
    "ParsedSource",
    "PolicyError",
    "PolicySet",
    "RequestError",
    "Source",
    "TestFileError",
    "TestReport",
    "Unit",
    "check_parsed",
    "check_sources",
    "compile_parsed",
    "compile_sources",
    "compile_unit",
    "diff",
    "explain",
    "format_text",
    "load",
    "loads",
    "parse_source",
    "read_sources",
    "render_explanation",
    "run_tests",
    "sort_diagnostics",
    "who_can",
    "who_can_data",
]
