"""Pushed claim tokens: ``claim_token`` + ``claim_token_format`` (G-16, G-17, G-74).

Two formats are accepted, both compact JWS verified with pyjwt:

* ``http://openid.net/specs/openid-connect-core-1_0.html#IDToken`` (an OpenID
  Connect ID Token), and
* ``urn:ietf:params:oauth:token-type:jwt`` (any signed JWT).

Only issuers the operator listed in ``trusted_issuers`` are accepted, and the
issuers of the ``identity_providers`` (issue 14: keys at the ``jwks_uri`` of
their discovery document, the audience rule below, their ``claim_mapping``
applied; a ``trusted_issuers`` entry for the same issuer wins). Each trusted
issuer names its keys (``jwks_uri``, fetched and cached by :class:`jwt.PyJWKClient`,
or ``jwks_file``, read with :class:`jwt.PyJWKSet` again whenever the file
changes), its expected audience and
its algorithms — a pinned list that never holds ``none``, so neither an
unsigned token nor an HS256 token "signed" with the issuer's public key gets
through. Checked: signature, ``iss``, ``aud`` (the configured audience, or else
this AS's issuer or the presenting client's id — an audience restriction is
never ignored, G-74), ``exp`` (required; an ID Token also needs ``sub`` and
``iat``), ``nbf`` and ``iat`` (not in the future), with 30 seconds of leeway. ``exp``, ``nbf`` and
``iat`` must be JSON numbers (RFC 7519 NumericDate): pyjwt would take the string
``"1796278025"`` as a date, and ``true`` as the number 1, so anything else is
refused before verification.

Keys fetched from a ``jwks_uri`` follow the provider: the whole key set is
cached for ``jwks_cache_lifetime`` seconds and then fetched again, so a key the
provider withdraws stops verifying within that time; a token whose ``kid`` is
not in the cached set makes one early fetch (a key just rotated in), at most
once per ``jwks_refresh_cooldown`` seconds, so a flood of made-up kids does
not hammer the provider. Both are pyjwt's own ``PyJWKClient`` options
(``lifespan``, ``cooldown_duration``); its per-key cache (``cache_keys``),
which never expires, stays off. A token without ``kid`` is verified with the
issuer's only signing key (several keys: refused); when that cached key does not
verify it, the key set is fetched again once (the provider may have rotated its
one key), within the same cooldown (:meth:`_KeyCache.may_refresh`).
:func:`decode_verified` is also how :mod:`app.identity.providers` verifies the ID
token of a sign-in at an identity provider.

Every verified claim (minus the JWT bookkeeping members) gets a
``claim_sources`` entry ``{"issuer", "format"}`` so that a policy's ``claims …
from … as …`` declaration applies to it.

A token that fails any check raises :class:`ClaimTokenError`; the grant answers
``need_info`` with a fresh ticket and the reason in ``error_description`` — the
digest's reading of G-17 ("a claim token the AS cannot use … is reported with
need_info, not a hard error").
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt

from ..config import Settings, TrustedIssuer

ID_TOKEN_FORMAT = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
JWT_FORMAT = "urn:ietf:params:oauth:token-type:jwt"
SUPPORTED_FORMATS = (ID_TOKEN_FORMAT, JWT_FORMAT)
MAX_CLAIM_TOKEN_CHARS = 16 * 1024
#: Deepest nesting of objects/lists accepted in a token's claims.
MAX_CLAIM_DEPTH = 16
LEEWAY = 30
#: Members a token of each format must have (an ID Token also names its subject and issue time).
_REQUIRED = {ID_TOKEN_FORMAT: ["exp", "iss", "aud", "sub", "iat"], JWT_FORMAT: ["exp", "iss", "aud"]}
#: JWT members that describe the token, not the requesting party.
#: Members that are NumericDates (RFC 7519 §2): JSON numbers, seconds since the epoch.
_NUMERIC_DATES = ("exp", "nbf", "iat")
BOOKKEEPING = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti", "nonce", "at_hash", "c_hash", "azp", "sid"})


class ClaimTokenError(ValueError):
    """The pushed claim token cannot be used; the message says why (safe to show the client)."""


@dataclass
class VerifiedClaims:
    claims: dict[str, Any]
    claim_sources: dict[str, dict[str, str]]
    issuer: str
    format: str


class _KeyCache:
    """Per-app cache of JWKS clients (by URI) and key sets (by file and mtime)."""

    def __init__(self, lifetime: float, cooldown: float) -> None:
        self.lifetime = lifetime
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._files: dict[str, tuple[int, jwt.PyJWKSet]] = {}
        #: When a key set was last fetched early for a token without kid (see :meth:`refresh`).
        self._forced: dict[str, float] = {}

    def _client(self, uri: str) -> jwt.PyJWKClient:
        with self._lock:
            client = self._clients.get(uri)
            if client is None:
                client = jwt.PyJWKClient(
                    uri,
                    cache_keys=False,
                    cache_jwk_set=True,
                    lifespan=self.lifetime,
                    cooldown_duration=self.cooldown,
                    timeout=10,
                )
                self._clients[uri] = client
        return client

    def key_for(self, issuer: TrustedIssuer, token: str, kid: str | None, *, refresh: bool = False) -> Any:
        """The key that should verify ``token``: the one named by ``kid``, or, for a token
        without ``kid``, the issuer's only signing key (several keys: refused). With
        ``refresh`` the key set is fetched again first (see :meth:`may_refresh`)."""
        if issuer.jwks_uri:
            client = self._client(issuer.jwks_uri)
            try:
                if kid is not None:
                    return client.get_signing_key(kid).key
                return _only_key(client.get_jwk_set(refresh=refresh), issuer).key
            except jwt.PyJWKClientConnectionError:
                raise ClaimTokenError(f"the keys of issuer {issuer.issuer} could not be fetched") from None
            except jwt.PyJWKClientError:
                raise ClaimTokenError("no key of the issuer matches the token's key id (kid)") from None
            except (jwt.PyJWTError, ValueError):  # not JSON, or a key set without usable keys
                raise ClaimTokenError(f"the keys of issuer {issuer.issuer} are not usable") from None
        return self._from_file(issuer, kid)

    def may_refresh(self, issuer: TrustedIssuer) -> bool:
        """Whether a token without ``kid`` whose signature the issuer's one cached key does not
        verify may fetch the key set again (the provider may have rotated its key): at most once
        per ``jwks_refresh_cooldown`` seconds, as for an unknown ``kid``; never for a file."""
        if not issuer.jwks_uri:
            return False
        at = time.monotonic()
        with self._lock:
            last = self._forced.get(issuer.jwks_uri)
            if last is not None and at - last < self.cooldown:
                return False
            self._forced[issuer.jwks_uri] = at
        return True

    def _from_file(self, issuer: TrustedIssuer, kid: str | None) -> Any:
        path = str(issuer.jwks_file)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            raise ClaimTokenError(f"the keys of issuer {issuer.issuer} are not available") from None
        with self._lock:
            cached = self._files.get(path)
            if cached is None or cached[0] != mtime:
                try:
                    with open(path, encoding="utf-8") as fh:
                        keyset = jwt.PyJWKSet.from_json(fh.read())
                except (OSError, ValueError, jwt.PyJWTError):
                    raise ClaimTokenError(f"the keys of issuer {issuer.issuer} are not usable") from None
                self._files[path] = (mtime, keyset)
            else:
                keyset = cached[1]
        if kid is None:
            return _only_key(keyset, issuer).key
        keys = [k for k in keyset.keys if k.public_key_use in (None, "sig") and k.key_id == kid]
        if not keys:
            raise ClaimTokenError("no key of the issuer matches the token's key id (kid)")
        return keys[0].key


def _only_key(keyset: jwt.PyJWKSet, issuer: TrustedIssuer) -> jwt.PyJWK:
    """The one signing key of a key set, for a token without ``kid``."""
    keys = [k for k in keyset.keys if k.public_key_use in (None, "sig")]
    if len(keys) > 1:
        raise ClaimTokenError("the token has no key id (kid) and the issuer has several keys")
    if not keys:
        raise ClaimTokenError(f"the keys of issuer {issuer.issuer} are not usable")
    return keys[0]


def key_cache() -> _KeyCache:
    """The current app's key cache."""
    from flask import current_app

    cache = current_app.extensions.get("uma_claim_keys")
    if cache is None:
        settings = current_app.config["UMA_SETTINGS"]
        cache = _KeyCache(settings.jwks_cache_lifetime, settings.jwks_refresh_cooldown)
        cache = current_app.extensions.setdefault("uma_claim_keys", cache)
    return cache


def verify_claim_token(token: str, token_format: str, *, settings: Settings, client_id: str) -> VerifiedClaims:
    """Verify a pushed claim token and return its claims with their sources (G-17)."""
    if token_format not in SUPPORTED_FORMATS:
        raise ClaimTokenError("unsupported claim_token_format; supported: " + ", ".join(SUPPORTED_FORMATS))
    header, unverified = read_unverified(token, "claim token")
    issuer_name = unverified.get("iss")
    if not isinstance(issuer_name, str):
        raise ClaimTokenError("the claim token has no issuer (iss)")
    trusted = next((t for t in settings.trusted_issuers if t.issuer == issuer_name), None)
    provider = None
    if trusted is None:
        # An identity provider is a trusted issuer too, its keys found by discovery (issue 14).
        provider = next((p for p in settings.identity_providers if p.issuer == issuer_name), None)
        if provider is not None:
            from ..identity.providers import as_trusted_issuer

            trusted = as_trusted_issuer(provider)
    if trusted is None:
        raise ClaimTokenError("the claim token's issuer is not trusted by this server")
    audience: Any = trusted.audience if trusted.audience else [settings.issuer, client_id]
    claims = decode_verified(token, header, trusted, audience=audience, required=_REQUIRED[token_format])
    person = {k: v for k, v in claims.items() if k not in BOOKKEEPING}
    if provider is not None:
        from ..identity.providers import map_claims

        person = map_claims(provider, person)
    sources = {name: {"issuer": trusted.issuer, "format": token_format} for name in person}
    return VerifiedClaims(person, sources, trusted.issuer, token_format)


def read_unverified(token: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, before verification, refused early when they
    cannot be right: too long, not three parts, nested too deep, dates that are not numbers."""
    if not isinstance(token, str) or len(token) > MAX_CLAIM_TOKEN_CHARS or token.count(".") != 2:
        raise ClaimTokenError(f"the {what} is not a compact signed JWT")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise ClaimTokenError(f"the {what} is not a well-formed JWT") from None
    if not isinstance(unverified, dict) or _depth(unverified) > MAX_CLAIM_DEPTH:
        raise ClaimTokenError(f"the {what}'s claims are nested deeper than {MAX_CLAIM_DEPTH} levels")
    for member in _NUMERIC_DATES:
        if member in unverified and not _is_numeric_date(unverified[member]):
            raise ClaimTokenError(f"the {what}'s {member} is not a number (RFC 7519 NumericDate)")
    return header, unverified


def decode_verified(
    token: str, header: dict[str, Any], trusted: TrustedIssuer, *, audience: Any, required: list[str]
) -> dict[str, Any]:
    """The claims of ``token`` once its signature (a pinned algorithm, a key of the issuer),
    ``iss``, ``aud`` (one of ``audience``; the token's may be a string or a list), ``exp`` and
    the ``required`` members are checked; :class:`ClaimTokenError` otherwise. A token without
    ``kid`` that the issuer's one cached key does not verify fetches the keys again once (a key
    rotated in), within ``jwks_refresh_cooldown``."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none" or alg not in trusted.algorithms:
        raise ClaimTokenError(
            "the token's algorithm is not accepted for its issuer (accepted: " + ", ".join(trusted.algorithms) + ")"
        )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ClaimTokenError("the token's key id (kid) is not a string")
    cache = key_cache()
    key = cache.key_for(trusted, token, kid)
    try:
        try:
            claims = _decode(token, key, trusted, audience, required)
        except jwt.InvalidSignatureError:
            if kid is not None or not cache.may_refresh(trusted):
                raise
            claims = _decode(token, cache.key_for(trusted, token, None, refresh=True), trusted, audience, required)
    except jwt.ExpiredSignatureError:
        raise ClaimTokenError("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise ClaimTokenError("the token is not meant for this server or client (aud)") from None
    except jwt.InvalidIssuerError:
        raise ClaimTokenError("the token's issuer is not trusted by this server") from None
    except jwt.ImmatureSignatureError:
        raise ClaimTokenError("the token is not valid yet (nbf or iat in the future)") from None
    except jwt.MissingRequiredClaimError as exc:
        raise ClaimTokenError(f"the token lacks the required member {exc.claim}") from None
    except jwt.InvalidSignatureError:
        raise ClaimTokenError("the token's signature does not verify") from None
    except jwt.InvalidAlgorithmError:
        raise ClaimTokenError("the token's algorithm is not accepted for its issuer") from None
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise ClaimTokenError("the token could not be verified") from None
    if not isinstance(claims, dict):
        raise ClaimTokenError("the token's payload is not a JSON object")
    return claims


def _decode(token: str, key: Any, trusted: TrustedIssuer, audience: Any, required: list[str]) -> Any:
    return jwt.decode(
        token,
        key,
        algorithms=list(trusted.algorithms),
        audience=audience,
        issuer=trusted.issuer,
        leeway=LEEWAY,
        options={"require": required, "verify_signature": True},
    )


def _is_numeric_date(value: Any) -> bool:
    """A JSON number that is a usable date: not a string, not a boolean, finite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_CLAIM_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def describe_trusted(settings: Settings) -> list[dict[str, Any]]:
    """A ``required_claims`` hint naming what pushed tokens this server accepts (G-40, A10)."""
    issuers = list(dict.fromkeys([*(t.issuer for t in settings.trusted_issuers), *trusted_provider_issuers(settings)]))
    if not issuers:
        return []
    return [{"claim_token_format": list(SUPPORTED_FORMATS), "issuer": issuers}]


def trusted_provider_issuers(settings: Settings) -> list[str]:
    """The issuers of the identity providers, trusted for pushed ID tokens as well (issue 14)."""
    return [p.issuer for p in settings.identity_providers]
