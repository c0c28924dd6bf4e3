"""The load generator's fixed schedule and its open-loop accounting."""

from __future__ import annotations

import asyncio

import uvloop

from bench.load import LoadResult, post_request, run_load, scheduled

STALL = 0.3


def test_the_schedule_is_fixed_by_index_and_rate() -> None:
    assert scheduled(10.0, 0, 100.0) == 10.0
    assert [round(scheduled(0.0, i, 4.0), 6) for i in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


async def _stalling_server(first_delay: float) -> tuple[asyncio.Server, int]:
    """An HTTP/1.1 server answering 202 at once, but its first answer after ``first_delay``."""
    answered = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                answered += 1
                if answered == 1:
                    await asyncio.sleep(first_delay)
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _load(
    *,
    stall: float = STALL,
    requests: int = 10,
    rate: float | None = 100.0,
    from_schedule: bool = True,
    connections: int = 1,
) -> LoadResult:
    """``requests`` to a server whose first answer takes ``stall``; all must be answered."""
    server, port = await _stalling_server(stall)
    async with server:
        request = post_request(port, "/x", {"a": 1})
        result = await run_load(
            port,
            request,
            connections=connections,
            requests=requests,
            rate=rate,
            from_schedule=from_schedule,
        )
    assert result.statuses == {202: requests}, result.describe_statuses()
    return result


def test_open_loop_charges_the_requests_queued_behind_a_stall() -> None:
    # Request 1 was due 10 ms in, behind a first answer that took STALL: counted from its due
    # time its latency holds most of the stall; counted from its send it would hold none.
    latencies = uvloop.run(_load(from_schedule=True)).latencies
    assert latencies[0] >= STALL - 0.01  # the event loop's timers round a little
    assert latencies[1] >= STALL - 0.05
    closed = uvloop.run(_load(from_schedule=False)).latencies
    assert closed[0] >= STALL - 0.01
    assert closed[1] < latencies[1]


def test_the_tail_of_a_stall_falls_in_few_stretches() -> None:
    result = uvloop.run(_load(requests=200, rate=400.0))
    assert len(result.due) == result.count
    held, windows, most = result.tail_windows(fraction=0.9, window=0.05)
    # One connection: every request due during the first answer's stall waits behind it, the
    # earliest longest. The slowest tenth are the first ones due, in the stall's first
    # stretches, not spread over the whole half second.
    assert windows >= 9
    assert 1 <= held <= 2
    assert most >= 10


def test_a_closed_loop_has_no_schedule_to_place_its_tail_in() -> None:
    result = uvloop.run(_load(stall=0.0, requests=20, rate=None, connections=2))
    assert result.tail_windows() == (0, 0, 0)
