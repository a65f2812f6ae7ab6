"""Settings in one place.

Precedence, lowest first:

1. the defaults declared on :class:`Settings`;
2. an optional TOML file (path in ``UMA_CONFIG``, or given to ``uma serve --config``);
3. ``UMA_*`` environment variables, one per setting (``UMA_DATABASE_URL``,
   ``UMA_ISSUER``, ``UMA_RPT_FORMAT``, ``UMA_TRUSTED_ISSUERS`` as JSON, ...);
4. the mapping passed to :func:`app.create_app`.

Every setting is a field of :class:`Settings`; ``docs/operations.md`` lists them.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

ENV_PREFIX = "UMA_"
RPT_FORMATS = ("jwt", "opaque")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a value of the wrong type or outside its allowed values."""


@dataclass
class TrustedIssuer:
    """An issuer of claim tokens the operator trusts (used by the UMA grant).

    ``jwks_uri`` or ``jwks_file`` gives the keys; ``audience`` is the expected
    ``aud``; ``algorithms`` the accepted JWS algorithms (never ``none``).
    """

    issuer: str
    jwks_uri: str | None = None
    jwks_file: str | None = None
    audience: str | list[str] | None = None
    algorithms: list[str] = field(default_factory=lambda: ["RS256"])

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ConfigError("trusted_issuers: every entry needs an 'issuer' string")
        if bool(self.jwks_uri) == bool(self.jwks_file):
            raise ConfigError(f"trusted_issuers[{self.issuer}]: give exactly one of jwks_uri or jwks_file")
        if not isinstance(self.algorithms, list) or not self.algorithms:
            raise ConfigError(f"trusted_issuers[{self.issuer}]: algorithms must be a non-empty list")
        if any((not isinstance(a, str)) or a.lower() == "none" for a in self.algorithms):
            raise ConfigError(f"trusted_issuers[{self.issuer}]: algorithm 'none' is not allowed")


@dataclass
class Settings:
    """Every setting of the server. Field name ``x`` is ``UMA_X`` in the environment."""

    #: SQLAlchemy URL; empty means SQLite file ``uma.db`` in the Flask instance folder.
    database_url: str = ""
    #: Flask instance folder (SQLite file, generated secret key); empty: Flask's default.
    instance_path: str = ""
    #: Apply pending database migrations when the app starts (under a lock).
    auto_migrate: bool = True
    #: The issuer identifier; every endpoint URL is built from it (O-25, G-06).
    issuer: str = "http://127.0.0.1:8000"
    #: Flask secret key for the session cookie; empty means one kept in the instance folder.
    secret_key: str = ""
    #: Directory of operator policy files (``*.policy``) for the policy engine.
    policy_dir: str = "policies"
    #: Seconds between a process's checks of the policy-set version (and of the policy files).
    policy_reload_interval: int = 2
    #: ``jwt`` (signed with the active key, verifiable with the JWKS) or ``opaque``.
    rpt_format: str = "jwt"
    #: Permission ticket lifetime in seconds (G-62).
    ticket_lifetime: int = 300
    #: RPT lifetime in seconds; short, because a resource server that verifies JWT RPTs locally
    #: sees a policy change only when the RPT expires (introspection sees it at once).
    rpt_lifetime: int = 300
    #: Lifetime of refresh tokens issued with RPTs, seconds (0: no refresh tokens with RPTs).
    rpt_refresh_lifetime: int = 86400
    #: Lifetime of PATs (access tokens with scope uma_protection), seconds (F-07: long).
    pat_lifetime: int = 30 * 86400
    #: Lifetime of other OAuth access tokens, seconds.
    access_token_lifetime: int = 3600
    #: Lifetime of OAuth refresh tokens (PAT refresh), seconds.
    refresh_token_lifetime: int = 90 * 86400
    #: Authorization code lifetime, seconds (O-09: at most 600 recommended).
    auth_code_lifetime: int = 300
    #: PCT lifetime, seconds.
    pct_lifetime: int = 30 * 86400
    #: Polling interval announced with request_submitted, seconds.
    request_submitted_interval: int = 5
    #: How long a retired signing key stays published in the JWKS, seconds.
    key_retention: int = 2 * 86400
    #: Open dynamic client registration (RFC 7591) without an initial access token.
    registration_open: bool = True
    #: Largest accepted request body, bytes.
    max_body_bytes: int = 1024 * 1024
    #: Template for ``user_access_policy_uri`` (``{issuer}``, ``{id}``); empty: not sent.
    user_access_policy_uri: str = ""
    #: Profile/extension URIs listed in uma_profiles_supported (omitted when empty).
    uma_profiles_supported: list[str] = field(default_factory=list)
    #: Issuers of claim tokens the UMA grant accepts ([[trusted_issuers]] in TOML).
    trusted_issuers: list[TrustedIssuer] = field(default_factory=list)
    #: Send cookies with the Secure flag; default: when the issuer is https.
    cookie_secure: bool | None = None
    #: Logging level name.
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        self.trusted_issuers = [t if isinstance(t, TrustedIssuer) else _trusted_issuer(t) for t in self.trusted_issuers]
        if self.rpt_format not in RPT_FORMATS:
            raise ConfigError(f"rpt_format must be one of {', '.join(RPT_FORMATS)}, not {self.rpt_format!r}")
        for f in fields(self):
            if f.type == "int":
                value = getattr(self, f.name)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"{f.name} must be a non-negative integer, not {value!r}")
        if self.ticket_lifetime < 1 or self.rpt_lifetime < 1:
            raise ConfigError("ticket_lifetime and rpt_lifetime must be at least 1 second")
        self.issuer = self.issuer.rstrip("/")
        if not self.issuer.startswith(("https://", "http://")):
            raise ConfigError(f"issuer must be an http(s) URL, not {self.issuer!r}")

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is None:
            return self.issuer.startswith("https://")
        return self.cookie_secure

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server, built from the issuer."""
        return self.issuer + path


def _trusted_issuer(value: Any) -> TrustedIssuer:
    if not isinstance(value, Mapping):
        raise ConfigError("trusted_issuers entries must be tables/objects")
    known = {f.name for f in fields(TrustedIssuer)}
    unknown = set(value) - known
    if unknown:
        raise ConfigError(f"trusted_issuers: unknown keys {sorted(unknown)}")
    return TrustedIssuer(**dict(value))


def _coerce_env(name: str, type_name: str, raw: str) -> Any:
    """Turn an environment string into the setting's type."""
    base = type_name.replace(" | None", "")
    if base == "bool":
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a boolean, not {raw!r}")
    if base == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be an integer, not {raw!r}") from None
    if base.startswith("list"):
        text = raw.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} is not valid JSON: {exc}") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, TOML file, environment and overrides."""
    env = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}

    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        data = data.get("uma", data) if isinstance(data.get("uma"), dict) else data
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(f"config file {path}: unknown settings {sorted(unknown)}")
        values.update(data)

    for name, f in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce_env(name, str(f.type), raw)

    for key, value in (overrides or {}).items():
        if key in known:
            values[key] = value
    try:
        return Settings(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def flask_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The entries of a create_app mapping that are Flask settings (upper case)."""
    names = {f.name for f in fields(Settings)}
    return {k: v for k, v in (overrides or {}).items() if k not in names and k.isupper()}
