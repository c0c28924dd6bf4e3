"""The OpenTelemetry SDK for tests: one global tracer provider exporting to memory (a process
can set its global provider once), and a launcher that runs the CLI exporting to a file."""

from __future__ import annotations

import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """The process's in-memory exporter (installed on first use), emptied."""
    global _exporter
    if _exporter is None:
        provider = TracerProvider()
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    return _exporter


def _line(span: ReadableSpan) -> str:
    text: str = span.to_json(indent=None)
    return text + "\n"


def main(argv: list[str]) -> Any:
    """``python -m tests.otel SPANS_FILE notifyd-args...``: the CLI, every span a JSON line."""
    out = open(argv[0], "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=_line)))
    trace.set_tracer_provider(provider)
    from cli.main import app

    return app(argv[1:], prog_name="notifyd")


if __name__ == "__main__":
    main(sys.argv[1:])
