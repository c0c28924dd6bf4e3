"""A small HTTP/1.1 load generator: N keep-alive connections, a fixed request count, a deadline.

Pure Python on asyncio (uvloop) streams, with each request's bytes built once: ~40 us of CPU
per request here. httpx's AsyncClient took ~2 ms per request on the same machine (about 500
requests/s at most), and on 2 cores the generator shares the CPU with the server: it would
measure itself rather than the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.support import percentile

LATE_SECONDS = 0.001


def post_request(port: int, path: str, body: dict[str, Any]) -> bytes:
    """The bytes of one keep-alive ``POST path`` with a JSON body."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


@dataclass
class LoadResult:
    """What one load run saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    sample_body: bytes = b""
    late: int = 0  # with a rate: requests sent over LATE_SECONDS after they were due
    # With a rate: when each answered request was due, in seconds from the start (in the order
    # of ``latencies``).
    due: list[float] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Responses received."""
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Responses per second over the whole run."""
        return self.count / self.elapsed if self.elapsed else 0.0

    def ms(self, fraction: float) -> float:
        """A latency percentile in milliseconds."""
        return percentile(sorted(self.latencies), fraction) * 1000

    def tail_windows(self, fraction: float = 0.99, window: float = 0.05) -> tuple[int, int, int]:
        """Where the slowest requests fell: of the ``window``-second stretches of the schedule,
        how many hold a request slower than the ``fraction`` percentile, how many there were,
        and the most such requests in one. A few stretches holding them all is a stall; many,
        each with a few, is a queue the server never worked off."""
        if not self.due:
            return 0, 0, 0
        threshold = percentile(sorted(self.latencies), fraction)
        slow = Counter(
            int(due / window)
            for due, latency in zip(self.due, self.latencies, strict=True)
            if latency > threshold
        )
        windows = int(max(self.due) / window) + 1
        return len(slow), windows, max(slow.values(), default=0)

    def describe_statuses(self) -> str:
        """``202 x 5000`` and any errors, for the printout."""
        parts = [f"{status} x {n}" for status, n in sorted(self.statuses.items())]
        parts += [f"{error} x {n}" for error, n in self.errors.items()]
        return ", ".join(parts)


def scheduled(start: float, index: int, rate: float) -> float:
    """When request ``index`` is due at a fixed ``rate`` from ``start`` (a fixed schedule, not
    one that slides with the answers)."""
    return start + index / rate


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length is None:
        raise RuntimeError("the response has no Content-Length")
    return status, await reader.readexactly(length)


async def run_load(
    port: int,
    request: bytes | Callable[[int], bytes],
    *,
    connections: int,
    requests: int,
    rate: float | None = None,
    from_schedule: bool = False,
    deadline: float = 60.0,
) -> LoadResult:
    """Send ``requests`` requests over ``connections`` connections to 127.0.0.1:``port``.

    Without ``rate`` every connection sends its next request as soon as the previous one is
    answered (closed loop: the server's capacity). With ``rate`` requests are due at that total
    rate and a connection waits for its next due time (the latency at a steady load).
    ``request`` is the bytes of every request, or a function of its index called just before it
    is sent (to put its send time in it). With ``from_schedule`` too, each latency counts from
    the request's due time, not from when a free connection sent it (open loop, as wrk2 does:
    a server that stalls is charged for the requests that queued behind the stall, instead of
    the stall hiding them, "coordinated omission"). Stops at ``deadline`` seconds whatever is
    left.
    """
    result = LoadResult()
    issued = 0
    start = time.perf_counter()

    async def connection() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while issued < requests:
                index = issued
                issued += 1
                due = 0.0
                if rate is not None:
                    due = scheduled(start, index, rate)
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                sent = time.perf_counter()
                if rate is not None:
                    result.late += sent - due > LATE_SECONDS
                    if from_schedule:
                        sent = due
                writer.write(request if isinstance(request, bytes) else request(index))
                status, body = await _read_response(reader)
                result.latencies.append(time.perf_counter() - sent)
                if rate is not None:
                    result.due.append(due - start)
                result.statuses[status] += 1
                if not result.sample_body:
                    result.sample_body = body
        except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
            result.errors[type(exc).__name__] += 1
        finally:
            writer.close()

    try:
        async with asyncio.timeout(deadline):
            await asyncio.gather(*(connection() for _ in range(connections)))
    except TimeoutError:
        result.errors["deadline"] += requests - result.count
    result.elapsed = time.perf_counter() - start
    return result
