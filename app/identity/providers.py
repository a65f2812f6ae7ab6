"""Upstream OpenID Providers (issue 14): this server as a relying party.

Owners sign in with a provider instead of (or beside) a password, and requesting parties
bring verified claims to the claims interaction (the pages: :mod:`app.web.upstream`). This
module is the protocol, from authlib's OpenID Connect client parts and pyjwt:

* **Discovery.** Each provider's metadata comes from ``ISSUER/.well-known/openid-configuration``
  (OpenID Connect Discovery §4), is checked (the document's ``issuer`` is the configured one,
  character for character; the authorization, token and JWKS endpoints are http(s) URLs;
  ``code`` is a supported response type; an ID-token algorithm of the provider's pinned list
  is advertised) and kept ``provider_metadata_lifetime`` seconds, then fetched again. Nothing is
  fetched at start-up, so a provider that is down never stops the server: a sign-in meanwhile
  gets the page "provider unavailable" (:class:`ProviderError`), and the provider is tried again
  at most once every ``jwks_refresh_cooldown`` seconds; a refresh that fails keeps the last good
  metadata in use.
* **The authorization request** (authlib's ``OAuth2Session.create_authorization_url``):
  ``response_type=code``, the scopes, ``state``, ``nonce``, and PKCE with S256 always — also
  when discovery does not advertise it (RFC 9700 §2.1.1). The nonce and the PKCE verifier are
  derived from the state with the server's secret key (HMAC-SHA256), so the database keeps
  only the state's SHA-256 (:class:`app.models.UpstreamSignIn`).
* **The code exchange** (authlib's ``OAuth2Session.fetch_token``): client_secret_basic (or
  client_secret_post when that is all the provider takes) for a confidential client, the
  client id alone for a public one; always the PKCE verifier.
* **The ID token** (:func:`verify_id_token`): signature with a pinned algorithm against the
  provider's JWKS (``jwks_uri`` from discovery, the key cache of pushed claim tokens: key
  rotation by refetching on an unknown ``kid`` — or, for a token without ``kid`` whose one
  cached key fails, once — at most every ``jwks_refresh_cooldown`` seconds; a token without
  ``kid`` is accepted when the key set holds one key); ``iss``; ``aud`` (a string, or a list
  holding this client, then ``azp``); ``exp``, ``iat``; and with authlib's ``CodeIDToken``, the
  ``nonce`` of this sign-in, ``azp`` and ``at_hash``.
* **Claims** (:func:`map_claims`): the ID token's claims about the person, renamed by the
  provider's ``claim_mapping`` (policy name → upstream name; a claim not mapped keeps its
  name), each with the source ``{"issuer": provider issuer, "format": ID token}``, so that a
  policy's ``claims … from "<issuer>" as id_token`` accepts them. The UserInfo endpoint is not
  used: only what the provider signed counts.

authlib's Flask client (``authlib.integrations.flask_client``) is not used as a whole: it keeps
the state in the cookie session, where a replayed cookie replays the state, and the metadata
for the life of the process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from flask import current_app
from joserfc.errors import JoseError

from ..config import IdentityProvider, Settings, TrustedIssuer
from ..grant.claim_tokens import BOOKKEEPING, ID_TOKEN_FORMAT, ClaimTokenError, decode_verified, read_unverified

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
#: Seconds an HTTP request to a provider may take.
TIMEOUT = 10
#: Largest discovery document read, bytes.
MAX_DOCUMENT = 512 * 1024


class ProviderError(Exception):
    """A sign-in at an identity provider cannot go on; ``str()`` says why, for the person."""

    #: unavailable | discovery | refused | id_token
    kind = "refused"
    status = 502
    #: How a page names the provider's state before the reason (at the start of a sign-in).
    lead = "cannot be used now"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class ProviderUnavailable(ProviderError):
    kind = "unavailable"
    status = 503
    lead = "is unavailable"


class DiscoveryInvalid(ProviderError):
    kind = "discovery"
    lead = "is not set up correctly"


class IdTokenInvalid(ProviderError):
    kind = "id_token"


# -- discovery -------------------------------------------------------------------


@dataclass
class _Entry:
    metadata: dict[str, Any] | None = None
    fetched_at: float = 0.0
    failed_at: float | None = None
    error: ProviderError | None = None


class Discovery:
    """Each provider's metadata, fetched when first needed, kept ``lifetime`` seconds (see the
    module docstring); one per app (:func:`discovery`)."""

    def __init__(self, lifetime: float, cooldown: float) -> None:
        self.lifetime = lifetime
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._fetching: dict[str, threading.Lock] = {}

    def cached(self, provider: IdentityProvider) -> dict[str, Any] | None:
        """The metadata held now, fresh or not, without fetching (None if never fetched)."""
        entry = self._entries.get(provider.issuer)
        return entry.metadata if entry is not None else None

    def metadata(self, provider: IdentityProvider) -> dict[str, Any]:
        """The provider's checked metadata; :class:`ProviderError` when there is none to use."""
        with self._lock:
            entry = self._entries.setdefault(provider.issuer, _Entry())
            fetching = self._fetching.setdefault(provider.issuer, threading.Lock())
        with fetching:  # one fetch at a time per provider; the others wait for its result
            at = time.monotonic()
            if entry.metadata is not None and at - entry.fetched_at < self.lifetime:
                return entry.metadata
            if entry.failed_at is not None and at - entry.failed_at < self.cooldown:
                if entry.metadata is not None:
                    return entry.metadata
                assert entry.error is not None
                raise entry.error
            try:
                entry.metadata = fetch_metadata(provider)
            except ProviderError as exc:
                entry.failed_at, entry.error = time.monotonic(), exc
                if entry.metadata is not None:
                    log.warning(
                        "identity provider %s: %s; the metadata fetched before stays in use", provider.name, exc
                    )
                    return entry.metadata
                log.warning("identity provider %s: %s", provider.name, exc)
                raise
            entry.fetched_at, entry.failed_at, entry.error = time.monotonic(), None, None
            log.info("identity provider %s: metadata discovered at %s", provider.name, discovery_url(provider))
            return entry.metadata


def discovery_url(provider: IdentityProvider) -> str:
    return provider.issuer.rstrip("/") + DISCOVERY_PATH


def fetch_metadata(provider: IdentityProvider) -> dict[str, Any]:
    """GET and check the provider's discovery document."""
    url = discovery_url(provider)
    try:
        with requests.get(url, timeout=TIMEOUT, allow_redirects=False, stream=True) as response:
            body = response.raw.read(MAX_DOCUMENT + 1, decode_content=True)
            status = response.status_code
    except requests.RequestException as exc:
        raise ProviderUnavailable(f"the provider could not be reached ({type(exc).__name__})") from None
    if status != 200:
        raise DiscoveryInvalid(f"its discovery document answered HTTP {status}")
    if len(body) > MAX_DOCUMENT:
        raise DiscoveryInvalid("its discovery document is too large")
    try:
        document = json.loads(body)
    except ValueError:
        raise DiscoveryInvalid("its discovery document is not JSON") from None
    return checked_metadata(provider, document)


def checked_metadata(provider: IdentityProvider, document: Any) -> dict[str, Any]:
    """The discovery document if it is one this server can use with ``provider``."""
    if not isinstance(document, dict):
        raise DiscoveryInvalid("its discovery document is not a JSON object")
    if document.get("issuer") != provider.issuer:
        raise DiscoveryInvalid(
            f"its discovery document names the issuer {str(document.get('issuer'))[:200]!r}, not {provider.issuer!r}"
        )
    secure_only = provider.issuer.startswith("https://")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        schemes = ("https",) if secure_only else ("https", "http")
        if not isinstance(value, str) or urlsplit(value).scheme not in schemes or not urlsplit(value).netloc:
            raise DiscoveryInvalid(f"its discovery document has no usable {name}")
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise DiscoveryInvalid("the provider does not offer the authorization code flow")
    if not algorithms(provider, document):
        raise DiscoveryInvalid(
            "the provider signs ID tokens with none of the accepted algorithms (" + ", ".join(provider.algorithms) + ")"
        )
    return document


def algorithms(provider: IdentityProvider, metadata: dict[str, Any]) -> list[str]:
    """The provider's pinned ID-token algorithms it also advertises (all of them if it says nothing)."""
    advertised = metadata.get("id_token_signing_alg_values_supported")
    if not isinstance(advertised, list):
        return list(provider.algorithms)
    return [a for a in provider.algorithms if a in advertised]


def discovery() -> Discovery:
    """The current app's :class:`Discovery`."""
    found = current_app.extensions.get("uma_identity_providers")
    if found is None:
        settings: Settings = current_app.config["UMA_SETTINGS"]
        found = current_app.extensions.setdefault(
            "uma_identity_providers", Discovery(settings.provider_metadata_lifetime, settings.jwks_refresh_cooldown)
        )
    return found


def as_trusted_issuer(provider: IdentityProvider) -> TrustedIssuer:
    """The provider as a trusted issuer of claim tokens: its keys at the discovered ``jwks_uri``."""
    try:
        metadata = discovery().metadata(provider)
    except ProviderError:
        raise ClaimTokenError(f"the keys of issuer {provider.issuer} could not be found (discovery failed)") from None
    return TrustedIssuer(
        issuer=provider.issuer, jwks_uri=metadata["jwks_uri"], algorithms=algorithms(provider, metadata)
    )


# -- one sign-in ----------------------------------------------------------------


def derived(state: str, what: str) -> str:
    """A value bound to this sign-in's ``state`` that only this server can compute: the PKCE
    verifier (43 characters, RFC 7636 §4.1) and the nonce."""
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    digest = hmac.new(key, f"uma-upstream-{what}:{state}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _session(provider: IdentityProvider, metadata: dict[str, Any], redirect_uri: str) -> OAuth2Session:
    method = "none"
    if not provider.is_public:
        offered = metadata.get("token_endpoint_auth_methods_supported")
        method = (
            "client_secret_post"
            if isinstance(offered, list) and "client_secret_post" in offered and "client_secret_basic" not in offered
            else "client_secret_basic"
        )
    return OAuth2Session(
        client_id=provider.client_id,
        client_secret=provider.secret,
        token_endpoint_auth_method=method,
        scope=" ".join(provider.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )


def authorization_url(provider: IdentityProvider, metadata: dict[str, Any], redirect_uri: str, state: str) -> str:
    """Where the browser goes to sign in: the code flow with ``state``, ``nonce`` and PKCE S256."""
    with _session(provider, metadata, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            nonce=derived(state, "nonce"),
            code_verifier=derived(state, "pkce"),
        )
    return str(url)


def exchange_code(
    provider: IdentityProvider, metadata: dict[str, Any], redirect_uri: str, state: str, code: str
) -> dict[str, Any]:
    """The provider's token response for ``code`` (with this sign-in's PKCE verifier)."""
    with _session(provider, metadata, redirect_uri) as client:
        try:
            token = client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=derived(state, "pkce"),
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        except OAuthError as exc:
            raise ProviderError(f"the provider refused the sign-in code ({str(exc.error)[:100]})") from None
        except (requests.ConnectionError, requests.Timeout):
            raise ProviderUnavailable("the provider could not be reached to finish the sign-in") from None
        except (requests.RequestException, ValueError, TypeError):
            raise ProviderError("the provider's token endpoint did not answer with a token") from None
    if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
        raise IdTokenInvalid("the provider sent no ID token (is the openid scope allowed for this client?)")
    return dict(token)


def verify_id_token(
    provider: IdentityProvider, metadata: dict[str, Any], id_token: str, *, nonce: str, access_token: Any
) -> dict[str, Any]:
    """The claims of a verified ID token of this sign-in (see the module docstring)."""
    try:
        header, _ = read_unverified(id_token, "ID token")
        trusted = TrustedIssuer(
            issuer=provider.issuer, jwks_uri=metadata["jwks_uri"], algorithms=algorithms(provider, metadata)
        )
        claims = decode_verified(
            id_token, header, trusted, audience=provider.client_id, required=["iss", "aud", "exp", "iat", "sub"]
        )
    except ClaimTokenError as exc:
        raise IdTokenInvalid(f"its ID token was refused: {exc}") from None
    params = {"nonce": nonce, "client_id": provider.client_id}
    if isinstance(access_token, str):
        params["access_token"] = access_token
    checks = CodeIDToken(claims, header, None, params)
    try:
        checks.validate_nonce()
        checks.validate_azp()
        checks.validate_at_hash()
    except JoseError as exc:
        name = getattr(exc, "claim", None) or "?"
        if name == "nonce":
            raise IdTokenInvalid("its ID token does not carry the nonce of this sign-in") from None
        raise IdTokenInvalid(f"its ID token's {name} does not match this sign-in") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise IdTokenInvalid("its ID token names no usable subject (sub)")
    return claims


def map_claims(provider: IdentityProvider, claims: dict[str, Any]) -> dict[str, Any]:
    """The person's claims under their policy names: ``claim_mapping`` (policy name → upstream
    name) renames; a mapped name is never read from an upstream claim of its own name."""
    mapped = {k: v for k, v in claims.items() if k not in BOOKKEEPING}
    for policy_name, upstream_name in provider.claim_mapping.items():
        if upstream_name in claims and upstream_name not in BOOKKEEPING:
            mapped[policy_name] = claims[upstream_name]
        else:
            mapped.pop(policy_name, None)
    return mapped


def sources_of(provider: IdentityProvider, claims: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The ``claim_sources`` entries of claims from ``provider``'s ID token."""
    return {name: {"issuer": provider.issuer, "format": ID_TOKEN_FORMAT} for name in claims}


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (for a page's ``form-action``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"
