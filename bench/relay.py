"""Subscribe across processes on PostgreSQL (issue 17): publish-to-receive through LISTEN/NOTIFY.

Two real ``notifyd serve`` processes share one PostgreSQL database (``BENCH_POSTGRES_URL``,
default the local ``test`` database, in a schema of its own). One subscriber follows the topic
on the first server over SSE; messages are published at a steady rate, alternately through the
first server (the baseline: fan-out in the same process) and through the second (relayed by
LISTEN/NOTIFY). Printed: p50/p99 of each way, the relay's cost as the difference, and anything
missed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from contextlib import ExitStack

import httpx
from sqlalchemy import create_engine, text

from bench.support import NotifydServe, percentile, row, title

POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TOPIC = "relay"
MESSAGES = 400
RATE = 40.0
CONFIG = f"""
[destinations.{TOPIC}]
channel = "inbox"
to = ["{TOPIC}"]
"""


async def _follow(url: str, seen: dict[str, float], opened: asyncio.Event, total: int) -> None:
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
        client.stream("GET", f"{url}/{TOPIC}/json") as stream,
    ):
        async for line in stream.aiter_lines():
            event = json.loads(line)
            if event["event"] == "open":
                opened.set()
            elif event["event"] == "message":
                seen[event["message"]] = time.perf_counter()
                if len(seen) >= total:
                    return


async def _run(first: str, second: str) -> tuple[dict[str, float], dict[str, float], set[str]]:
    seen: dict[str, float] = {}
    sent: dict[str, float] = {}
    opened = asyncio.Event()
    follower = asyncio.create_task(_follow(first, seen, opened, MESSAGES))
    await asyncio.wait_for(opened.wait(), 30)
    async with httpx.AsyncClient(timeout=10) as client:
        start = time.perf_counter()
        for index in range(MESSAGES):
            await asyncio.sleep(max(0.0, start + index / RATE - time.perf_counter()))
            via = second if index % 2 else first
            name = f"{'relayed' if index % 2 else 'local'}-{index}"
            sent[name] = time.perf_counter()
            answer = await client.post(f"{via}/{TOPIC}", content=name)
            answer.raise_for_status()
    try:
        await asyncio.wait_for(follower, 30)
    except TimeoutError:
        follower.cancel()
    missed = set(sent) - set(seen)
    return sent, seen, missed


def main() -> None:
    """Two servers on one PostgreSQL database, one subscriber; print both ways' latencies."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    title(f"subscribe across two servers on PostgreSQL, {RATE:.0f} messages/s")
    try:
        with ExitStack() as stack:
            servers = []
            for _ in range(2):
                server = NotifydServe(CONFIG)
                server.env["NOTIFYD_DATABASE_URL"] = url
                servers.append(stack.enter_context(server))
            sent, seen, missed = asyncio.run(_run(servers[0].url, servers[1].url))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    ways = {}
    for way in ("local", "relayed"):
        ms = sorted((seen[name] - sent[name]) * 1000 for name in seen if name.startswith(way))
        ways[way] = ms
        row(
            f"  published through {'the same' if way == 'local' else 'the other'} server",
            f"p50 {percentile(ms, 0.5):.1f} ms",
            f"p99 {percentile(ms, 0.99):.1f} ms",
            f"{len(ms)} received",
        )
    extra = percentile(ways["relayed"], 0.5) - percentile(ways["local"], 0.5)
    print(f"  LISTEN/NOTIFY adds {extra:.1f} ms at the median; missed {len(missed)} (target 0)")


if __name__ == "__main__":
    main()
