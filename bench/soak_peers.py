"""The soak's peers on 127.0.0.1: webhook receivers whose answers change, an SMTP server that
goes away and comes back, and an inbox subscriber that reconnects. Each records what arrived,
counted by delivery id, so the soak can tell lost from delivered from delivered twice."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from aiosmtpd.controller import Controller

# A receiver's behaviour in turns of PHASE_SECONDS: all well, some 500s, slow answers (a few
# slower than the webhook timeout), some 503s with a Retry-After.
PHASES = ("ok", "flaky", "slow", "ok", "throttled")
PHASE_SECONDS = 20.0


class WebhookReceiver:
    """An HTTP server counting each ``webhook-id`` it gets, whatever it then answers."""

    def __init__(self, *, timeout: float, offset: int = 0, seed: int = 0) -> None:
        self.timeout = timeout  # the server's webhook timeout: "too slow" means past it
        self.offset = offset
        self.healthy = False  # set for the drain: every answer a quick 200
        self.deliveries: Counter[str] = Counter()
        self.notifications: set[str] = set()
        self.answers: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, delay, headers = receiver._record(self.headers.get("webhook-id"), body)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def phase(self) -> str:
        """What the receiver does now."""
        if self.healthy:
            return "ok"
        turn = int((time.monotonic() - self._started) / PHASE_SECONDS) + self.offset
        return PHASES[turn % len(PHASES)]

    def _record(self, delivery_id: str | None, body: bytes) -> tuple[int, float, dict[str, str]]:
        phase = self.phase()
        with self._lock:
            roll = self._rng.random()
            if phase == "flaky" and roll < 0.3:
                answer: tuple[int, float, dict[str, str]] = (500, 0.0, {})
            elif phase == "throttled" and roll < 0.3:
                answer = (503, 0.0, {"Retry-After": "2"})
            elif phase == "slow":
                late = roll < 0.05
                answer = (200, self.timeout + 1 if late else self._rng.uniform(0.2, 2.0), {})
            else:
                answer = (200, 0.0, {})
            self.answers[f"{answer[0]}{' late' if answer[1] > self.timeout else ''}"] += 1
            # Taken when answered 2xx (even after the sender gave up waiting: it then sends
            # again, and the second copy is a duplicate, as at-least-once allows).
            if delivery_id is not None and answer[0] == 200:
                self.deliveries[delivery_id] += 1
            try:
                self.notifications.add(str(json.loads(body)["id"]))
            except (ValueError, KeyError, TypeError):
                self.answers["unreadable body"] += 1
        return answer

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd's handler: counts each message by its Message-ID (``<run id@domain>``)."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        message_id = str(parsed.get("Message-ID", "")).strip("<>").split("@", 1)[0]
        with self._lock:
            self.deliveries[message_id] += 1
        return "250 OK queued"


class SmtpServer:
    """aiosmtpd on one port in its own thread; ``stop()`` makes an outage, ``start()`` ends it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self.controller: Controller | None = None
        self.outages = 0

    @property
    def up(self) -> bool:
        """Whether it listens now."""
        return self.controller is not None

    def start(self) -> None:
        """Listen (again, on the same port)."""
        if self.controller is None:
            self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
            self.controller.start()

    def stop(self) -> None:
        """Stop listening; sessions under way are cut."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
            self.outages += 1


class InboxSubscriber:
    """Follows ``/<topic>/json`` as ntfy's app does: on a lost connection it reconnects with
    ``since=<last id>``, so it should see every message once, across kills of the server."""

    def __init__(self, url: str, topic: str) -> None:
        self.url = f"{url}/{topic}/json"
        self.ids: Counter[str] = Counter()
        self.texts: Counter[str] = Counter()
        self.connections = 0
        self.last_id: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def seen(self, text: str) -> bool:
        """Whether a message with this text arrived."""
        with self._lock:
            return text in self.texts

    def _follow(self) -> None:
        # The server sends a keepalive every few seconds (the soak's config): a read that
        # waits longer than that means the connection is dead.
        timeout = httpx.Timeout(5.0, read=20.0)
        with httpx.Client(timeout=timeout) as client:
            while not self._stop.is_set():
                params = {"since": self.last_id} if self.last_id else {}
                try:
                    with client.stream("GET", self.url, params=params) as response:
                        if response.status_code != 200:
                            raise httpx.HTTPError(f"status {response.status_code}")
                        self.connections += 1
                        for line in response.iter_lines():
                            if self._stop.is_set():
                                return
                            self._take(line)
                except (httpx.HTTPError, ValueError):
                    pass  # the server is down or cut us off: try again
                self._stop.wait(0.2)

    def _take(self, line: str) -> None:
        if not line.strip():
            return
        event = json.loads(line)
        if event.get("event") != "message":
            return
        with self._lock:
            self.ids[event["id"]] += 1
            self.texts[event.get("message", "")] += 1
            self.last_id = event["id"]

    def close(self) -> None:
        """Stop following (within one keepalive)."""
        self._stop.set()
        self._thread.join(timeout=25)
