"""Settings: defaults, environment, the TOML file, and their precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifyd.config import DB_FILE_NAME, load_settings
from notifyd.policy import retry_policies


def test_defaults_use_the_xdg_data_dir(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.home == tmp_path / "xdg" / "notifyd"
    assert settings.db_url == f"sqlite:///{settings.home / DB_FILE_NAME}"
    assert settings.log_file == settings.home / "notifications.log"
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.retry.max_attempts == 8


def test_toml_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "notifyd.toml"
    config.write_text(
        'port = 9000\nhost = "127.0.0.2"\nconcurrency = 4\n'
        "[channels.email]\nconcurrency = 2\n[channels.email.retry]\nmax_attempts = 3\n"
    )
    monkeypatch.setenv("NOTIFYD_CONFIG", str(config))
    monkeypatch.setenv("NOTIFYD_PORT", "9001")
    settings = load_settings()
    assert (settings.host, settings.port, settings.concurrency) == ("127.0.0.2", 9001, 4)
    assert settings.channels["email"].concurrency == 2
    policies = retry_policies(settings)
    assert (policies.budget("email"), policies.budget("log")) == (3, 8)
    assert load_settings(port=9002).port == 9002
    assert load_settings(port=None).port == 9001


def test_config_path_can_be_given_directly(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'home = "{tmp_path / "data"}"\n')
    assert load_settings(config).home == tmp_path / "data"


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_fastapi_opentelemetry_is_off_unless_asked_for(tmp_path: Path) -> None:
    from notifyd.api.app import create_app
    from tests.conftest import make_settings

    for asked in (False, True):
        app = create_app(make_settings(tmp_path / "home", opentelemetry=asked))
        config = app._telemetry  # FastAPI's own record of what it was given
        assert (config["tracing"], config["metrics"], config["logs"]) == (asked, asked, asked)
