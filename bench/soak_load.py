"""The soak's traffic: publishers of mixed notifications that carry each submission through a
server kill with its Idempotency-Key, readers timing the task list and stats, an RSS sampler."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.soak_peers import WebhookReceiver
from bench.support import percentile

# How the notifications split between the channels (weights), and how many recipients each gets.
KINDS = (("log", 35), ("email", 20), ("webhook", 30), ("inbox", 15))
# A submission cut off by a kill is sent again, same key, until it is answered or this passes.
SUBMIT_DEADLINE = 120.0
READ_PATHS = ("/v1/tasks?limit=50", "/v1/tasks/stats")


@dataclass
class Accepted:
    """What the server said it took: each run's channel, and the inbox messages' texts."""

    notifications: dict[str, str] = field(default_factory=dict)  # id -> kind
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)  # run id -> (kind, notification)
    inbox_texts: dict[str, str] = field(default_factory=dict)  # run id -> text
    counts: Counter[str] = field(default_factory=Counter)  # refused, cut, replayed, 503, ...
    latencies: list[float] = field(default_factory=list)  # answered at the first try
    problems: list[str] = field(default_factory=list)


class Publishers:
    """``threads`` threads submitting at ``rate`` a second in all until ``stop`` is set."""

    def __init__(
        self,
        url: Callable[[], str],
        receivers: list[WebhookReceiver],
        *,
        rate: float,
        threads: int = 8,
        seed: int = 0,
    ) -> None:
        self.url = url
        self.receivers = receivers
        self.rate = rate
        self.accepted = Accepted()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._issued = 0
        self._rng = random.Random(seed)
        self._start = time.monotonic()
        self._threads = [
            threading.Thread(target=self._publish, daemon=True) for _ in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        """Stop issuing; wait for the submissions under way to be answered."""
        self.stop.set()
        for thread in self._threads:
            thread.join(SUBMIT_DEADLINE + 10)

    def _next(self) -> tuple[int, str] | None:
        with self._lock:
            index = self._issued
            self._issued += 1
            kind = self._rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        delay = self._start + index / self.rate - time.monotonic()
        if delay > 0 and self.stop.wait(delay):
            return None
        return None if self.stop.is_set() else (index, kind)

    def body(self, index: int, kind: str) -> dict[str, Any]:
        """A notification of ``kind``; its message names it, so a subscriber can recognise it."""
        text = f"soak {index} {kind}"
        fan = 2 if index % 4 == 0 else 1
        if kind == "log":
            return {"to": [f"soak-{n}" for n in range(fan)], "message": text}
        if kind == "email":
            to = [f"user{(index + n) % 20}@example.org" for n in range(fan)]
            return {"channel": "email", "to": to, "subject": f"soak {index}", "message": text}
        if kind == "webhook":
            # A token in the URL: stored encrypted (secret_recipient), as key rotation must keep.
            to = [
                f"{self.receivers[(index + n) % len(self.receivers)].url}/hook/{index % 50}"
                f"?token=tok-{index % 50}"
                for n in range(fan)
            ]
            return {"channel": "webhook", "to": to, "message": text, "data": {"index": index}}
        return {"destination": "phone", "message": text}

    def _publish(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (job := self._next()) is not None:
                self._submit(client, *job)

    def _submit(self, client: httpx.Client, index: int, kind: str) -> None:
        body = self.body(index, kind)
        key = f"soak-{index}-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + SUBMIT_DEADLINE
        counts: set[str] = set()  # why it was sent again, once per submission
        tries = 0
        while time.monotonic() < deadline:
            tries += 1
            sent = time.perf_counter()
            try:
                answer = client.post(
                    self.url() + "/v1/notifications", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.ConnectError:
                counts.add("refused (server down), sent again")
                time.sleep(0.2)
                continue
            except httpx.HTTPError as exc:  # cut off by a kill: stored or not, the key tells
                counts.add(f"cut off ({type(exc).__name__}), sent again")
                time.sleep(0.2)
                continue
            if answer.status_code in (409, 429, 503):
                counts.add(f"answered {answer.status_code}, sent again")
                time.sleep(min(float(answer.headers.get("retry-after", "0.5")), 5.0))
                continue
            if answer.status_code != 202:
                with self._lock:
                    self.accepted.problems.append(f"{answer.status_code}: {answer.text[:200]}")
                break
            self._take(
                answer.json(), kind, body, first=tries == 1, elapsed=time.perf_counter() - sent
            )
            if answer.headers.get("idempotency-replay") == "true":
                counts.add("replayed (stored before the cut)")
            break
        else:
            counts.add("given up (no answer within the deadline)")
        with self._lock:
            self.accepted.counts.update(counts)

    def _take(
        self, found: dict[str, Any], kind: str, body: dict[str, Any], *, first: bool, elapsed: float
    ) -> None:
        with self._lock:
            accepted = self.accepted
            accepted.notifications[found["id"]] = kind
            for task in found["tasks"]:
                accepted.runs[task["id"]] = (kind, found["id"])
                if kind == "inbox":
                    accepted.inbox_texts[task["id"]] = body["message"]
            if first:
                accepted.latencies.append(elapsed)


class Readers:
    """Times ``GET`` of the task list and the stats every ``interval`` seconds."""

    def __init__(self, url: Callable[[], str], *, interval: float = 0.5) -> None:
        self.url = url
        self.interval = interval
        self.latencies: dict[str, list[float]] = {path: [] for path in READ_PATHS}
        self.errors: Counter[str] = Counter()
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.wait(self.interval):
                for path in READ_PATHS:
                    sent = time.perf_counter()
                    try:
                        answer = client.get(self.url() + path)
                    except httpx.HTTPError:
                        self.errors[path] += 1  # the server is down: not a latency
                        continue
                    if answer.status_code == 200:
                        self.latencies[path].append(time.perf_counter() - sent)
                    else:
                        self.errors[f"{path} {answer.status_code}"] += 1

    def summary(self, path: str) -> tuple[int, float, float, float]:
        """Count, p50, p99 and max in milliseconds."""
        values = sorted(self.latencies[path])
        if not values:
            return 0, float("nan"), float("nan"), float("nan")
        ms = [v * 1000 for v in values]
        return len(ms), percentile(ms, 0.5), percentile(ms, 0.99), ms[-1]

    def close(self) -> None:
        """Stop reading."""
        self.stop.set()
        self._thread.join(15)


@dataclass
class Incarnation:
    """One life of the server process: its pid, when it started, its RSS over time."""

    number: int
    pid: int
    started: float
    ended: float | None = None
    end: str = "running"
    rss: list[tuple[float, int]] = field(default_factory=list)  # (soak seconds, KiB)


class RssSampler:
    """Reads VmRSS of the current incarnation every ``interval`` seconds."""

    def __init__(
        self, current: Callable[[], Incarnation | None], clock: Callable[[], float]
    ) -> None:
        self.current = current
        self.clock = clock
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self, interval: float = 2.0) -> None:
        while not self.stop.wait(interval):
            self.sample()

    def sample(self) -> None:
        """One reading now (none while the server is down)."""
        life = self.current()
        if life is None:
            return
        try:
            status = Path(f"/proc/{life.pid}/status").read_text()
        except OSError:
            return  # killed meanwhile
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                life.rss.append((self.clock(), int(line.split()[1])))

    def close(self) -> None:
        """Stop sampling."""
        self.stop.set()
        self._thread.join(5)
