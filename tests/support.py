"""Helpers for tests that run the real ``notifyd`` command: free ports, a server subprocess, polling."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

BIN = Path(sys.executable).parent
NOTIFYD = str(BIN / "notifyd")
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception as exc:  # the server may still be starting
            last = exc
        else:
            if found:
                return found
            last = found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class ServerProcess:
    """``notifyd serve`` as a subprocess on a free port with its own data dir."""

    def __init__(
        self,
        home: Path,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        args: tuple[str, ...] = (),
        log_level: str = "info",
    ) -> None:
        self.home = home
        self.args = args
        self.log_level = log_level
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")},
            "NOTIFYD_HOME": str(home),
            "NOTIFYD_SERVER_URL": self.url,
            "NOTIFYD_POLL_SECONDS": "0.1",
            **(env or {}),
        }
        if "NOTIFYD_TEST_POSTGRES_URL" in os.environ:
            self.env["NOTIFYD_TEST_POSTGRES_URL"] = os.environ["NOTIFYD_TEST_POSTGRES_URL"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = home / f"server-{self.port}.log"

    def start(self, *, wait: bool = True) -> ServerProcess:
        """Start the server; by default wait until /healthz answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [NOTIFYD, "serve", "--port", str(self.port), "--log-level", self.log_level, *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait:
            wait_for(self._healthy, timeout=30, what=f"server on {self.url}")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
        return httpx.get(self.url + "/healthz", timeout=2).status_code == 200

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``notifyd ARGS`` with this server's environment."""
        result = subprocess.run(
            [NOTIFYD, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"notifyd {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def runs(self, *args: str) -> list[dict[str, Any]]:
        """``notifyd tasks list --json --limit 500``, parsed."""
        result = self.cli("tasks", "list", "--json", "--limit", "500", *args)
        runs: list[dict[str, Any]] = json.loads(result.stdout)
        return runs

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class Receiver:
    """A local webhook receiver on 127.0.0.1 that records every delivery (headers and JSON body)."""

    def __init__(self, *, delay: float = 0.0, status: int = 200) -> None:
        self.delay = delay
        self.status = status
        self.deliveries: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:
                    return  # the sender died mid-request (a SIGKILL): nothing was delivered
                body = json.loads(raw or b"{}")
                with receiver._lock:
                    receiver.deliveries.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def count(self) -> int:
        with self._lock:
            return len(self.deliveries)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
