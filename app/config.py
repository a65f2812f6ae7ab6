"""Settings in one place: one typed model (pydantic-settings), validated at start-up.

Precedence, lowest first:

1. the defaults declared on :class:`Settings`;
2. an optional TOML file (path in ``UMA_CONFIG``, or given to ``uma serve --config``),
   top-level keys or an ``[uma]`` table;
3. ``UMA_*`` environment variables, one per setting, the name in upper case
   (``UMA_DATABASE_URL``, ``UMA_ISSUER``, ...; lists as JSON or comma-separated,
   ``UMA_TRUSTED_ISSUERS`` as JSON);
4. the mapping passed to :func:`app.create_app` (lower-case setting names; its
   upper-case keys are Flask settings, see :func:`flask_overrides`).

A value of the wrong type or outside its allowed values stops the start with
:class:`ConfigError`, one line per problem naming the setting, where the value
came from, the value and what was expected. An unknown key in the TOML file or
the ``create_app`` mapping is refused with the closest setting name as a
suggestion; an ``UMA_*`` variable that is no setting but resembles one is
logged as a warning at start-up (:func:`unknown_environment_variables`).

**Adding a setting** is one declaration in :class:`Settings`::

    ticket_lifetime: Seconds = 300
    \"\"\"Permission ticket lifetime, seconds (G-62).\"\"\"

the type says what is accepted (``Seconds``, ``bool``, ``str``, a ``Literal``,
...) and the docstring under it is its row in the settings table of
``docs/operations.md``; regenerate that table with ``python -m app.config
--write-docs`` (``tests/server/test_config.py`` fails while it is stale). The
``UMA_*`` variable, the TOML key and the ``create_app`` key follow from the name.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from .http_auth import B64TOKEN

ENV_PREFIX = "UMA_"
#: The environment variable naming the TOML file (not a setting itself).
CONFIG_ENV = ENV_PREFIX + "CONFIG"
RPT_FORMATS = ("jwt", "opaque")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
#: Settings whose values are never shown in an error message or a log line.
SECRET_SETTINGS = frozenset({"secret_key", "metrics_token", "lockout_storage_uri", "smtp_password"})
#: Keys of a settings table whose values are never shown either (an identity provider's secret).
SECRET_KEYS = frozenset({"client_secret"})
#: Where the TOML file comes from while :func:`load_settings` builds a Settings (else ``UMA_CONFIG``).
_config_file: ContextVar[str | None] = ContextVar("uma_config_file", default=None)


class ConfigError(ValueError):
    """A setting has a value of the wrong type or outside its allowed values, or is unknown."""


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, not a boolean")
    return value


def _word_list(value: Any) -> Any:
    """A list from the environment: JSON (``["a","b"]``) or comma-separated."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not a JSON list ({exc})") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


#: A whole number of seconds, zero or more.
Seconds = Annotated[int, BeforeValidator(_no_bool), Field(ge=0)]
#: A whole number of seconds, at least one.
PositiveSeconds = Annotated[int, BeforeValidator(_no_bool), Field(ge=1)]
#: A whole number, zero or more.
Count = Annotated[int, BeforeValidator(_no_bool), Field(ge=0)]
#: A whole number, at least one.
PositiveCount = Annotated[int, BeforeValidator(_no_bool), Field(ge=1)]
#: A whole number of bytes, zero or more.
Bytes = Annotated[int, BeforeValidator(_no_bool), Field(ge=0)]
#: A list of strings; from the environment JSON or comma-separated.
SqliteSynchronous = Literal["normal", "full"]
WordList = Annotated[list[str], NoDecode, BeforeValidator(_word_list)]


class TrustedIssuer(BaseModel):
    """An issuer of claim tokens the operator trusts (used by the UMA grant).

    ``jwks_uri`` or ``jwks_file`` gives the keys; ``audience`` is the expected
    ``aud``; ``algorithms`` the accepted JWS algorithms (never ``none``).
    """

    model_config = ConfigDict(extra="forbid")

    issuer: Annotated[str, Field(min_length=1)]
    jwks_uri: str | None = None
    jwks_file: str | None = None
    audience: str | list[str] | None = None
    algorithms: Annotated[list[str], Field(min_length=1)] = ["RS256"]

    @field_validator("algorithms")
    @classmethod
    def _never_none(cls, algorithms: list[str]) -> list[str]:
        if any(a.lower() == "none" for a in algorithms):
            raise ValueError("algorithm 'none' is not allowed")
        return algorithms

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedIssuer:
        if bool(self.jwks_uri) == bool(self.jwks_file):
            raise ValueError("give exactly one of jwks_uri or jwks_file")
        return self


def _scope_list(value: Any) -> Any:
    """Scopes as a list, or one space-separated string (as OAuth writes them)."""
    if isinstance(value, str):
        return value.split()
    return value


#: A display name of an identity provider: also the last part of its URLs (``/login/upstream/NAME``).
_PROVIDER_NAME = r"^[\w][\w .()+-]{0,63}$"


class IdentityProvider(BaseModel):
    """An upstream OpenID Provider owners and requesting parties may sign in with (issue 14).

    Its metadata is discovered from ``ISSUER/.well-known/openid-configuration``;
    ``client_id`` (and ``client_secret``, or none for a public client) are this
    server's registration there; ``scopes`` are asked for (``openid`` is added
    when missing); ``claim_mapping`` maps a policy claim name to the upstream
    claim it is read from (other claims keep their names); ``algorithms`` are
    the ID-token signature algorithms accepted (never ``none``).
    """

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=_PROVIDER_NAME)]
    issuer: Annotated[str, Field(min_length=1)]
    client_id: Annotated[str, Field(min_length=1)]
    client_secret: SecretStr | None = None
    scopes: Annotated[list[str], BeforeValidator(_scope_list)] = ["openid", "email", "profile"]
    create_accounts: bool = False
    claim_mapping: dict[str, Annotated[str, Field(min_length=1)]] = {}
    algorithms: Annotated[list[str], Field(min_length=1)] = ["RS256"]

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, issuer: str) -> str:
        if not issuer.startswith(("https://", "http://")) or "?" in issuer or "#" in issuer:
            raise ValueError("expected an http(s) URL without query or fragment, e.g. https://accounts.example.com")
        return issuer

    @field_validator("scopes")
    @classmethod
    def _with_openid(cls, scopes: list[str]) -> list[str]:
        return ["openid", *(s for s in dict.fromkeys(scopes) if s != "openid")]

    @field_validator("algorithms")
    @classmethod
    def _never_none(cls, algorithms: list[str]) -> list[str]:
        if any(a.lower() == "none" or a.upper().startswith("HS") for a in algorithms):
            raise ValueError("only public-key algorithms (RS256, ES256, PS256, EdDSA, ...): never 'none' or HS*")
        return algorithms

    @property
    def is_public(self) -> bool:
        """No secret: a public client, whose proof is PKCE alone."""
        return self.client_secret is None or not self.client_secret.get_secret_value()

    @property
    def secret(self) -> str | None:
        """The client secret in clear, for the token request; None for a public client."""
        return None if self.is_public else self.client_secret.get_secret_value()  # type: ignore[union-attr]


class Settings(BaseSettings):
    """Every setting of the server. Field name ``x`` is ``UMA_X`` in the environment.

    ``Settings(**values)`` reads the ``UMA_*`` variables and the ``UMA_CONFIG``
    file too (values given win); :func:`load_settings` is the usual way in.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    database_url: str = ""
    """SQLAlchemy URL, e.g. `postgresql+psycopg://user:pw@db/uma`; empty: SQLite file `uma.db` in the instance folder."""
    instance_path: str = ""
    """Instance folder (SQLite file, generated secret key, default policy folder, demo secrets); empty: Flask's (`./instance` in a checkout); a relative path is taken from the folder of the TOML file that sets it, else from the working directory."""
    database_pool_size: PositiveCount = 5
    """Connections a process keeps open to a server database (PostgreSQL), and as many again in overflow under load; not used with SQLite."""
    database_pool_recycle: PositiveSeconds = 1800
    """Seconds after which a pooled connection is replaced (keep it below any idle timeout of the database or a proxy in between); no per-request ping."""
    sqlite_synchronous: SqliteSynchronous = "full"
    """SQLite only: `full` (every commit waits for the disk: no commit is ever lost, not even a spent ticket) or `normal` (a commit does not wait for the disk; with WAL the database stays consistent, and only a power loss or an operating-system crash can undo the last commits, so a spent ticket could be spent again after such a crash; on a busy server about twice the grants a second, docs/benchmarks.md)."""
    row_cache_lifetime: Seconds = 2
    """Seconds a process reuses the client, signing-key and resource rows it read: a change made in another process counts there within this delay (at once in the process that made it); 0: read them at every request."""
    auto_migrate: bool = True
    """Apply pending database migrations when a process starts (under a lock)."""
    issuer: str = "http://127.0.0.1:8000"
    """Public base URL: every endpoint URL and the discovery `issuer` are built from it (O-25, G-06); `uma serve` defaults it to `http://HOST:PORT`."""
    secret_key: str = ""
    """Signs the session cookie; empty: one generated once into the instance folder. Set it when several machines serve."""
    policy_dir: str = "policies"
    """Directory of operator policy files (`*.policy`), read recursively; a relative path is taken from the folder of the TOML file that sets it, else from the instance folder (default: `policies` there)."""
    policy_reload_interval: Seconds = 2
    """Seconds between a process's background checks of the policy-set version in the database (and of the policy files, unless inotify watches them); every process decides with a new version within this delay plus the time to compile the change; 0: every 0.1 s."""
    policy_cache: bool = True
    """Keep the policy texts read at start in the instance folder (`policy-cache/`, private files keyed by the text and the policy library's code) so that the next start reads only the texts that changed; safe to delete."""
    rpt_format: Literal["jwt", "opaque"] = "jwt"
    """`jwt` (signed with the active key, verifiable with `/jwks`) or `opaque`."""
    ticket_lifetime: PositiveSeconds = 300
    """Permission ticket lifetime, seconds (G-62)."""
    rpt_lifetime: PositiveSeconds = 300
    """RPT lifetime, seconds (a `for`/`until` bound in the policy shortens it); short, because a resource server verifying JWT RPTs locally sees a policy change only at expiry, while introspection sees it at once."""
    rpt_refresh_lifetime: Seconds = 86400
    """Lifetime of refresh tokens issued with RPTs, seconds; 0: no refresh tokens with RPTs."""
    pat_lifetime: Seconds = 30 * 86400
    """Lifetime of PATs (tokens with scope `uma_protection`), seconds (F-07: long)."""
    access_token_lifetime: Seconds = 3600
    """Lifetime of other OAuth access tokens, seconds."""
    refresh_token_lifetime: Seconds = 90 * 86400
    """Lifetime of OAuth refresh tokens (PAT refresh), seconds."""
    auth_code_lifetime: Seconds = 300
    """Authorization code lifetime, seconds (O-09: at most 600 recommended)."""
    pct_lifetime: Seconds = 30 * 86400
    """Persisted claims token (PCT) lifetime, seconds."""
    audit_retention: Seconds = 365 * 86400
    """How long audit records (every grant decision) are kept, seconds; 0: for ever."""
    purge_interval: Seconds = 300
    """Seconds between the background purges of expired tickets, codes, tokens, RPTs, PCTs and old audit records in each process; 0: none (run `uma db purge` from cron)."""
    request_submitted_interval: Seconds = 5
    """Polling interval announced with `request_submitted`, seconds."""
    key_retention: Seconds = 2 * 86400
    """How long a retired signing key stays published in `/jwks`, seconds; keep it ≥ `rpt_lifetime`."""
    introspection_clients: WordList = []
    """Client ids allowed to introspect any RPT at `/uma/introspect` (e.g. a gateway before several resource servers); other callers learn about an RPT only with a PAT for its owner at its resource server."""
    registration_open: bool = True
    """Open dynamic client registration (RFC 7591) at `/register` without an initial access token."""
    max_body_bytes: Bytes = 1024 * 1024
    """Largest accepted request body, bytes."""
    user_access_policy_uri: str = ""
    """Template for `user_access_policy_uri` in registration answers (`{issuer}`, `{id}`); empty: not sent."""
    uma_profiles_supported: WordList = []
    """Profile and extension URIs listed in `uma_profiles_supported` (omitted when empty)."""
    keycloak_compat: bool = False
    """Serve Keycloak's layout beside the standard one (`/realms/{realm}/...`: discovery, token, introspection, certs, `authz/protection/resource_set`, `permission`, `uma-policy`) and Keycloak's extensions to the UMA grant there, so Keycloak's UMA clients work unchanged (docs/keycloak-migration.md); false: those URLs are 404."""
    keycloak_realm: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "uma"
    """The realm name in the paths of the Keycloak layout (`keycloak_compat`)."""
    trusted_issuers: list[TrustedIssuer] = []
    """Issuers of claim tokens the UMA grant accepts (`[[trusted_issuers]]` tables in TOML, a JSON array in the environment; see below)."""
    identity_providers: list[IdentityProvider] = []
    """Upstream OpenID Providers owners and requesting parties may sign in with (`[[identity_providers]]` tables in TOML, a JSON array in the environment; see "Signing in with other identity providers" below); each is also a trusted issuer of pushed ID tokens."""
    password_login: bool = True
    """Offer sign-in with a user name and password of this server on the login page; false: only the identity providers (at least one must be configured)."""
    provider_metadata_lifetime: PositiveSeconds = 3600
    """How long an identity provider's discovered metadata is used before it is fetched again, seconds (the last good copy keeps serving while the provider is unreachable)."""
    upstream_sign_in_lifetime: PositiveSeconds = 600
    """How long a sign-in at an identity provider may take, seconds: its `state` expires then (and is single-use before)."""
    jwks_cache_lifetime: PositiveSeconds = 300
    """How long the keys fetched from a trusted issuer's `jwks_uri` are used before fetching them again, seconds: a key the issuer withdraws stops verifying within this time."""
    jwks_refresh_cooldown: Seconds = 30
    """Least time between two fetches of an issuer's keys caused by a token with an unknown key id (`kid`) or, without a `kid`, by a signature its one key does not verify, seconds; also the least time between two attempts to discover an unreachable identity provider."""
    trusted_proxies: Annotated[int, BeforeValidator(_no_bool), Field(ge=0)] = 0
    """Reverse proxies in front of the server whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed (that many hops, werkzeug's ProxyFix): the client address used for lockouts and `/metrics` access is then the one the proxy saw; 0: none, the TCP peer (a forged header changes nothing)."""
    cookie_secure: bool | None = None
    """Send cookies with the Secure flag; unset: when the issuer is https."""
    demo: bool = False
    """Serve the demo client's claims redirection page at `/demo/claims-callback` (`uma serve --demo` sets it; see `app/demo.py`)."""
    log_level: Annotated[str, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)] = "INFO"
    """Level of the server's own log lines (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`); other libraries log from INFO up."""
    log_format: Literal["text", "json", "none"] = "text"
    """Log lines on stderr: `text`, `json` (one object a line), or `none` (leave logging to the host, e.g. gunicorn's `--log-config`)."""
    lockout_window: PositiveSeconds = 900
    """Brute-force protection: the window, seconds, in which failed authentications are counted (see `lockout_strategy`)."""
    lockout_account_attempts: Count = 5
    """Failed logins for one user name (login page and owner API alike) within `lockout_window` after which its logins are refused with 429 until the oldest failure leaves the window; 0: no limit per user."""
    lockout_client_attempts: Count = 20
    """Failed client authentications for one client id (every endpoint) within `lockout_window` after which that client id is refused with 429; 0: no limit per client (its secret is 256 random bits; see the lockout section)."""
    lockout_address_attempts: Count = 50
    """Failed authentications of any kind from one source address (an IPv6 /64) within `lockout_window` after which that address is refused with 429; 0: no limit per address."""
    lockout_strategy: Literal["moving-window", "fixed-window"] = "moving-window"
    """How failures are counted (the `limits` library's strategies): `moving-window` (at most N in any `lockout_window` seconds) or `fixed-window` (N per window begun at the first failure; cheaper on a storage without moving-window support, e.g. memcached)."""
    lockout_storage_uri: str = ""
    """Where failures are counted: empty: this server's database (every process and machine shares it); else a `limits` storage URI shared by all of them, e.g. `redis://cache.internal:6379/0` (install the library's driver); `memory://` counts per process (tests only)."""
    metrics_networks: WordList = ["127.0.0.0/8", "::1/128"]
    """Networks (CIDRs) whose addresses may read `/metrics`; loopback only by default."""
    metrics_token: str = ""
    """When set, `/metrics` also needs `Authorization: Bearer <this token>` (from an address of `metrics_networks`); a bearer token's characters (RFC 6750 §2.1: letters, digits, `-._~+/`, then `=` only at the end)."""
    notification_interval: Seconds = 10
    """Seconds between a process's background looks for notifications due (owners' webhooks and emails of pending requests; a request made in the process is sent at once); 0: this process sends none (another process, or `uma serve` elsewhere, must)."""
    notification_timeout: PositiveSeconds = 10
    """Longest wait for a webhook receiver's answer or an SMTP conversation, seconds; longer counts as a failed attempt."""
    notification_max_attempts: PositiveCount = 8
    """Attempts at one notification before it is marked failed (shown on the owner's notifications page)."""
    notification_retry_base: PositiveSeconds = 30
    """Wait before the second attempt at a notification, seconds; each later wait doubles, up to `notification_retry_max`."""
    notification_retry_max: PositiveSeconds = 3600
    """Longest wait between two attempts at a notification, seconds."""
    notification_allow_http_loopback: bool = False
    """Let owners register `http://` webhooks on a loopback address (127.0.0.0/8, ::1, localhost): for development and tests; other webhooks must be `https://`."""
    notification_allow_private_networks: bool = False
    """Let webhooks be called at private, link-local, loopback and other non-public addresses (a literal one in the URL is refused when registered, a name resolving to one when called): for webhooks inside the operator's own network; off, an owner cannot make the server call its neighbours."""
    smtp_host: str = ""
    """SMTP server that sends owners' notification emails; empty: owners can register webhooks only."""
    smtp_port: Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=65535)] = 587
    """Port of `smtp_host`."""
    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS before anything is sent (the server's certificate is verified); false: plain SMTP (a relay on the same machine or network only)."""
    smtp_user: str = ""
    """User name to authenticate at `smtp_host` with (after STARTTLS); empty: none."""
    smtp_password: str = ""
    """Password of `smtp_user`."""
    smtp_from: str = ""
    """The `From` address of notification emails (required when `smtp_host` is set)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest precedence first: values given, ``UMA_*`` variables, the TOML file."""
        path = _config_file.get() or os.environ.get(CONFIG_ENV)
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=read_config_file(path))

    @field_validator("issuer")
    @classmethod
    def _http_url(cls, issuer: str) -> str:
        issuer = issuer.rstrip("/")
        if not issuer.startswith(("https://", "http://")) or len(issuer) <= len("https://"):
            raise ValueError("expected an http(s) URL such as https://as.example.org")
        return issuer

    @field_validator("metrics_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network (CIDR) such as 10.0.0.0/8 or 2001:db8::/32") from None
        return networks

    @field_validator("metrics_token")
    @classmethod
    def _b64token(cls, token: str) -> str:
        # The one reader of the header (app.http_auth) reads only an RFC 6750 b64token as a Bearer
        # token: any other text could never be presented.
        if token and not B64TOKEN.fullmatch(token):
            raise ValueError("expected a bearer token (RFC 6750 §2.1): letters, digits, -._~+/ and = only at the end")
        return token

    @field_validator("log_level")
    @classmethod
    def _level_name(cls, level: str) -> str:
        if level not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("identity_providers")
    @classmethod
    def _each_provider_once(cls, providers: list[IdentityProvider]) -> list[IdentityProvider]:
        for field_name in ("name", "issuer"):
            values = [getattr(p, field_name) for p in providers]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"each provider's {field_name} must differ ({', '.join(twice)} repeated)")
        return providers

    @field_validator("password_login")
    @classmethod
    def _some_way_in(cls, password_login: bool, info: ValidationInfo) -> bool:
        if not password_login and not info.data.get("identity_providers"):
            raise ValueError("false needs at least one of identity_providers to sign in with")
        return password_login

    @field_validator("smtp_from")
    @classmethod
    def _sender_with_host(cls, sender: str, info: ValidationInfo) -> str:
        if info.data.get("smtp_host") and "@" not in sender:
            raise ValueError("smtp_host is set: name the From address of notification emails (e.g. uma@example.org)")
        return sender

    def identity_provider(self, name: str) -> IdentityProvider | None:
        """The identity provider of this name, if configured."""
        return next((p for p in self.identity_providers if p.name == name), None)

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is None:
            return self.issuer.startswith("https://")
        return self.cookie_secure

    def url(self, path: str) -> str:
        """Absolute URL of a path on this server, built from the issuer."""
        return self.issuer + path

    def with_paths_from(self, instance_path: str) -> Settings:
        """These settings with every relative path (``policy_dir``, ``jwks_file``, a SQLite
        file in ``database_url``) made absolute against the instance folder. Paths written in
        the TOML file were already made absolute against its folder when it was read
        (:func:`read_config_file`); nothing depends on the working directory."""
        folder = Path(instance_path)
        return self.model_copy(
            update={
                "instance_path": str(folder),
                "policy_dir": str(folder / self.policy_dir),  # an absolute policy_dir stays as it is
                "database_url": _sqlite_file_under(self.database_url, folder),
                "trusted_issuers": [
                    issuer.model_copy(update={"jwks_file": str(folder / issuer.jwks_file)})
                    if issuer.jwks_file
                    else issuer
                    for issuer in self.trusted_issuers
                ],
            }
        )


SETTING_NAMES = tuple(Settings.model_fields)


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_config_file(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The settings in a TOML file (top level or an ``[uma]`` table); unknown keys refused."""
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if isinstance(data.get("uma"), dict):
        data = data["uma"]
    problems = [
        f"config file {path}: unknown setting {k!r}{_suggest(k, SETTING_NAMES)}" for k in data if k not in SETTING_NAMES
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    return _paths_from_file(data, Path(path).resolve().parent)


def _sqlite_file_under(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite file path made absolute under ``folder`` (other URLs as they are)."""
    if not url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:") or os.path.isabs(database):
        return url
    return parsed.set(database=str(folder / database)).render_as_string(hide_password=False)


def _paths_from_file(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The TOML file's settings with its relative paths made absolute against ``folder``
    (the file's own folder): a config file means the same wherever the server is started."""
    data = dict(data)
    for name in ("instance_path", "policy_dir"):
        if isinstance(data.get(name), str) and data[name]:
            data[name] = str(folder / data[name])
    if isinstance(data.get("database_url"), str):
        data["database_url"] = _sqlite_file_under(data["database_url"], folder)
    if isinstance(data.get("trusted_issuers"), list):
        data["trusted_issuers"] = [
            {**issuer, "jwks_file": str(folder / issuer["jwks_file"])}
            if isinstance(issuer, dict) and isinstance(issuer.get("jwks_file"), str) and issuer["jwks_file"]
            else issuer
            for issuer in data["trusted_issuers"]
        ]
    return data


def load_settings(
    overrides: Mapping[str, Any] | None = None, *, config_file: str | os.PathLike[str] | None = None
) -> Settings:
    """Build :class:`Settings` from defaults, TOML file, environment and overrides.

    ``overrides`` is a ``create_app`` mapping: its lower-case keys must be
    settings (or ``config_file``); upper-case keys (Flask's) are left alone.
    """
    given = {k: v for k, v in (overrides or {}).items() if k != "config_file" and not k.isupper()}
    unknown = [
        f"create_app: unknown setting {k!r}{_suggest(k, SETTING_NAMES)}" for k in given if k not in SETTING_NAMES
    ]
    if unknown:
        raise ConfigError("\n".join(unknown))
    path = os.fspath(config_file) if config_file else os.environ.get(CONFIG_ENV)
    token = _config_file.set(path)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, given, path)) from None
    except SettingsError as exc:  # an environment value that is not the JSON its setting needs
        raise ConfigError(_explain_env_json(exc)) from None
    finally:
        _config_file.reset(token)


def _explain_env_json(exc: SettingsError) -> str:
    found = re.search(r'field "(\w+)"', str(exc))
    if found is None:
        return str(exc)
    name = found.group(1)
    env = ENV_PREFIX + name.upper()
    raw = next((v for k, v in os.environ.items() if k.upper() == env), "")
    return f"{name} = {raw!r} (environment variable {env}): expected JSON ({exc.__cause__})"


def _explain(exc: ValidationError, given: Mapping[str, Any], path: str | None) -> str:
    """One line per problem: the setting, where its value came from, the value, what was expected."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else "?"
        where = _origin(name, given, path)
        dotted = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        if error["type"] == "extra_forbidden":
            lines.append(f"{dotted} ({where}): unknown key{_suggest(str(loc[-1]), _nested_fields(loc))}")
            continue
        expected = error["msg"].removeprefix("Value error, ").replace("Input should be", "expected")
        value = (
            "(hidden)" if name in SECRET_SETTINGS or SECRET_KEYS & set(map(str, loc)) else repr(_masked(error["input"]))
        )
        lines.append(f"{dotted} = {value} ({where}): {expected}")
    return "\n".join(lines)


def _masked(value: Any) -> Any:
    """``value`` with the members named in :data:`SECRET_KEYS` hidden, however deep."""
    if isinstance(value, dict):
        return {k: "(hidden)" if k in SECRET_KEYS else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _origin(name: str, given: Mapping[str, Any], path: str | None) -> str:
    if name in given:
        return "create_app"
    env = ENV_PREFIX + name.upper()
    if any(k.upper() == env for k in os.environ):
        return f"environment variable {env}"
    if path:
        return f"config file {path}"
    return "default"


def _nested_fields(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model holding ``loc[-1]`` (for a suggestion)."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def unknown_environment_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Warnings for ``UMA_*`` variables that are no setting but look like one (``UMA_TEST_*`` is the tests')."""
    env_names = {ENV_PREFIX + n.upper() for n in SETTING_NAMES}
    warnings = []
    for var in sorted(os.environ if environ is None else environ):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX) or upper in env_names or upper == CONFIG_ENV:
            continue
        if upper.startswith(ENV_PREFIX + "TEST_"):
            continue
        hint = _suggest(upper, env_names)
        if hint:
            warnings.append(f"environment variable {var} is not a setting and is ignored{hint}")
    return warnings


def flask_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The entries of a create_app mapping that are Flask settings (upper case)."""
    return {k: v for k, v in (overrides or {}).items() if k not in SETTING_NAMES and k.isupper()}


# -- the settings table of docs/operations.md ------------------------------------

DOCS_FILE = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
TABLE_BEGIN = "<!-- settings table: generated from app/config.py by `python -m app.config --write-docs` -->"
TABLE_END = "<!-- end of settings table -->"


def _default_text(name: str) -> str:
    default = Settings.model_fields[name].default
    if default in ("", [], None):
        return "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, list):
        return ", ".join(f"`{item}`" for item in default)
    if isinstance(default, int) and default >= 86400 and default % 86400 == 0:
        return f"`{default}` ({default // 86400} d)"
    return f"`{default}`"


def settings_table() -> str:
    """The Markdown table of every setting: name, environment variable, default, meaning."""
    rows = ["| Setting | Environment variable | Default | Meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        meaning = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {_default_text(name)} | {meaning} |")
    return "\n".join(rows)


def docs_with_table(text: str) -> str:
    """``text`` (docs/operations.md) with its settings table replaced by :func:`settings_table`."""
    head, begin, rest = text.partition(TABLE_BEGIN)
    _, end, tail = rest.partition(TABLE_END)
    if not begin or not end:
        raise ValueError(f"{DOCS_FILE.name} has no settings table markers")
    return f"{head}{TABLE_BEGIN}\n{settings_table()}\n{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """``python -m app.config`` prints the settings table; ``--write-docs`` updates docs/operations.md."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--write-docs"]:
        DOCS_FILE.write_text(docs_with_table(DOCS_FILE.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote the settings table into {DOCS_FILE}", file=sys.stderr)
        return 0
    print(settings_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
