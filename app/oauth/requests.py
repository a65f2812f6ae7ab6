"""How OAuth endpoints read their parameters (RFC 6749 §3.1, §3.2; O-02).

* the token, revocation and introspection endpoints read the form body only —
  also when the client sent no ``Content-Type`` — never the query string
  (credentials must not travel in URIs);
* the authorization endpoint reads the query string;
* a parameter sent with an empty value is treated as absent;
* :func:`repeated_parameters` lists parameters given more than once
  (→ ``invalid_request``).
"""

from __future__ import annotations

from collections import defaultdict

from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from flask import Request
from werkzeug.datastructures import MultiDict

from ..body import BodyError, parse_form

FORM_TYPES = ("", "application/x-www-form-urlencoded")


class BadForm(ValueError):
    """The body is not a form-encoded UTF-8 parameter list."""


def parse_form_body(request: Request) -> MultiDict[str, str]:
    """Form parameters of the body, with or without ``Content-Type`` (empty values dropped),
    read by the one strict reader (:func:`app.body.parse_form`)."""
    if request.mimetype not in FORM_TYPES:
        raise BadForm(f"the body must be application/x-www-form-urlencoded, not {request.mimetype}")
    try:
        pairs = parse_form(request.get_data(cache=True))
    except BodyError as exc:
        raise BadForm(f"the body is {exc}") from None
    return MultiDict([(k, v) for k, v in pairs if v != ""])


def query_params(request: Request) -> MultiDict[str, str]:
    return MultiDict([(k, v) for k, v in request.args.items(multi=True) if v != ""])


class Payload(OAuth2Payload):
    def __init__(self, params: MultiDict[str, str]):
        self._params = params

    @property
    def data(self) -> MultiDict[str, str]:
        return self._params

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._params.items(multi=True):
            values[key].append(value)
        return values


class UmaOAuth2Request(FlaskOAuth2Request):
    """An authlib request over our parsed parameters.

    ``uri`` is rebuilt from the configured issuer (the public URL), so
    authlib's https check looks at what clients use, also behind a TLS proxy.
    ``bad_form`` holds the parse error, raised as ``invalid_request`` by the endpoint.
    """

    def __init__(self, request: Request, params: MultiDict[str, str], public_uri: str, bad_form: str | None = None):
        OAuth2Request.__init__(self, method=request.method, uri=public_uri, headers=request.headers)
        self._request = request
        self.payload = Payload(params)
        self.bad_form = bad_form

    @property
    def form(self) -> MultiDict[str, str]:  # type: ignore[override]
        return self.payload.data

    @property
    def args(self) -> MultiDict[str, str]:  # type: ignore[override]
        return self.payload.data


def repeated_parameters(params: MultiDict[str, str]) -> list[str]:
    return sorted(describe(k, 40) for k, values in params.lists() if len(values) > 1)


#: Parameters whose grammar (RFC 6749 App. A, RFC 3986) never has ``"``, ``\\`` or non-ASCII,
#: and which authlib may quote in error descriptions.
STRICT_PARAMETERS = (
    "response_type",
    "redirect_uri",
    "grant_type",
    "scope",
    "client_id",
    "code_challenge_method",
    "token_type_hint",
)


def _error_safe(text: str) -> bool:
    return all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in text)


def unsafe_parameters(params: MultiDict[str, str]) -> list[str]:
    return [name for name in STRICT_PARAMETERS if any(not _error_safe(v) for v in params.getlist(name))]


def describe(text: str, limit: int = 200) -> str:
    """Text usable as an OAuth ``error_description``: only %x20-21 / %x23-5B / %x5D-7E (O-05)."""
    cleaned = "".join(c if (0x20 <= ord(c) <= 0x7E and c not in '"\\') else "?" for c in text)
    return cleaned[:limit]
