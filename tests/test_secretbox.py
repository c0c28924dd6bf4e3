"""Secrets at rest: ad-hoc recipients that carry tokens are stored encrypted, decrypted only to
deliver; a process without the key releases the run for one that has it (never fails it);
`notifyd secrets rotate` re-encrypts while servers run and loses nothing; a lost key file is
refused at start."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from cli.main import app as cli_app
from notifyd.api.app import create_app
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade
from notifyd.notifications import delivery
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
        assert args["secret_recipient"].startswith("enc:v2:")
        assert TOKEN not in str(args)
        assert _deliver(settings, engine, run_id)["status"] == "succeeded"
        assert receiver.count() == 1
    engine.dispose()


def test_a_process_without_the_key_releases_the_run_uncharged_for_one_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path / "home")
    engine = engine_for(settings)
    upgrade(engine)
    monkeypatch.setattr(delivery, "RELEASE_SECONDS", 0.05)
    with Receiver() as receiver:
        run_id = _submit(settings, engine, f"{receiver.url}/{TOKEN}")
        other = _settings(tmp_path / "home", secret_key=new_key())
        runtime = build_runtime(other, engine=engine)
        with TestClient(create_app(other, runtime=runtime)) as client:

            def released_twice() -> dict[str, Any] | None:
                run: dict[str, Any] = client.get(f"/v1/tasks/{run_id}").json()
                return run if run["attempts"] >= 2 and run["status"] == "retrying" else None

            run = wait_for(released_twice, timeout=20, what="the run to be released twice")
        assert receiver.count() == 0
        assert run["status"] == "retrying" and "released" in run["last_error"]
        assert "which this process does not hold" in run["last_error"]
        assert {a["outcome"] for a in run["attempts_detail"]} == {"interrupted"}
        with engine.connect() as conn:  # not one attempt charged to the run's budget
            charged = conn.execute(
                select(RUNS.c.attempts - RUNS.c.interruptions).where(RUNS.c.id == run_id)
            ).scalar_one()
        assert charged == 0
        assert "released to wait for a process with the key" in caplog.text
        assert _deliver(settings, engine, run_id)["status"] == "succeeded"  # the right key
        assert receiver.count() == 1
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


def _env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("NOTIFYD_HOME", str(home))
    monkeypatch.setenv("NOTIFYD_WEBHOOK__ALLOW_CIDRS", '["127.0.0.0/8"]')


def _cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Engine]:
    """A migrated store in ``tmp_path/home``, which the CLI run in-process (``secrets …``) finds
    through the environment."""
    home = tmp_path / "home"
    settings = _settings(home)
    engine = engine_for(settings)
    upgrade(engine)
    _env(monkeypatch, home)
    return settings, engine


def test_rotating_while_a_server_posts_loses_nothing_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, engine = _cli_store(tmp_path, monkeypatch)
    accepted: list[str] = []
    rotated = threading.Event()
    after = threading.Event()
    with Receiver() as receiver:
        runtime = build_runtime(settings, engine=engine, run_dispatcher=False)
        with TestClient(create_app(settings, runtime=runtime)) as client:

            def post_until_done() -> None:
                count_after = 0
                while count_after < 20:
                    was_rotated = rotated.is_set()
                    response = client.post(
                        "/v1/notifications",
                        json={
                            "channel": "webhook",
                            "to": f"{receiver.url}/{TOKEN}",
                            "message": "m",
                        },
                    )
                    assert response.status_code == 202, response.text
                    accepted.append(response.json()["tasks"][0]["id"])
                    count_after += was_rotated
                after.set()

            poster = threading.Thread(target=post_until_done)
            poster.start()
            wait_for(lambda: len(accepted) >= 10 or None, timeout=20, what="posts to begin")
            result = CliRunner().invoke(cli_app, ["secrets", "rotate", "--settle", "0.3"])
            rotated.set()
            assert after.wait(60)
            poster.join()
        assert result.exit_code == 0, result.output
        assert "retired: " in result.output and "retired: -" not in result.output
        keys = SecretBox.from_settings(settings, create=False).keys
        assert len(keys) == 1
        box = SecretBox(keys)
        for args in _stored_args(engine):  # every value opens with the one key left
            assert box.decrypt(args["secret_recipient"]).endswith(TOKEN)
        # A restart: a new process, the key file as rotation left it, delivers every run.
        with TestClient(create_app(settings, runtime=build_runtime(settings, engine=engine))) as c:

            def all_finished() -> list[str] | None:
                statuses = [c.get(f"/v1/tasks/{run_id}").json()["status"] for run_id in accepted]
                done = all(s in ("succeeded", "failed") for s in statuses)
                return statuses if done else None

            statuses = wait_for(all_finished, timeout=60, what="every run to finish")
        assert statuses == ["succeeded"] * len(accepted)
        assert receiver.count() == len(accepted)
    engine.dispose()


def test_values_from_before_key_ids_still_open_and_rotate_to_the_new_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, engine = _cli_store(tmp_path, monkeypatch)
    with Receiver() as receiver:
        run_id = _submit(settings, engine, f"{receiver.url}/{TOKEN}")
        box = SecretBox.from_settings(settings, create=False)
        legacy = (
            "enc:v1:" + Fernet(box.keys[0]).encrypt(f"{receiver.url}/{TOKEN}".encode()).decode()
        )
        with engine.begin() as conn:
            [args] = [row.args for row in conn.execute(select(RUNS.c.args))]
            conn.execute(update(RUNS).values(args={**args, "secret_recipient": legacy}))
        assert box.decrypt(legacy).endswith(TOKEN)
        result = CliRunner().invoke(cli_app, ["secrets", "rotate", "--settle", "0"])
        assert result.exit_code == 0, result.output
        [args] = _stored_args(engine)
        assert args["secret_recipient"].startswith("enc:v2:")
        assert _deliver(settings, engine, run_id)["status"] == "succeeded"
    engine.dispose()


def test_a_missing_key_file_over_encrypted_recipients_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, engine = _cli_store(tmp_path, monkeypatch)
    _submit(settings, engine, f"http://127.0.0.1:9/{TOKEN}")
    settings.secret_key_file.unlink()
    with pytest.raises(SecretKeyError) as refused:
        build_runtime(settings, engine=engine, run_dispatcher=False)
    detail = refused.value.detail
    assert str(settings.secret_key_file) in detail and "holds 1 recipient(s)" in detail
    assert "1 in runs still to deliver" in detail and "notifyd secrets reset" in detail
    assert not settings.secret_key_file.exists()  # no new key was made over the store
    result = CliRunner().invoke(cli_app, ["serve"])
    assert result.exit_code == 2 and "is missing" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(cli_app, ["secrets", "reset", "--yes"])
    assert result.exit_code == 0, result.output
    assert "cancelled 1 run(s)" in result.output
    assert settings.secret_key_file.exists()
    build_runtime(settings, engine=engine, run_dispatcher=False)  # starts again, on purpose
    with engine.connect() as conn:
        assert conn.execute(select(RUNS.c.status)).scalar_one() == "cancelled"
    engine.dispose()


def test_a_fresh_store_gets_a_key_file_without_asking(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    engine = engine_for(settings)
    upgrade(engine)
    build_runtime(settings, engine=engine, run_dispatcher=False)
    assert settings.secret_key_file.exists()
    engine.dispose()
