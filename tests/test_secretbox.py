"""Secrets at rest: ad-hoc recipients that carry tokens are stored encrypted, decrypted only to
deliver; a wrong key fails the run with one clear error; `notifyd secrets rotate` re-encrypts."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from cli.main import app as cli_app
from notifyd.api.app import create_app
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade
from notifyd.notifications.secretbox import SecretBox, SecretKeyError, new_key
from notifyd.runtime import build_runtime
from notifyd.tracking.admin import RUNS
from tests.conftest import make_settings
from tests.support import Receiver, wait_for

TOKEN = "s3cr3t-path-token-4f1c"


def _settings(home: Path, **overrides: Any) -> Settings:
    return make_settings(home, webhook={"allow_cidrs": ["127.0.0.0/8"]}, **overrides)


def _stored_args(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [row.args for row in conn.execute(select(RUNS.c.args))]


def _submit(settings: Settings, engine: Engine, url: str) -> str:
    runtime = build_runtime(settings, engine=engine, run_dispatcher=False)
    with TestClient(create_app(settings, runtime=runtime)) as client:
        response = client.post(
            "/v1/notifications", json={"channel": "webhook", "to": url, "message": "m"}
        )
        assert response.status_code == 202, response.text
        run_id: str = response.json()["tasks"][0]["id"]
        shown = client.get(f"/v1/tasks/{run_id}").text
    assert TOKEN not in shown
    return run_id


def _deliver(settings: Settings, engine: Engine, run_id: str) -> dict[str, Any]:
    with TestClient(create_app(settings, runtime=build_runtime(settings, engine=engine))) as client:

        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = client.get(f"/v1/tasks/{run_id}").json()
            return run if run["status"] in ("succeeded", "failed") else None

        return wait_for(finished, timeout=20, what="the run to finish")


def test_the_key_file_is_made_once_for_this_user_only(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    first = SecretBox.from_settings(settings)
    assert settings.secret_key_file.exists()
    assert stat.S_IMODE(settings.secret_key_file.stat().st_mode) == 0o600
    assert SecretBox.from_settings(settings).keys == first.keys


def test_a_malformed_key_is_one_clear_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home", secret_key="not-a-key")
    with pytest.raises(SecretKeyError, match="NOTIFYD_SECRET_KEY: not a secret key"):
        SecretBox.from_settings(settings)


def test_recipients_are_stored_encrypted_and_delivered_in_clear(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    engine = engine_for(settings)
    upgrade(engine)
    with Receiver() as receiver:
        run_id = _submit(settings, engine, f"{receiver.url}/{TOKEN}")
        [args] = _stored_args(engine)
        assert args["secret_recipient"].startswith("enc:v1:")
        assert TOKEN not in str(args)
        assert _deliver(settings, engine, run_id)["status"] == "succeeded"
        assert receiver.count() == 1
    engine.dispose()


def test_a_wrong_key_fails_the_run_for_good_with_a_clear_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    engine = engine_for(settings)
    upgrade(engine)
    with Receiver() as receiver:
        run_id = _submit(settings, engine, f"{receiver.url}/{TOKEN}")
        other = _settings(tmp_path / "home", secret_key=new_key())
        run = _deliver(other, engine, run_id)
        assert receiver.count() == 0
    assert run["status"] == "failed" and run["attempts"] == 1
    assert "secret key is not the one it was encrypted with" in run["last_error"]
    engine.dispose()


def test_rotate_reencrypts_every_stored_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    settings = _settings(home)
    engine = engine_for(settings)
    upgrade(engine)
    monkeypatch.setenv("NOTIFYD_HOME", str(home))
    monkeypatch.setenv("NOTIFYD_WEBHOOK__ALLOW_CIDRS", '["127.0.0.0/8"]')
    with Receiver() as receiver:
        run_id = _submit(settings, engine, f"{receiver.url}/{TOKEN}")
        before = SecretBox.from_settings(settings)
        [old_value] = [args["secret_recipient"] for args in _stored_args(engine)]
        result = CliRunner().invoke(cli_app, ["secrets", "rotate"])
        assert result.exit_code == 0, result.output
        assert "re-encrypted 1 stored secret recipient(s)" in result.output
        after = SecretBox.from_settings(settings)
        assert after.keys != before.keys and len(after.keys) == 1
        [new_value] = [args["secret_recipient"] for args in _stored_args(engine)]
        assert new_value != old_value and TOKEN not in new_value
        with pytest.raises(SecretKeyError):
            SecretBox(before.keys).decrypt(new_value)
        assert _deliver(settings, engine, run_id)["status"] == "succeeded"
    engine.dispose()


def test_rotate_with_an_environment_key_needs_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    upgrade(engine_for(_settings(home)))
    monkeypatch.setenv("NOTIFYD_HOME", str(home))
    monkeypatch.setenv("NOTIFYD_SECRET_KEY", new_key())
    result = CliRunner().invoke(cli_app, ["secrets", "rotate"])
    assert result.exit_code == 1
    assert "pass --new-key" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli_app, ["secrets", "rotate", "--new-key", new_key()])
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("NOTIFYD_SECRET_KEY")
    result = CliRunner().invoke(cli_app, ["secrets", "rotate"])  # no key file: one line
    assert result.exit_code == 2 and "no secret key" in result.output
