"""A real ``notifyd serve`` with inbox topics, and subscribers that read its streams."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support import ServerProcess, wait_for

INBOX_CONFIG = """
[destinations.phone]
channel = "inbox"
to = ["phone"]

[destinations.desk]
channel = "inbox"
to = ["desk"]

[destinations.ops]
channel = "log"
to = ["ops"]
inbox = true
"""


@contextmanager
def inbox_server(home: Path, **env: str) -> Iterator[ServerProcess]:
    """A server whose inbox topics are phone, desk and ops (ops also goes to the log)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "notifyd.toml"
    config.write_text(INBOX_CONFIG)
    with ServerProcess(home, env={"NOTIFYD_CONFIG": str(config), **env}) as server:
        yield server


class Lines:
    """One streaming GET over a plain socket, read line by line on its own thread.

    A socket rather than an HTTP client library: closing it from the test's thread must hang up
    at once (the server is to notice the subscriber leave), which a library's pool may delay.
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._socket = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._socket.settimeout(None)
        self._file = self._socket.makefile("rb")
        status = self._file.readline().decode()
        self.status: int = int(status.split()[1])
        self.headers: dict[str, str] = {}
        while (header := self._file.readline().decode().strip()) != "":
            name, _, value = header.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._lines: queue.Queue[str | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        if self.headers.get("transfer-encoding") != "chunked":
            yield self._file.read(int(self.headers.get("content-length", "0")))
            return
        while True:
            size = int(self._file.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            yield self._file.read(size)
            self._file.readline()

    def _read(self) -> None:
        pending = b""
        try:
            for chunk in self._body():
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    self._lines.put(line.decode())
        except (OSError, ValueError) as exc:  # closed by us, or cut off
            self._lines.put(exc)
        finally:
            self._lines.put(EOFError("stream ended"))

    def line(self, timeout: float = 10) -> str:
        """The next line (an empty one included); AssertionError after ``timeout``."""
        try:
            found = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None
        if isinstance(found, BaseException):
            raise found
        return found

    def event(self, timeout: float = 10) -> dict[str, Any]:
        """The next non-empty line, as JSON (ntfy's json dialect)."""
        while True:
            text = self.line(timeout)
            if text.strip():
                loaded: dict[str, Any] = json.loads(text)
                return loaded

    def ended(self, timeout: float = 10) -> bool:
        """Whether the stream ends (the server closed it) within ``timeout``."""
        try:
            while True:
                self.line(timeout)
        except (EOFError, OSError, ValueError):
            return True
        except AssertionError:
            return False

    def close(self) -> None:
        """Hang up: the server sees the connection close."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(10)
        self._file.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def publish(
    server: ServerProcess, topic: str, text: str, *, token: str | None = None, **headers: str
) -> dict[str, Any]:
    """ntfy's publish: POST /<topic> (with ``token``, when the server has tokens); its answer."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    answer = httpx.post(f"{server.url}/{topic}", content=text.encode(), headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def kept(server: ServerProcess, topic: str, text: str, *, token: str | None = None) -> str:
    """Wait until ``text`` is published in ``topic`` (its run has offered it); its id."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def find() -> str | None:
        polled = httpx.get(f"{server.url}/{topic}/json?poll=1", headers=headers, timeout=10)
        for line in polled.text.splitlines():
            message = json.loads(line)
            if message.get("message") == text:
                return str(message["id"])
        return None

    return wait_for(find, timeout=15, interval=0.02, what=f"{text!r} published in {topic}")
