"""The procrastinate peer on PostgreSQL (``BENCH_PROCRASTINATE_URL``, a libpq URL):
``python -m bench.peers_apps.procrastinate_app serve --port N`` serves a FastAPI route calling
``defer_async``; ``... worker --concurrency N`` runs the task until SIGTERM; ``... schema``
applies procrastinate's schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from procrastinate import App, PsycopgConnector

from bench.peers_apps.common import accepted, append_line, serve
from notifyd.models import NotificationAccepted, NotificationCreate

URL_ENV = "BENCH_PROCRASTINATE_URL"
POOL_SIZE = 16

queue = App(
    connector=PsycopgConnector(
        conninfo=os.environ.get(URL_ENV, "postgresql://postgres@127.0.0.1:5432/test"),
        min_size=1,
        max_size=POOL_SIZE,
    )
)


async def _deliver(payload: dict[str, Any]) -> None:
    """Append the delivery's line, as notifyd's log channel does."""
    append_line(payload)


# Called, not applied as a decorator: where the extra is absent mypy sees procrastinate as Any.
deliver = queue.task(name="bench.deliver")(_deliver)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The connection pool lives as long as the server."""
    async with queue.open_async():
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/v1/notifications", status_code=202)
async def submit(body: NotificationCreate) -> NotificationAccepted:
    """Validate, defer one job per recipient, answer 202."""
    answer, payloads = accepted(body)
    for payload in payloads:
        await deliver.defer_async(payload=payload)
    return answer


async def work(concurrency: int) -> None:
    """Run the worker until SIGTERM or SIGINT."""
    async with queue.open_async():
        await queue.run_worker_async(concurrency=concurrency, wait=True, delete_jobs="never")


async def apply_schema() -> None:
    """Create procrastinate's tables in the URL's schema."""
    async with queue.open_async():
        await queue.schema_manager.apply_schema_async()


def main() -> None:
    """``serve --port N``, ``worker --concurrency N`` or ``schema``."""
    command = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if command == "serve":
        serve(app, __doc__ or "")
    elif command == "worker":
        parser = argparse.ArgumentParser()
        parser.add_argument("--concurrency", type=int, default=16)
        asyncio.run(work(parser.parse_args().concurrency))
    elif command == "schema":
        asyncio.run(apply_schema())
    else:
        raise SystemExit(f"usage: {sys.argv[0]} serve|worker|schema")


if __name__ == "__main__":
    main()
