"""``notifyd subscribe`` against a real ``notifyd serve``: kept messages, ntfy's JSON, the live
stream, refusals in one line, and what it does when the server cannot be reached."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support import NOTIFYD, ServerProcess, free_port, wait_for

pytestmark = pytest.mark.system

TOPICS = ("phone", "quiet", "live", "nasty")
NASTY = ["[/x]", "[bold]b[/bold]", "[red]x[/red]", "<script>alert(1)</script>"]
STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


def write_config(path: Path) -> Path:
    path.write_text(
        "".join(f'[destinations.{t}]\nchannel = "inbox"\nto = ["{t}"]\n\n' for t in TOPICS)
    )
    return path


def inbox_server(home: Path) -> ServerProcess:
    config = write_config(home.parent / "notifyd.toml")
    return ServerProcess(
        home, env={"NOTIFYD_CONFIG": str(config), "NOTIFYD_TOKEN_CACHE_SECONDS": "0"}
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An open server (no tokens) whose destinations are inbox topics."""
    with inbox_server(tmp_path_factory.mktemp("subscribe") / "home") as served:
        yield served


def publish(server: ServerProcess, topic: str, message: str, **headers: str) -> str:
    """ntfy's ``POST /<topic>``; returns the notification's id."""
    answer = httpx.post(f"{server.url}/{topic}", content=message, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    notification_id: str = answer.json()["id"]
    return notification_id


def subscriber(
    server: ServerProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``notifyd subscribe ARGS`` running, its output read line by line as it comes."""
    return subprocess.Popen(
        [NOTIFYD, "subscribe", *args],
        env={**server.env, "COLUMNS": "200", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_lines(
    stream: IO[str] | None, count: int, proc: subprocess.Popen[str], *, timeout: float = 30
) -> list[str]:
    """The next ``count`` lines of ``stream``; the process is killed (and the test fails) when
    they do not come within ``timeout``: a watchdog, not a sleep."""
    assert stream is not None
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        lines = [stream.readline() for _ in range(count)]
    finally:
        watchdog.cancel()
    assert all(line.endswith("\n") for line in lines), f"ended early: {lines}"
    return [line.rstrip("\n") for line in lines]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_poll_prints_the_kept_messages_and_stops(server: ServerProcess) -> None:
    publish(server, "phone", "first", title="One")
    publish(server, "phone", "second", priority="high", tags="warning,disk")
    result = server.cli("subscribe", "phone", "--poll", timeout=30)
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert all(STAMP.match(line) for line in lines)
    assert lines[0].endswith("phone One: first")
    assert lines[1].endswith("phone [high] warning,disk second")
    assert result.stderr == ""


def test_json_prints_ntfys_message_lines(server: ServerProcess) -> None:
    publish(server, "quiet", "hello", title="Greeting", tags="tada")
    result = server.cli("subscribe", "quiet", "--poll", "--json", timeout=30)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 1, result.stdout
    (event,) = events
    assert event["event"] == "message" and event["topic"] == "quiet"
    assert event["title"] == "Greeting" and event["message"] == "hello"
    assert event["tags"] == ["tada"] and event["priority"] == 3
    assert isinstance(event["id"], str) and isinstance(event["time"], int)
    assert event["expires"] > event["time"]
    again = server.cli("subscribe", "quiet", "--poll", "--json", "--since", event["id"])
    assert again.stdout == ""  # nothing after the newest


def reaches_a_subscriber(server: ServerProcess, topic: str) -> bool:
    """Publish a probe and tell whether its run offered it to at least one live subscriber."""
    answer = httpx.post(
        server.url + "/v1/notifications",
        json={"channel": "inbox", "to": topic, "message": "probe"},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["tasks"][0]["id"]

    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = httpx.get(f"{server.url}/v1/tasks/{run_id}", timeout=10).json()
        return run if run["status"] == "succeeded" else None

    run = wait_for(finished, what=f"{run_id} to succeed")
    subscribers: int = run["attempts_detail"][-1]["response"]["subscribers"]
    return subscribers >= 1


def test_the_live_stream_prints_each_message_as_it_is_published(server: ServerProcess) -> None:
    proc = subscriber(server, "live", "--json")
    try:
        # Published once the stream is open (a probe reached it): these come live, not replayed.
        wait_for(lambda: reaches_a_subscriber(server, "live"), what="the subscriber to connect")
        publish(server, "live", "one")
        publish(server, "live", "two", title="Second")
        events: list[dict[str, Any]] = []
        while not events or events[-1]["message"] != "two":
            events.append(json.loads(read_lines(proc.stdout, 1, proc)[0]))
        shown = [e for e in events if e["message"] != "probe"]
        assert [e["message"] for e in shown] == ["one", "two"]
        assert shown[1]["title"] == "Second" and shown[0]["id"] != shown[1]["id"]
        assert all(e["event"] == "message" and e["topic"] == "live" for e in events)
        assert proc.poll() is None  # it goes on listening
    finally:
        stop(proc)


def test_across_a_sigkill_and_restart_nothing_is_lost_or_twice(tmp_path: Path) -> None:
    first = inbox_server(tmp_path / "home").start()
    second: ServerProcess | None = None
    proc = subscriber(first, "live", "--json")
    try:
        wait_for(lambda: reaches_a_subscriber(first, "live"), what="the subscriber to connect")
        publish(first, "live", "before")
        events: list[dict[str, Any]] = []

        def read_until(text: str) -> None:
            while not events or events[-1]["message"] != text:
                events.append(json.loads(read_lines(proc.stdout, 1, proc, timeout=60)[0]))

        read_until("before")  # printed: the kill comes after it, not before its run offered it
        first.kill()
        # The same port and data: the subscriber reconnects, since the last message it printed.
        second = ServerProcess(first.home, env=first.env, port=first.port).start()
        publish(second, "live", "while away")
        wait_for(lambda: reaches_a_subscriber(second, "live"), what="the subscriber to return")
        publish(second, "live", "after")
        read_until("after")
        shown = [e["message"] for e in events if e["message"] != "probe"]
        assert shown == ["before", "while away", "after"]
        assert len({e["id"] for e in events}) == len(events)  # no message twice
        proc.kill()
        assert "reconnecting in" in proc.communicate(timeout=10)[1]
    finally:
        stop(proc)
        if second is not None:
            second.__exit__()
        first.kill()


@pytest.mark.parametrize("text", NASTY)
def test_markup_in_a_message_prints_literally(server: ServerProcess, text: str) -> None:
    httpx.post(
        server.url + "/v1/notifications",
        json={"channel": "inbox", "to": "nasty", "subject": text, "message": text},
        timeout=10,
    ).raise_for_status()
    result = server.cli("subscribe", "nasty", "--poll", timeout=30)
    last = result.stdout.splitlines()[-1]
    assert last.endswith(f"nasty {text}: {text}"), result.stdout


def test_line_breaks_and_control_characters_cannot_forge_lines(server: ServerProcess) -> None:
    forged = "12:00:00 nasty Forged: x"
    message = f"real\r\n{forged}\n{forged}\r{forged}\u2028{forged}\x1b[2J\x07 end"
    httpx.post(
        server.url + "/v1/notifications",
        json={
            "channel": "inbox",
            "to": "nasty",
            "subject": f"title\r\n{forged}",
            "message": message,
        },
        timeout=10,
    ).raise_for_status()
    out = server.cli("subscribe", "nasty", "--poll", "--since", "latest", timeout=30).stdout
    lines = out.splitlines()
    assert len([line for line in lines if STAMP.match(line)]) == 1, out
    assert lines[0].endswith(f"nasty title {forged}: real")  # a title stays on its line
    assert all(line.startswith(" " * 9) for line in lines[1:]), out
    assert len(lines) == 5 and lines[-1].strip() == rf"{forged}\x1b[2J\x07 end"
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out


def test_a_send_token_is_refused_in_one_line(tmp_path: Path) -> None:
    with inbox_server(tmp_path / "home") as secured:
        send = secured.cli("tokens", "create", "sender", "--scope", "send").stdout.strip()
        read = secured.cli("tokens", "create", "reader", "--scope", "read").stdout.strip()

        def run(token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
            env = {**secured.env, **({"NOTIFYD_TOKEN": token} if token else {})}
            return subprocess.run(
                [NOTIFYD, "subscribe", "phone", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )

        for args in (["--poll"], []):  # streaming too: a refusal is not retried
            refused = run(send, *args)
            assert refused.returncode == 1, args
            assert refused.stdout == "" and "Traceback" not in refused.stderr
            assert refused.stderr.count("\n") == 1, refused.stderr
            assert "403" in refused.stderr and "scope read" in refused.stderr
        anonymous = run(None, "--poll")
        assert anonymous.returncode == 1 and "401" in anonymous.stderr
        assert anonymous.stderr.count("\n") == 1, anonymous.stderr
        publish(secured, "phone", "for readers", authorization=f"Bearer {send}")
        allowed = run(read, "--poll")
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.stdout.rstrip().endswith("phone for readers")


def test_without_poll_it_keeps_trying_an_unreachable_server(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [NOTIFYD, "subscribe", "phone"],
        env={"PATH": "/usr/bin:/bin", "NOTIFYD_HOME": str(tmp_path), "NOTIFYD_SERVER_URL": down},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Two attempts, a second apart: it retries rather than giving up.
        lines = read_lines(proc.stderr, 2, proc)
        assert all("cannot reach" in line and "reconnecting in" in line for line in lines), lines
        assert "in 1 s" in lines[0] and "in 2 s" in lines[1]
        assert proc.poll() is None
    finally:
        stop(proc)


def test_with_poll_an_unreachable_server_is_one_error_line(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [NOTIFYD, "subscribe", "phone", "--poll"],
        env={"PATH": "/usr/bin:/bin", "NOTIFYD_HOME": str(tmp_path), "NOTIFYD_SERVER_URL": down},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "cannot reach" in result.stderr, result.stderr
    assert "reconnecting" not in result.stderr and "Traceback" not in result.stderr
