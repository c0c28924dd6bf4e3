"""The server a benchmark drives: ``python -m bench.server --mode notifyd|bare --port N --home DIR``.

``notifyd`` is the real app from ``create_app`` plus two extra channels (``slow``: each send
sleeps; ``null``: each send returns at once), ``POST /bench/inline`` (the same slow delivery,
awaited before answering) and ``GET /bench/stats`` (peak asyncio tasks and threads, run counts).
``bare`` is a FastAPI app whose one route returns JSON: the ceiling. Both run under the same
uvicorn settings: uvloop, httptools, no access log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from notifyd.api.app import create_app
from notifyd.channels.base import Channel, OutgoingMessage
from notifyd.channels.log import non_blank
from notifyd.config import Settings
from notifyd.db import read_session, upgrade
from notifyd.models import NotificationAccepted, NotificationCreate, RunStatus, TaskSummary
from notifyd.runtime import Runtime, build_runtime
from notifyd.timeutil import new_id, utcnow
from notifyd.tracking import admin

SAMPLE_SECONDS = 0.05


class SlowChannel(Channel):
    """A channel whose every delivery takes ``seconds`` (an awaited sleep, like a slow peer)."""

    name: ClassVar[str] = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def validate_recipient(self, recipient: str) -> str:
        """Any non-blank name, as for the log channel."""
        return non_blank(recipient)

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Wait, then report success."""
        await asyncio.sleep(self.seconds)
        return None

    async def aclose(self) -> None:
        """Nothing to release."""


class NullChannel(SlowChannel):
    """A channel that delivers at once: the dispatcher's own cost, no channel's."""

    name: ClassVar[str] = "null"

    def __init__(self) -> None:
        super().__init__(0.0)

    async def send(self, message: OutgoingMessage, recipient: str) -> dict[str, Any] | None:
        """Deliver nowhere."""
        return None


class Peaks:
    """Samples the event loop's task count and the thread count; keeps the highest seen."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tasks = 0
        self.threads = 0
        self.in_flight = 0

    async def sample(self) -> None:
        """Loop forever (cancelled at shutdown)."""
        while True:
            self.tasks = max(self.tasks, len(asyncio.all_tasks()))
            self.threads = max(self.threads, threading.active_count())
            self.in_flight = max(self.in_flight, self.runtime.tracker.dispatcher.in_flight)
            await asyncio.sleep(SAMPLE_SECONDS)


def notifyd_app(settings: Settings, slow_seconds: float, *, dispatch: bool = True) -> FastAPI:
    """notifyd's app with the benchmark's channels and endpoints; ``dispatch=False`` only accepts."""
    runtime = build_runtime(settings, run_dispatcher=dispatch)
    upgrade(runtime.engine)
    slow = SlowChannel(slow_seconds)
    # runtime.channels is read at submit and at delivery, so extra channels can be added here.
    runtime.channels[slow.name] = slow
    runtime.channels[NullChannel.name] = NullChannel()
    app = create_app(settings, runtime=runtime)
    peaks = Peaks(runtime)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        sampler = asyncio.create_task(peaks.sample(), name="bench-sampler")
        try:
            async with inner(app_) as state:
                yield state
        finally:
            sampler.cancel()

    app.router.lifespan_context = lifespan

    @app.post("/bench/inline")
    async def inline(body: NotificationCreate) -> dict[str, Any]:
        """Deliver through the slow channel before answering: what a route without a queue does."""
        message = OutgoingMessage(
            delivery_id=new_id("run"),
            notification_id=new_id("ntf"),
            subject=body.subject,
            message=body.message,
            data=body.data,
            created_at=utcnow(),
        )
        for recipient in body.recipients():
            await slow.send(message, recipient)
        return {"id": message.notification_id, "status": "delivered"}

    @app.get("/bench/stats")
    async def stats(runs: bool = False) -> dict[str, Any]:
        """Peaks since start, what runs now and, with ``runs``, run counts by status."""
        return {
            "peak_asyncio_tasks": peaks.tasks,
            "peak_threads": peaks.threads,
            "peak_in_flight": peaks.in_flight,
            "asyncio_tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(),
            "in_flight": runtime.tracker.dispatcher.in_flight,
            "runs": await asyncio.to_thread(_run_counts, runtime) if runs else {},
        }

    # Added after create_app, behind ntfy's catch-all /{topic}/{verb}: move them in front.
    ours = [route for route in app.router.routes if getattr(route, "path", "").startswith("/bench")]
    app.router.routes[:] = ours + [route for route in app.router.routes if route not in ours]
    return app


def _run_counts(runtime: Runtime) -> dict[str, int]:
    with read_session(runtime.engine) as session:
        column = admin.RUNS.c.status
        rows = session.execute(select(column, func.count()).group_by(column))
        return {str(status): int(count) for status, count in rows}


def bare_app() -> FastAPI:
    """The ceilings: one async route returning a small JSON object, nothing else (``/bare``);
    one taking notifyd's body model and answering its shape with 202, no store (``/validated``)."""
    app = FastAPI()

    @app.post("/bare")
    async def bare() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/validated", status_code=202)
    async def validated(body: NotificationCreate) -> NotificationAccepted:
        """notifyd's own body model in, its answer's shape out, 202: FastAPI's real ceiling."""
        return NotificationAccepted(
            id=new_id("ntf"),
            status="accepted",
            tasks=[
                TaskSummary(id=new_id("run"), channel=body.channel, to=to, status=RunStatus.queued)
                for to in body.recipients()
            ],
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


class _Discard:
    """A span exporter that keeps nothing: the cost of recording and batching spans, not of a
    collector's network."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered."""
        return True


def record_spans() -> None:
    """A global SDK tracer provider batching every span to ``_Discard`` (needs the SDK, a dev
    dependency), as ``opentelemetry-instrument`` would set one up."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard()))  # type: ignore[arg-type]
    trace.set_tracer_provider(provider)


def main() -> None:
    """Parse the flags and serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["notifyd", "bare"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-dispatch", action="store_true", help="accept only, deliver nothing")
    parser.add_argument("--no-metrics", action="store_true", help="observe nothing per request")
    parser.add_argument("--tracing", action="store_true", help="opentelemetry on, spans recorded")
    parser.add_argument(
        "--opentelemetry", action="store_true", help="opentelemetry on, no tracer provider"
    )
    args = parser.parse_args()
    if args.mode == "bare":
        app = bare_app()
    else:
        if args.tracing:
            record_spans()
        settings = Settings(
            home=args.home,
            concurrency=args.concurrency,
            grace_seconds=0,
            opentelemetry=args.tracing or args.opentelemetry,
        )
        app = notifyd_app(settings, args.slow_seconds, dispatch=not args.no_dispatch)
        if args.no_metrics:
            runtime: Runtime = app.state.runtime
            runtime.metrics.observe_accepted = lambda *a, **k: None  # type: ignore[method-assign]
            runtime.metrics.observe_attempt = lambda *a, **k: None  # type: ignore[method-assign]
    serve_app(app, args.port)


def serve_app(app: Any, port: int) -> None:
    """Serve ``app`` on loopback under the settings every benchmark server shares."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
