"""Request → decision: section 3 of the language page."""

from .decide import DENIED, GRANTED, NEED, SUBMITTED, Decision, ScopeResult, assemble, assemble_one, decide_scope, iso
from .request import (
    PERMISSION_MEMBERS,
    REQUEST_MEMBERS,
    RESOURCE_MEMBERS,
    RequestError,
    check_request,
    normalise,
    parse_time,
    plain_request,
)

__all__ = [
    "DENIED",
    "GRANTED",
    "NEED",
    "PERMISSION_MEMBERS",
    "REQUEST_MEMBERS",
    "RESOURCE_MEMBERS",
    "SUBMITTED",
    "Decision",
    "RequestError",
    "ScopeResult",
    "assemble",
    "assemble_one",
    "check_request",
    "decide_scope",
    "iso",
    "normalise",
    "parse_time",
    "plain_request",
]
