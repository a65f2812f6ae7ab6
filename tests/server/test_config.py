"""Settings precedence: defaults < TOML file < UMA_* environment < create_app mapping."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings


def test_defaults():
    s = load_settings(environ={})
    assert s.rpt_format == "jwt" and s.ticket_lifetime == 300 and s.database_url == ""
    assert s.trusted_issuers == []


def test_toml_then_env_then_overrides(tmp_path):
    cfg = tmp_path / "uma.toml"
    cfg.write_text(
        'issuer = "https://as.example.org"\nticket_lifetime = 120\nrpt_format = "opaque"\n'
        '[[trusted_issuers]]\nissuer = "https://idp.example.com"\njwks_uri = "https://idp.example.com/jwks"\n'
        'audience = "as"\nalgorithms = ["RS256", "ES256"]\n'
    )
    env = {"UMA_CONFIG": str(cfg), "UMA_TICKET_LIFETIME": "90", "UMA_REGISTRATION_OPEN": "false"}
    s = load_settings({"rpt_lifetime": 60}, environ=env)
    assert s.issuer == "https://as.example.org"
    assert s.rpt_format == "opaque"
    assert s.ticket_lifetime == 90
    assert s.registration_open is False
    assert s.rpt_lifetime == 60
    assert s.trusted_issuers[0].issuer == "https://idp.example.com"
    assert s.trusted_issuers[0].algorithms == ["RS256", "ES256"]
    assert load_settings({"ticket_lifetime": 10}, environ=env).ticket_lifetime == 10


def test_every_setting_has_an_environment_variable():
    s = load_settings(
        environ={
            "UMA_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "UMA_ISSUER": "https://as.example.org/",
            "UMA_POLICY_DIR": "/srv/policies",
            "UMA_SECRET_KEY": "k",
            "UMA_RPT_FORMAT": "opaque",
            "UMA_RPT_LIFETIME": "30",
            "UMA_UMA_PROFILES_SUPPORTED": "https://a.example/p1, https://a.example/p2",
            "UMA_TRUSTED_ISSUERS": '[{"issuer": "https://idp", "jwks_file": "/k.json"}]',
        }
    )
    assert s.database_url.startswith("postgresql")
    assert s.issuer == "https://as.example.org"  # trailing slash dropped
    assert s.policy_dir == "/srv/policies" and s.secret_key == "k"
    assert s.rpt_format == "opaque" and s.rpt_lifetime == 30
    assert s.uma_profiles_supported == ["https://a.example/p1", "https://a.example/p2"]
    assert s.trusted_issuers[0].jwks_file == "/k.json"


@pytest.mark.parametrize(
    "env",
    [
        {"UMA_RPT_FORMAT": "xml"},
        {"UMA_TICKET_LIFETIME": "soon"},
        {"UMA_TICKET_LIFETIME": "-1"},
        {"UMA_REGISTRATION_OPEN": "maybe"},
        {"UMA_ISSUER": "ftp://x"},
        {"UMA_TRUSTED_ISSUERS": '[{"issuer": "https://idp", "jwks_uri": "u", "algorithms": ["none"]}]'},
        {"UMA_TRUSTED_ISSUERS": '[{"issuer": "https://idp"}]'},
        {"UMA_TRUSTED_ISSUERS": "[not json"},
    ],
)
def test_bad_values_raise_config_error(env):
    with pytest.raises(ConfigError):
        load_settings(environ=env)


def test_unknown_toml_key_is_refused(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("tiket_lifetime = 3\n")
    with pytest.raises(ConfigError, match="tiket_lifetime"):
        load_settings(environ={"UMA_CONFIG": str(cfg)})


def test_generated_secret_key_is_kept_in_the_instance_folder(tmp_path):
    import os

    from app import create_app

    config = {"database_url": f"sqlite:///{tmp_path}/k.db", "instance_path": str(tmp_path / "inst")}
    first = create_app(config).config["SECRET_KEY"]
    second = create_app(config).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert os.stat(tmp_path / "inst" / "secret_key").st_mode & 0o777 == 0o600
    assert create_app({**config, "secret_key": "explicit"}).config["SECRET_KEY"] == "explicit"
