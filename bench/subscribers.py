"""The subscribers of the fan-out benchmark: ``python -m bench.subscribers --port N --topic T``.

Many SSE subscribers in one process: one asyncio ``Protocol`` each (a callback per chunk read;
no task, no stream reader, no HTTP library), so that a thousand of them cost the client little
on a machine it shares with the server. Each finds, in what it reads, the benchmark's messages
(``fo <round> <seq> <sent_ns>``, the publisher's ``CLOCK_MONOTONIC`` at sending, one clock for
every process of the machine) and records the publish-to-receive time and which it saw.

Driven by the benchmark over stdin and stdout, one JSON object a line each way (every answer
carries the process's CPU time so far): ``{"cmd": "connect", "n": 1000}``: open subscribers
until ``n`` are open (each has had its ``open`` event); ``{"cmd": "expect", "round": 1,
"count": 1000}``: messages 0..count-1 of that round are due to every open subscriber;
``{"cmd": "collect", "within": 10}``: wait until every one has arrived, for at most that many
seconds, then answer the round's figures; ``{"cmd": "keep", "n": 100}``: close all but ``n``;
``{"cmd": "cpu"}``; ``{"cmd": "exit"}``. It also ends when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any, cast

import uvloop

CONNECT_AT_ONCE = 100
OPEN_TIMEOUT = 30.0  # for every connection a command asks for


class Round:
    """What every subscriber receives of one round of messages."""

    def __init__(self, number: int, count: int, subscribers: int) -> None:
        self.count = count
        self.due = count * subscribers
        self.complete = asyncio.Event()
        self.pattern = re.compile(rb'"message":"fo %d (\d+) (\d+)"' % number)
        self.latencies_ns = array("q")
        # Per message: when it was sent, first read and last read (by any subscriber).
        self.sent_ns = array("q", bytes(8 * count))
        self.first_ns = array("q", bytes(8 * count))
        self.last_ns = array("q", bytes(8 * count))
        self.duplicates = 0
        self.reads = 0  # reads that brought at least one message: about the server's writes
        self.ended = 0  # streams that ended (dropped as slow, or closed) during the round


class Subscriber(asyncio.Protocol):
    """One ``GET /<topic>/sse``, read as it comes."""

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.opened: asyncio.Future[bool] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.round: Round | None = None
        self.seen = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.tail:
            data = self.tail + data
        cut = data.rfind(b"\n") + 1
        self.tail = data[cut:]
        if not self.opened.done():
            if data.startswith(b"HTTP/1.1 ") and data[9:12] != b"200":
                self.opened.set_result(False)
                self.close()
                return
            if b"event: open" in data:
                self.opened.set_result(True)
        current = self.round
        if current is None:
            return
        seen = self.seen
        found = False
        for match in current.pattern.finditer(data, 0, cut):
            found = True
            seq = int(match[1])
            if seen[seq]:
                current.duplicates += 1
            else:
                seen[seq] = 1
                sent = int(match[2])
                current.latencies_ns.append(now - sent)
                if not current.first_ns[seq]:
                    current.sent_ns[seq], current.first_ns[seq] = sent, now
                current.last_ns[seq] = now
                if len(current.latencies_ns) == current.due:
                    current.complete.set()
        if found:
            current.reads += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_result(False)
        if self.round is not None:
            self.round.ended += 1

    def close(self) -> None:
        """Leave (the server sees the connection end)."""
        if self.transport is not None:
            self.transport.close()


def _itself(subscriber: Subscriber) -> Callable[[], Subscriber]:
    return lambda: subscriber


class Subscribers:
    """Every subscriber of this process and the round they are in."""

    def __init__(self, port: int, topic: str) -> None:
        self.port = port
        self.request = (
            f"GET /{topic}/sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        self.open: list[Subscriber] = []
        self.round: Round | None = None

    async def connect(self, n: int) -> dict[str, Any]:
        """Open subscribers until ``n`` are open; how many failed and how long it took."""
        loop = asyncio.get_running_loop()
        started, failed = time.perf_counter(), 0
        deadline = time.monotonic() + OPEN_TIMEOUT
        self.open = [s for s in self.open if not s.closed]
        while len(self.open) < n and failed < n and time.monotonic() < deadline:
            batch = [
                Subscriber(self.request, loop)
                for _ in range(min(CONNECT_AT_ONCE, n - len(self.open)))
            ]
            for subscriber in batch:
                try:
                    await loop.create_connection(_itself(subscriber), "127.0.0.1", self.port)
                except OSError:
                    subscriber.opened.set_result(False)
            left = max(deadline - time.monotonic(), 0.1)
            await asyncio.wait([s.opened for s in batch], timeout=left)
            for subscriber in batch:
                if subscriber.opened.done() and subscriber.opened.result():
                    self.open.append(subscriber)
                else:
                    failed += 1
                    subscriber.close()
        return {"open": len(self.open), "failed": failed, "seconds": time.perf_counter() - started}

    def expect(self, number: int, count: int) -> None:
        """Messages 0..count-1 of round ``number`` are due to every open subscriber."""
        self.round = Round(number, count, len(self.open))
        for subscriber in self.open:
            subscriber.round, subscriber.seen = self.round, bytearray(count)

    async def collect(self, within: float) -> dict[str, Any]:
        """Wait for the round's messages (at most ``within`` s); its figures."""
        current = self.round
        assert current is not None
        members = [s for s in self.open if s.round is current]
        due = current.due
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(current.complete.wait(), within)
        latencies = sorted(current.latencies_ns)
        for subscriber in members:
            subscriber.round = None
        self.open = [s for s in self.open if not s.closed]
        self.round = None

        arrived = [i for i in range(current.count) if current.first_ns[i]]
        firsts = sorted(current.first_ns[i] - current.sent_ns[i] for i in arrived)
        spreads = sorted(current.last_ns[i] - current.first_ns[i] for i in arrived)

        def ms(fraction: float, values: list[int] = latencies) -> float:
            if not values:
                return float("nan")
            index = min(len(values) - 1, max(0, round(fraction * len(values)) - 1))
            return values[index] / 1e6

        return {
            "subscribers": len(members),
            "due": due,
            "received": len(latencies),
            "missed": due - len(latencies),
            "duplicates": current.duplicates,
            "reads": current.reads,
            "ended": current.ended,
            "p50_ms": ms(0.5),
            "p90_ms": ms(0.9),
            "p99_ms": ms(0.99),
            "max_ms": ms(1.0),
            # The first subscriber's latency is the way in (accept, store, dispatch); the
            # spread from the first to the last subscriber is the fan-out itself.
            "first_p50_ms": ms(0.5, firsts),
            "first_p99_ms": ms(0.99, firsts),
            "spread_p50_ms": ms(0.5, spreads),
            "spread_p99_ms": ms(0.99, spreads),
            "cpu_seconds": time.process_time(),
        }

    def keep(self, n: int) -> dict[str, Any]:
        """Close every subscriber beyond the first ``n``."""
        for subscriber in self.open[n:]:
            subscriber.close()
        self.open = self.open[:n]
        return {"open": len(self.open)}


async def serve_commands(subscribers: Subscribers) -> None:
    """Answer the benchmark's commands until ``exit`` or the end of stdin."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        name = command["cmd"]
        answer: dict[str, Any] = {}
        if name == "connect":
            answer = await subscribers.connect(command["n"])
        elif name == "expect":
            subscribers.expect(command["round"], command["count"])
        elif name == "collect":
            answer = await subscribers.collect(command["within"])
        elif name == "keep":
            answer = subscribers.keep(command["n"])
        elif name == "cpu":
            pass  # every answer says it
        elif name == "exit":
            break
        answer["cpu_seconds"] = time.process_time()
        print(json.dumps(answer), flush=True)
    subscribers.keep(0)


def main() -> None:
    """Parse the flags and take commands."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    args = parser.parse_args()
    uvloop.run(serve_commands(Subscribers(args.port, args.topic)))


if __name__ == "__main__":
    main()
