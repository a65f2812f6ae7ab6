"""Settings (app/config.py): precedence defaults < TOML file < UMA_* environment < create_app
mapping; every value validated at start-up with an error naming the setting, its origin, the
value and what was expected; unknown keys refused with a suggestion; the docs table generated
from the model."""

from __future__ import annotations

import json
import os
import re

import pytest

from app.config import (
    DOCS_FILE,
    SETTING_NAMES,
    ConfigError,
    Settings,
    docs_with_table,
    load_settings,
    unknown_environment_variables,
)

#: A minimal identity provider (issue 14).
PROVIDER = {"name": "Acme ID", "issuer": "https://id.acme.example", "client_id": "uma-as", "client_secret": "s3cr3t"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No UMA_* variable of the machine or of other tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("UMA_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults():
    s = load_settings()
    assert s.rpt_format == "jwt" and s.ticket_lifetime == 300 and s.database_url == ""
    assert s.trusted_issuers == [] and s.uma_profiles_supported == []
    assert s.log_level == "INFO" and s.log_format == "text"
    assert s == Settings()


def test_toml_then_env_then_overrides(tmp_path, monkeypatch):
    cfg = tmp_path / "uma.toml"
    cfg.write_text(
        'issuer = "https://as.example.org"\nticket_lifetime = 120\nrpt_format = "opaque"\n'
        '[[trusted_issuers]]\nissuer = "https://idp.example.com"\njwks_uri = "https://idp.example.com/jwks"\n'
        'audience = "as"\nalgorithms = ["RS256", "ES256"]\n'
    )
    monkeypatch.setenv("UMA_CONFIG", str(cfg))
    monkeypatch.setenv("UMA_TICKET_LIFETIME", "90")
    monkeypatch.setenv("UMA_REGISTRATION_OPEN", "false")
    s = load_settings({"rpt_lifetime": 60})
    assert s.issuer == "https://as.example.org"
    assert s.rpt_format == "opaque"
    assert s.ticket_lifetime == 90
    assert s.registration_open is False
    assert s.rpt_lifetime == 60
    assert s.trusted_issuers[0].issuer == "https://idp.example.com"
    assert s.trusted_issuers[0].algorithms == ["RS256", "ES256"]
    assert load_settings({"ticket_lifetime": 10}).ticket_lifetime == 10
    # --config wins over UMA_CONFIG
    other = tmp_path / "other.toml"
    other.write_text('[uma]\nrpt_format = "jwt"\n')
    assert load_settings(config_file=other).rpt_format == "jwt"


def test_every_setting_has_an_environment_variable(monkeypatch):
    env = {
        "UMA_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "UMA_ISSUER": "https://as.example.org/",
        "UMA_POLICY_DIR": "/srv/policies",
        "UMA_SECRET_KEY": "k",
        "UMA_RPT_FORMAT": "opaque",
        "UMA_RPT_LIFETIME": "30",
        "UMA_UMA_PROFILES_SUPPORTED": "https://a.example/p1, https://a.example/p2",
        "UMA_TRUSTED_ISSUERS": '[{"issuer": "https://idp", "jwks_file": "/k.json"}]',
        "UMA_COOKIE_SECURE": "yes",
        "UMA_LOG_LEVEL": "debug",
        "UMA_LOG_FORMAT": "json",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.database_url.startswith("postgresql")
    assert s.issuer == "https://as.example.org"  # trailing slash dropped
    assert s.policy_dir == "/srv/policies" and s.secret_key == "k"
    assert s.rpt_format == "opaque" and s.rpt_lifetime == 30
    assert s.uma_profiles_supported == ["https://a.example/p1", "https://a.example/p2"]
    assert s.trusted_issuers[0].jwks_file == "/k.json"
    assert s.cookie_secure is True and s.log_level == "DEBUG" and s.log_format == "json"
    monkeypatch.setenv("UMA_UMA_PROFILES_SUPPORTED", '["https://a.example/p3"]')
    assert load_settings().uma_profiles_supported == ["https://a.example/p3"]


def test_every_setting_is_read_from_its_environment_variable(monkeypatch):
    """Whatever its type: a value the model accepts, set as UMA_NAME, arrives."""
    for name in SETTING_NAMES:
        field = Settings.model_fields[name]
        default = field.default
        if isinstance(default, bool) or default is None:
            raw, expected = "false", False
        elif isinstance(default, int):
            raw, expected = str(default + 7), default + 7
        elif isinstance(default, list):
            raw, expected = "[]", []
        elif name == "issuer":
            raw, expected = "https://env.example", "https://env.example"
        elif name == "rpt_format":
            raw, expected = "opaque", "opaque"
        elif name == "log_level":
            raw, expected = "ERROR", "ERROR"
        elif name == "log_format":
            raw, expected = "json", "json"
        elif name == "sqlite_synchronous":
            raw, expected = "normal", "normal"
        elif name == "lockout_strategy":
            raw, expected = "fixed-window", "fixed-window"
        else:
            raw, expected = "from-env", "from-env"
        if name == "password_login":  # off only with an identity provider to sign in with instead
            monkeypatch.setenv("UMA_IDENTITY_PROVIDERS", json.dumps([PROVIDER]))
        if name == "smtp_host":  # an SMTP server needs the From address of its emails
            monkeypatch.setenv("UMA_SMTP_FROM", "uma@example.org")
        monkeypatch.setenv(f"UMA_{name.upper()}", raw)
        assert getattr(load_settings(), name) == expected, name
        monkeypatch.delenv(f"UMA_{name.upper()}")
        monkeypatch.delenv("UMA_IDENTITY_PROVIDERS", raising=False)
        monkeypatch.delenv("UMA_SMTP_FROM", raising=False)


@pytest.mark.parametrize(
    "env, setting",
    [
        ({"UMA_RPT_FORMAT": "xml"}, "rpt_format"),
        ({"UMA_TICKET_LIFETIME": "soon"}, "ticket_lifetime"),
        ({"UMA_TICKET_LIFETIME": "-1"}, "ticket_lifetime"),
        ({"UMA_TICKET_LIFETIME": "0"}, "ticket_lifetime"),
        ({"UMA_REGISTRATION_OPEN": "maybe"}, "registration_open"),
        ({"UMA_ISSUER": "ftp://x"}, "issuer"),
        ({"UMA_LOG_LEVEL": "loud"}, "log_level"),
        ({"UMA_LOG_FORMAT": "xml"}, "log_format"),
        ({"UMA_LOCKOUT_STRATEGY": "sliding"}, "lockout_strategy"),
        ({"UMA_LOCKOUT_ACCOUNT_ATTEMPTS": "-1"}, "lockout_account_attempts"),
        ({"UMA_METRICS_NETWORKS": "10.0.0.0/8,not-a-network"}, "not-a-network"),
        ({"UMA_TRUSTED_ISSUERS": '[{"issuer": "https://idp", "jwks_uri": "u", "algorithms": ["none"]}]'}, "none"),
        ({"UMA_TRUSTED_ISSUERS": '[{"issuer": "https://idp", "jwks_uri": "u", "algorithms": []}]'}, "algorithms"),
        ({"UMA_TRUSTED_ISSUERS": '[{"issuer": "https://idp"}]'}, "jwks_uri or jwks_file"),
        ({"UMA_TRUSTED_ISSUERS": "[not json"}, "UMA_TRUSTED_ISSUERS"),
        ({"UMA_UMA_PROFILES_SUPPORTED": "[not json"}, "uma_profiles_supported"),
    ],
)
def test_bad_values_raise_config_error_naming_the_setting(env, setting, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=re.escape(setting)):
        load_settings()


@pytest.mark.parametrize(
    "toml, setting, value, expected",
    [
        ('registration_open = "maybe"', "registration_open", "'maybe'", "valid boolean"),
        ("issuer = 5", "issuer", "5", "valid string"),
        ("ticket_lifetime = true", "ticket_lifetime", "True", "whole number"),
        ("ticket_lifetime = 2.5", "ticket_lifetime", "2.5", "valid integer"),
        ('log_level = "loud"', "log_level", "'loud'", "one of CRITICAL"),
        ("uma_profiles_supported = 3", "uma_profiles_supported", "3", "valid list"),
        ("cookie_secure = 2", "cookie_secure", "2", "valid boolean"),
    ],
)
def test_the_error_names_the_setting_its_origin_the_value_and_what_was_expected(
    tmp_path, toml, setting, value, expected
):
    cfg = tmp_path / "uma.toml"
    cfg.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg)
    message = str(info.value)
    assert message.startswith(f"{setting} = {value} (config file {cfg}): ")
    assert expected in message


def test_a_string_false_in_the_file_means_false_not_open_registration(tmp_path):
    """The bug that started issue 12: registration_open = "false" left registration open."""
    cfg = tmp_path / "uma.toml"
    cfg.write_text('registration_open = "false"\n')
    assert load_settings(config_file=cfg).registration_open is False


def test_every_problem_is_reported_at_once_and_secrets_are_not_shown(monkeypatch):
    monkeypatch.setenv("UMA_TICKET_LIFETIME", "soon")
    with pytest.raises(ConfigError) as info:
        load_settings({"secret_key": ["the-secret"], "rpt_format": "xml"})
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert any(line.startswith("ticket_lifetime = 'soon' (environment variable UMA_TICKET_LIFETIME)") for line in lines)
    assert any(line.startswith("rpt_format = 'xml' (create_app): expected 'jwt' or 'opaque'") for line in lines)
    assert "the-secret" not in str(info.value) and "secret_key = (hidden) (create_app)" in str(info.value)


def test_unknown_toml_key_is_refused_with_a_suggestion(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("tiket_lifetime = 3\nzzz = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg)
    assert str(info.value).splitlines() == [
        f"config file {cfg}: unknown setting 'tiket_lifetime' (did you mean 'ticket_lifetime'?)",
        f"config file {cfg}: unknown setting 'zzz'",
    ]


def test_unknown_key_of_a_trusted_issuer_is_refused_with_a_suggestion(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[trusted_issuers]]\nissuer = "https://idp"\njwks_url = "https://idp/jwks"\n')
    with pytest.raises(ConfigError, match=re.escape("trusted_issuers[0].jwks_url (config file")) as info:
        load_settings(config_file=cfg)
    assert "did you mean 'jwks_uri'?" in str(info.value)


def test_unknown_create_app_setting_is_refused_but_flask_keys_pass():
    with pytest.raises(ConfigError, match=re.escape("'rpt_formt' (did you mean 'rpt_format'?)")):
        load_settings({"rpt_formt": "jwt"})
    assert load_settings({"TESTING": True, "config_file": None}).rpt_format == "jwt"


def test_missing_or_broken_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(config_file=tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("issuer = \n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_settings(config_file=broken)


def test_bad_log_level_stops_create_app_with_a_config_error(tmp_path):
    from app import create_app

    with pytest.raises(ConfigError, match="log_level = 'verbose' \\(create_app\\): expected one of"):
        create_app({"database_url": f"sqlite:///{tmp_path}/x.db", "log_level": "verbose"})


def test_unknown_environment_variables_resembling_a_setting_are_warned_about():
    warnings = unknown_environment_variables(
        {"UMA_TIKET_LIFETIME": "3", "UMA_TICKET_LIFETIME": "3", "UMA_CONFIG": "x", "UMA_TEST_DATABASE_URL": "y"}
    )
    assert warnings == [
        "environment variable UMA_TIKET_LIFETIME is not a setting and is ignored (did you mean 'UMA_TICKET_LIFETIME'?)"
    ]


def test_the_docs_settings_table_is_generated_from_the_model():
    text = DOCS_FILE.read_text(encoding="utf-8")
    assert text == docs_with_table(text), "docs/operations.md is stale: run python -m app.config --write-docs"
    for name in SETTING_NAMES:
        assert f"| `{name}` | `UMA_{name.upper()}` |" in text
        assert Settings.model_fields[name].description, f"setting {name} needs a docstring (its meaning in the docs)"


def test_the_docs_toml_example_is_valid(tmp_path):
    text = DOCS_FILE.read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", text, re.S)
    assert example is not None
    cfg = tmp_path / "uma.toml"
    cfg.write_text(example.group(1))
    s = load_settings(config_file=cfg)
    assert s.issuer == "https://as.example.org" and s.trusted_issuers[0].algorithms == ["RS256"]


def test_generated_secret_key_is_kept_in_the_instance_folder(tmp_path):
    from app import create_app

    config = {"database_url": f"sqlite:///{tmp_path}/k.db", "instance_path": str(tmp_path / "inst")}
    first = create_app(config).config["SECRET_KEY"]
    second = create_app(config).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert os.stat(tmp_path / "inst" / "secret_key").st_mode & 0o777 == 0o600
    assert create_app({**config, "secret_key": "explicit"}).config["SECRET_KEY"] == "explicit"


@pytest.mark.parametrize(
    "url, needle",
    [
        ("postgresql+pg8000://uma:s3cret@db/uma", "pip install 'uma-as[postgres]'"),
        ("nonsense s3cret", "expected an SQLAlchemy URL"),
        ("foo://uma:s3cret@db/uma", "expected an SQLAlchemy URL"),
    ],
)
def test_a_database_url_without_its_driver_or_unreadable_is_a_config_error(tmp_path, url, needle):
    """PostgreSQL's driver is the `postgres` extra: without it, a configuration error saying so."""
    from app import create_app

    with pytest.raises(ConfigError, match=re.escape(needle)) as info:
        create_app({"database_url": url, "instance_path": str(tmp_path)})
    assert str(info.value).startswith("database_url = ") and "s3cret" not in str(info.value)


# -- paths: from the config file's folder, else the instance folder, never the working directory --


def test_relative_paths_in_the_config_file_are_taken_from_its_folder(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    conf = conf_dir / "uma.toml"
    conf.write_text(
        'instance_path = "state"\npolicy_dir = "rules"\ndatabase_url = "sqlite:///data/uma.db"\n'
        '[[trusted_issuers]]\nissuer = "https://idp.example"\njwks_file = "keys/idp.json"\n'
    )
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(config_file=conf)
    assert s.instance_path == str(conf_dir / "state")
    assert s.policy_dir == str(conf_dir / "rules")
    assert s.database_url == f"sqlite:///{conf_dir / 'data' / 'uma.db'}"
    assert s.trusted_issuers[0].jwks_file == str(conf_dir / "keys" / "idp.json")


def test_absolute_paths_and_server_urls_in_the_config_file_stay_as_written(tmp_path):
    conf = tmp_path / "uma.toml"
    conf.write_text(
        'policy_dir = "/srv/policies"\ndatabase_url = "postgresql+psycopg://u@db/uma"\ninstance_path = "/var/lib/uma"\n'
    )
    s = load_settings(config_file=conf)
    assert (s.policy_dir, s.instance_path) == ("/srv/policies", "/var/lib/uma")
    assert s.database_url == "postgresql+psycopg://u@db/uma"


def test_relative_paths_from_the_environment_are_taken_from_the_instance_folder(tmp_path, monkeypatch):
    from app import create_app, get_settings
    from tests.support.server import close_app

    instance = tmp_path / "instance"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UMA_POLICY_DIR", "my-policies")
    monkeypatch.setenv("UMA_DATABASE_URL", "sqlite:///db/uma.db")
    (instance / "db").mkdir(parents=True)
    app = create_app({"instance_path": str(instance), "secret_key": "k"})
    try:
        s = get_settings(app)
        assert s.policy_dir == str(instance / "my-policies")
        assert s.database_url == f"sqlite:///{instance / 'db' / 'uma.db'}"
        assert (instance / "db" / "uma.db").exists() and not (tmp_path / "db").exists()
    finally:
        close_app(app)


def test_the_default_policy_folder_is_in_the_instance_folder(tmp_path, monkeypatch):
    from app import create_app, get_settings
    from tests.support.server import close_app

    monkeypatch.chdir(tmp_path)
    app = create_app({"instance_path": str(tmp_path / "inst"), "secret_key": "k"})
    try:
        assert get_settings(app).policy_dir == str(tmp_path / "inst" / "policies")
    finally:
        close_app(app)


def test_a_relative_instance_path_from_the_environment_is_made_absolute(tmp_path, monkeypatch):
    from app import create_app
    from tests.support.server import close_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UMA_INSTANCE_PATH", "inst")
    app = create_app({"secret_key": "k"})
    try:
        assert app.instance_path == str(tmp_path / "inst") and (tmp_path / "inst" / "uma.db").exists()
    finally:
        close_app(app)


# -- identity providers (issue 14) ------------------------------------------------


def test_identity_providers_from_toml_with_defaults(tmp_path):
    cfg = tmp_path / "uma.toml"
    cfg.write_text(
        "[[identity_providers]]\n"
        'name = "Acme ID"\nissuer = "https://id.acme.example"\nclient_id = "uma-as"\nclient_secret = "s3cr3t"\n'
        'scopes = "email profile"\nclaim_mapping = { email = "email", groups = "roles" }\n'
        "[[identity_providers]]\n"
        'name = "Public"\nissuer = "https://public.example"\nclient_id = "uma-public"\n'
        'scopes = ["openid", "email"]\ncreate_accounts = true\n'
    )
    s = load_settings(config_file=cfg)
    acme, public = s.identity_providers
    assert acme.scopes == ["openid", "email", "profile"]  # a space-separated string; openid added
    assert acme.claim_mapping == {"email": "email", "groups": "roles"}
    assert acme.create_accounts is False and acme.algorithms == ["RS256"]
    assert acme.secret == "s3cr3t" and not acme.is_public and "s3cr3t" not in repr(acme)
    assert public.is_public and public.secret is None and public.scopes == ["openid", "email"]
    assert public.create_accounts is True
    assert s.identity_provider("Public") is public and s.identity_provider("nope") is None


def test_identity_providers_from_the_environment(monkeypatch):
    monkeypatch.setenv("UMA_IDENTITY_PROVIDERS", json.dumps([PROVIDER]))
    assert load_settings().identity_providers[0].issuer == "https://id.acme.example"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"algorithms": ["none"]}, "never 'none'"),
        ({"algorithms": ["HS256"]}, "never 'none' or HS*"),
        ({"issuer": "id.acme.example"}, "expected an http(s) URL"),
        ({"name": "a/b"}, "identity_providers[0].name"),
        ({"client_id": ""}, "identity_providers[0].client_id"),
        ({"claim_mapping": {"email": ""}}, "identity_providers[0].claim_mapping.email"),
        ({"tenant": "x"}, "identity_providers[0].tenant (create_app): unknown key"),
    ],
)
def test_bad_identity_provider_is_refused_and_its_secret_never_shown(change, expected):
    with pytest.raises(ConfigError) as info:
        load_settings({"identity_providers": [{**PROVIDER, **change}]})
    assert expected in str(info.value) and "s3cr3t" not in str(info.value)


def test_each_identity_provider_once():
    twice = [PROVIDER, {**PROVIDER, "issuer": "https://other.example"}]
    with pytest.raises(ConfigError, match="each provider's name must differ") as info:
        load_settings({"identity_providers": twice})
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(ConfigError, match="each provider's issuer must differ"):
        load_settings({"identity_providers": [PROVIDER, {**PROVIDER, "name": "Other"}]})


def test_password_login_off_needs_an_identity_provider():
    with pytest.raises(ConfigError, match="password_login = False .*needs at least one of identity_providers"):
        load_settings({"password_login": False})
    assert load_settings({"password_login": False, "identity_providers": [PROVIDER]}).password_login is False


@pytest.mark.parametrize("token", ["has space", "a=b", "colon:inside", "caf\xe9", "=lead"])
def test_a_metrics_token_that_cannot_be_a_bearer_token_is_refused_unshown_RFC6750(token):
    """/metrics reads its token as every endpoint reads a Bearer token (app/http_auth.py): an RFC
    6750 §2.1 b64token, so another text could never be presented; refused at start, not shown."""
    with pytest.raises(ConfigError) as info:
        load_settings({"metrics_token": token})
    assert str(info.value).startswith("metrics_token = (hidden) (create_app): expected a bearer token")
    assert token not in str(info.value)


def test_a_b64token_metrics_token_is_kept_RFC6750():
    token = "Ab0-._~+/=="
    assert load_settings({"metrics_token": token}).metrics_token == token
