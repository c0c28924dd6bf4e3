"""Rendering: one Jinja2 environment (autoescape on for every template) and its filters.

Nothing a client or a peer wrote is ever marked safe: recipients, subjects, messages, errors
and answers reach the page only through Jinja's escaping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from notifyd import __version__
from notifyd.timeutil import describe_ms
from notifyd.ui.session import Viewer

TEMPLATES = files("notifyd.ui") / "templates"
STATIC = files("notifyd.ui") / "static"
STATUS_CLASSES = ("queued", "running", "succeeded", "retrying", "failed", "cancelled")


def when(value: datetime | None) -> str:
    """``2026-12-01 09:30:05 UTC``."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    """An RFC 3339 time for ``<time datetime=…>``."""
    return value.astimezone(UTC).isoformat() if value is not None else ""


def duration(ms: float | None) -> str:
    """``850 ms``, ``2.4 s``, ``3 m 05 s``, ``2 h 10 m``, ``3 d 4 h``."""
    return "-" if ms is None else describe_ms(ms)


def age(value: datetime | None, now: datetime) -> str:
    """How long ago (``3 m 05 s ago``) or how far ahead (``in 12 s``)."""
    if value is None:
        return "-"
    seconds = (now - value).total_seconds()
    if seconds >= 0:
        return f"{duration(seconds * 1000)} ago"
    return f"in {duration(-seconds * 1000)}"


def pretty_json(value: Any) -> str:
    """Indented JSON for a ``<pre>`` (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def status_class(status: object) -> str:
    """A CSS class for a status; anything unknown gets none (never text from the store)."""
    value = str(status)
    return f"st-{value}" if value in STATUS_CLASSES else ""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, iso=iso, duration=duration, pretty_json=pretty_json, status_class=status_class
    )
    env.globals.update(age=age, version=__version__)
    return env


ENV = _environment()


def page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A rendered page; the security headers are added by the UI's middleware."""
    html = ENV.get_template(template).render(
        request=request,
        viewer=viewer,
        csrf=viewer.csrf if viewer else "",
        path=request.url.path,
        now=datetime.now(UTC),
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def error_page(
    request: Request, viewer: Viewer | None, status_code: int, message: str
) -> HTMLResponse:
    """An error as a page of the dashboard."""
    return page(request, "error.html", viewer, status_code=status_code, message=message)
