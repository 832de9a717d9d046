"""Settings: declared once (SETTINGS), read from leadscore.toml, the environment, then flags."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from leadscore.config import (
    SETTINGS,
    ConfigError,
    Settings,
    Webhook,
    hash_token,
    load_settings,
    write_config,
)
from leadscore.filters import Filters


def test_every_setting_is_declared_once_with_help_and_an_environment_variable() -> None:
    keys = [s.key for s in SETTINGS]
    assert len(keys) == len(set(keys))
    assert set(keys) == {f.name for f in fields(Settings)} - {"config_file"}
    assert all(s.help and s.env and s.env.startswith("LEADSCORE_") for s in SETTINGS)


def test_init_writes_a_documented_file_that_loads(tmp_path: Path) -> None:
    path, write_key, token = write_config(tmp_path)
    text = path.read_text()
    for setting in SETTINGS:
        assert f"${setting.env}" in text, setting.key      # each documented in the file
    assert token not in text and hash_token(token) in text  # only the hash is stored
    assert write_key in text
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    settings = load_settings(path, env={})
    assert settings.is_write_key(write_key) and not settings.is_write_key(token)
    assert settings.is_admin_token(token) and not settings.is_admin_token(write_key)
    assert settings.db == f"sqlite:///{tmp_path.resolve() / 'leadscore.db'}"
    assert settings.models_dir == str(tmp_path / "models") and (tmp_path / "models").is_dir()
    # the example models, so that `leadscore serve` scores from the first event
    assert sorted(p.name for p in (tmp_path / "models").glob("*.yaml")) == [
        "b2b-software.yaml", "b2c-art-supplies.yaml"]
    tomllib.loads(text)
    with pytest.raises(ConfigError, match="exists already"):
        write_config(tmp_path)


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    path = tmp_path / "leadscore.toml"
    path.write_text('db = "postgresql://u:pw@localhost/x"\nport = 9000\nworkers = 2\n'
                    '[[webhooks]]\nurl = "https://a.example/h"\nsecret = "s"\n')
    env = {"LEADSCORE_PORT": "9100", "LEADSCORE_WEBHOOK_URLS": "https://b.example/1, "
           "http://127.0.0.1:9/2", "LEADSCORE_WEBHOOK_SECRET": "t",
           "LEADSCORE_ADMIN_TOKEN": "tok", "LEADSCORE_WRITE_KEYS": "k1,k2",
           "LEADSCORE_LOG_REQUESTS": "false"}
    settings = load_settings(path, env=env, overrides={"workers": 4, "host": None})
    assert settings.db == "postgresql://u:pw@localhost/x"
    assert (settings.port, settings.workers, settings.host) == (9100, 4, "127.0.0.1")
    assert settings.webhooks == (Webhook("https://b.example/1", "t"),
                                 Webhook("http://127.0.0.1:9/2", "t"))
    assert settings.is_admin_token("tok") and settings.write_keys == ("k1", "k2")
    assert settings.log_requests is False
    assert load_settings(env={"LEADSCORE_CONFIG": str(path)}).port == 9000


@pytest.mark.parametrize(("text", "message"), [
    ("port = 'eighty'", r"port = 'eighty': expected a whole number"),
    ("workers = 0", "workers = 0: expected a positive number"),
    ("webhooks = ['ftp://x']", "expected webhook URLs starting with http"),
    ("smtp_url = 'mail.example:25'", "expected smtp://host:port"),
    ("write_key = ['x']", "unknown setting 'write_key'; did you mean 'write_keys'"),
    ("log_level = 'loud'", "expected debug, info, warning or error"),
    ("db = ", "not valid TOML"),
])
def test_bad_settings_name_the_key_the_value_and_what_was_expected(
        tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "leadscore.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_settings_travel_to_worker_processes_as_json() -> None:
    settings = Settings(write_keys=("a",), webhooks=(Webhook("http://x/h", "s"),),
                        admin_token_sha256=hash_token("t"), smtp_url="smtp://h:25")
    assert Settings.from_json(settings.to_json()) == settings


def test_filters_are_a_table_in_the_file_and_json_in_the_environment(tmp_path: Path) -> None:
    path, _, _ = write_config(tmp_path)
    assert load_settings(path, env={}).filters == Filters()     # init writes the defaults
    text = path.read_text().replace("ips = []", 'ips = ["10.0.0.0/8"]').replace(
        "internal_domains = []", 'internal_domains = ["shop.example"]')
    path.write_text(text)
    settings = load_settings(path, env={})
    assert settings.filters.ips == ("10.0.0.0/8",)
    assert settings.filters.internal_domains == ("shop.example",) and settings.filters.bots
    assert Settings.from_json(settings.to_json()) == settings
    moved = load_settings(path, env={"LEADSCORE_FILTERS": '{"bots": false}'})
    assert moved.filters == Filters(bots=False)               # the environment: all of it
    with pytest.raises(ConfigError, match="LEADSCORE_FILTERS: not a JSON object"):
        load_settings(path, env={"LEADSCORE_FILTERS": "bots=false"})


@pytest.mark.parametrize(("text", "message"), [
    ('[filters]\nipz = []', r"unknown setting 'filters.ipz'; did you mean 'ips'\?"),
    ('[filters]\nips = ["10.0.0.0/33"]', r"filters.ips = \['10.0.0.0/33'\]: '10.0.0.0/33' is "
                                         "not an address range"),
    ('[filters]\nuser_agents = ["("]', r"filters.user_agents = .*not a regular expression"),
    ('filters = "bots"', r"filters = 'bots': expected a table of filters"),
])
def test_a_wrong_filter_names_its_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "leadscore.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})
