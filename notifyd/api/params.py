"""Query parameters: accept exactly what the OpenAPI schema says, nothing looser, nothing more."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339(value: object) -> object:
    # Pydantic alone would also take "0.5" (a Unix time) or a date without a time zone.
    if isinstance(value, str) and not _RFC3339.fullmatch(value.strip()):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T09:00:00Z")
    return value


DateTimeParam = Annotated[datetime, BeforeValidator(_rfc3339)]
_INDEX_KEY = "notifyd_query_names"


def _query_names(app: FastAPI) -> dict[tuple[str, str], frozenset[str]]:
    index: dict[tuple[str, str], frozenset[str]] | None = getattr(app.state, _INDEX_KEY, None)
    if index is None:
        index = {
            (method.upper(), path): frozenset(
                p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"
            )
            for path, item in app.openapi().get("paths", {}).items()
            for method, operation in item.items()
            if isinstance(operation, dict)
        }
        setattr(app.state, _INDEX_KEY, index)
    return index


def forbid_unknown_query(request: Request) -> None:
    """Refuse query parameters the operation does not declare (a typo must not widen a query)."""
    if not request.url.query:
        return
    path = getattr(request.scope.get("route"), "path", None)
    allowed = _query_names(request.app).get((request.method, str(path)))
    if allowed is None:  # a route outside the schema: nothing to check against
        return
    unknown = [name for name in request.query_params if name not in allowed]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )
