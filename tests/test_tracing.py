"""One trace per notification: the accepting request's span, a span per attempt parented to it
(in this process or a ``notifyd worker``), and ``traceparent`` sent on to webhook peers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import select

from notifyd.api.app import create_app
from notifyd.db import engine_for, upgrade
from notifyd.runtime import build_runtime
from notifyd.tracing import attempt_spans
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.models import runs
from tests.channels.helpers import submit, wait_run
from tests.channels.peers import Receiver, Reply
from tests.conftest import make_settings
from tests.otel import span_exporter
from tests.support import wait_for

LOOPBACK = ["127.0.0.0/8"]
ROOT = Path(__file__).resolve().parent.parent


def _accepting_span(spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    """The span current while ``POST /v1/notifications`` ran: FastAPI's endpoint span, a child
    of the request's server span."""
    [request] = [s for s in spans if s.kind is SpanKind.SERVER and s.name.startswith("POST")]
    [endpoint] = [
        s
        for s in spans
        if s.name == "fastapi.endpoint"
        and s.parent is not None
        and s.parent.span_id == _ids(request)[1]
    ]
    return endpoint


def _ids(span: ReadableSpan) -> tuple[int, int]:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id, context.span_id


def _parts(traceparent: str | None) -> tuple[int, int]:
    """A ``traceparent``'s trace id and parent span id (W3C: version-trace-parent-flags)."""
    assert traceparent is not None
    version, trace_id, parent_id, _flags = traceparent.split("-")
    assert version == "00"
    return int(trace_id, 16), int(parent_id, 16)


def _stored_trace_context(home: Path, run_id: str) -> str | None:
    engine = engine_for(make_settings(home))
    try:
        with engine.connect() as conn:
            value: str | None = conn.execute(
                select(runs.c.trace_context).where(runs.c.id == run_id)
            ).scalar_one()
            return value
    finally:
        engine.dispose()


def test_the_request_the_attempts_and_the_peer_share_one_trace(tmp_path: Path) -> None:
    exporter = span_exporter()
    home = tmp_path / "home"
    settings = make_settings(
        home,
        opentelemetry=True,
        webhook={"allow_cidrs": LOOPBACK},
        retry={"max_attempts": 2, "schedule": [0.01]},
    )
    home.mkdir(parents=True)
    engine = engine_for(settings)
    upgrade(engine)
    engine.dispose()
    with Receiver() as receiver, TestClient(create_app(settings)) as client:
        receiver.replies["/hook"] = [Reply(status=503), Reply()]  # one retry, then delivered
        accepted = submit(client, channel="webhook", to=f"{receiver.url}/hook", message="m")
        run_id = accepted["tasks"][0]["id"]
        assert wait_run(client, run_id)["status"] == "succeeded"
        sent = [request.headers.get("traceparent") for request in receiver.on("/hook")]

    spans = exporter.get_finished_spans()
    request = _accepting_span(spans)
    trace_id, request_span_id = _ids(request)
    attempts = sorted(
        (s for s in spans if s.name == "deliver webhook"),
        key=lambda s: int(str((s.attributes or {}).get("notifyd.run.attempt"))),
    )
    assert len(attempts) == 2
    for number, attempt in enumerate(attempts, start=1):
        assert attempt.kind is SpanKind.CONSUMER
        assert _ids(attempt)[0] == trace_id
        assert attempt.parent is not None and attempt.parent.span_id == request_span_id
        assert [link.context.span_id for link in attempt.links] == [request_span_id]
        assert attempt.attributes is not None
        assert attempt.attributes["notifyd.run.id"] == run_id
        assert attempt.attributes["notifyd.run.attempt"] == number
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[1].status.status_code is StatusCode.UNSET
    # Each delivery carries its own attempt's span as the peer's parent.
    assert [_parts(header) for header in sent] == [(trace_id, _ids(a)[1]) for a in attempts]
    stored = _stored_trace_context(home, run_id)
    assert stored is not None and _parts(stored) == (trace_id, request_span_id)


def test_without_opentelemetry_nothing_is_recorded_or_sent(tmp_path: Path) -> None:
    exporter = span_exporter()  # a provider is configured, but notifyd is not asked to trace
    home = tmp_path / "home"
    settings = make_settings(home, webhook={"allow_cidrs": LOOPBACK})
    home.mkdir(parents=True)
    engine = engine_for(settings)
    upgrade(engine)
    engine.dispose()
    with Receiver() as receiver, TestClient(create_app(settings)) as client:
        accepted = submit(client, channel="webhook", to=f"{receiver.url}/hook", message="m")
        run_id = accepted["tasks"][0]["id"]
        assert wait_run(client, run_id)["status"] == "succeeded"
        [delivered] = receiver.on("/hook")
    assert "traceparent" not in delivered.headers
    assert _stored_trace_context(home, run_id) is None
    assert exporter.get_finished_spans() == ()


def _spans_in(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_worker_process_continues_the_trace_of_the_request(tmp_path: Path) -> None:
    exporter = span_exporter()
    home = tmp_path / "home"
    settings = make_settings(home, opentelemetry=True)
    home.mkdir(parents=True)
    engine = engine_for(settings)
    upgrade(engine)
    # This process only accepts: the run waits in the store for the worker.
    runtime = build_runtime(settings, engine=engine, run_dispatcher=False)
    with TestClient(create_app(settings, runtime=runtime)) as client:
        accepted = submit(client, channel="log", to="ops", message="m")
    run_id = accepted["tasks"][0]["id"]
    trace_id, request_span_id = _ids(_accepting_span(exporter.get_finished_spans()))

    spans_file = tmp_path / "worker-spans.jsonl"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")},
        "NOTIFYD_HOME": str(home),
        "NOTIFYD_OPENTELEMETRY": "true",
        "NOTIFYD_POLL_SECONDS": "0.1",
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.otel", str(spans_file), "worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        found = wait_for(
            lambda: [s for s in _spans_in(spans_file) if s["name"] == "deliver log"],
            what="the worker's attempt span",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()
    [attempt] = found
    assert attempt["context"]["trace_id"] == f"0x{trace_id:032x}"
    assert attempt["parent_id"] == f"0x{request_span_id:016x}"
    assert attempt["attributes"]["notifyd.run.id"] == run_id
    assert attempt["attributes"]["notifyd.attempt.outcome"] == "succeeded"


def test_an_attempt_follows_its_requests_sampling_decision() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    begin = attempt_spans(provider)
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    for flags in ("00", "01"):  # not sampled, sampled
        run = ClaimedRun(
            id=f"run_{flags}",
            task_name="deliver",
            args={},
            queue="webhook",
            attempt=1,
            max_attempts=1,
            interruptions=0,
            started_at=datetime.now(UTC),
            trace_context=f"00-{trace_id}-{parent}-{flags}",
        )
        begin(run)(None)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["notifyd.run.id"] == "run_01"
    assert span.parent is not None and span.parent.span_id == int(parent, 16)
    assert _ids(span)[0] == int(trace_id, 16)
    provider.shutdown()
