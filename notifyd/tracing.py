"""One trace per notification, with OpenTelemetry (``opentelemetry = true``).

The accepting request's span is FastAPI's own. Each run stores the W3C ``traceparent`` it was
accepted under (``task_run.trace_context``), so its attempts join that trace in whichever
process runs them, after a restart too: each attempt is a span parented to the request's and
linked to it. While an attempt runs its span is current, and the webhook channel sends it on
as ``traceparent`` (``outgoing_headers``): a receiver continues the same trace.

The OpenTelemetry API comes with FastAPI; the SDK and exporters are the operator's choice
(e.g. ``opentelemetry-instrument``). Without the API everything here does nothing.
"""

from __future__ import annotations

from typing import Any

from notifyd import __version__
from notifyd.tracking.admin import ClaimedRun
from notifyd.tracking.execution import AttemptEnd, AttemptScope
from notifyd.tracking.models import RunStatus
from notifyd.tracking.outcomes import AttemptResult

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the API ships with FastAPI
    trace = None  # type: ignore[assignment]

TRACER_NAME = "notifyd"
_PROPAGATOR = TraceContextTextMapPropagator() if trace is not None else None


def available() -> bool:
    """Whether the OpenTelemetry API can be imported."""
    return trace is not None


def current_traceparent() -> str | None:
    """The current span's W3C ``traceparent``, or None outside a recorded span."""
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def outgoing_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, for a request to a peer."""
    if _PROPAGATOR is None or not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def attempt_spans(provider: Any = None) -> AttemptScope:
    """The dispatcher's ``attempt_scope``: a span per attempt, in the trace of its run's request.

    ``provider`` is a TracerProvider (the global one when None: a proxy until one is set, so
    one configured after start is used).
    """
    if trace is None or _PROPAGATOR is None:
        return lambda run: lambda result: None
    propagator = _PROPAGATOR
    tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)

    def begin(run: ClaimedRun) -> AttemptEnd:
        parent = (
            propagator.extract({"traceparent": run.trace_context}) if run.trace_context else None
        )
        accepted = trace.get_current_span(parent).get_span_context() if parent else None
        links = [trace.Link(accepted)] if accepted is not None and accepted.is_valid else None
        span = tracer.start_span(
            f"deliver {run.queue or run.task_name}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "notifyd.run.id": run.id,
                "notifyd.run.attempt": run.attempt,
                "notifyd.task": run.task_name,
                "notifyd.channel": run.queue or "-",
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))

        def end(result: AttemptResult | None) -> None:
            try:
                if result is None:
                    span.set_attribute("notifyd.attempt.outcome", "cancelled")
                else:
                    span.set_attribute("notifyd.attempt.outcome", result.outcome.value)
                    span.set_attribute("notifyd.run.status", result.status.value)
                    if result.status is not RunStatus.succeeded:
                        span.set_attribute("error.type", result.error_type or "error")
                        span.set_status(trace.StatusCode.ERROR, result.short_error)
                span.end()
            finally:
                otel_context.detach(token)

        return end

    return begin
