"""Query parameters: accept exactly what the OpenAPI schema says, nothing looser, nothing more."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

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
_INDEX_KEY = "notifyd_query_params"


def _is_array(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "array" or any(_is_array(s) for s in schema.get("anyOf", []))


def _query_params(app: FastAPI) -> dict[tuple[str, str], dict[str, bool]]:
    """Per (method, path): the declared query parameters, and whether each may repeat."""
    index: dict[tuple[str, str], dict[str, bool]] | None = getattr(app.state, _INDEX_KEY, None)
    if index is None:
        index = {
            (method.upper(), path): {
                p["name"]: _is_array(p.get("schema", {}))
                for p in operation.get("parameters", [])
                if p.get("in") == "query"
            }
            for path, item in app.openapi().get("paths", {}).items()
            for method, operation in item.items()
            if isinstance(operation, dict)
        }
        setattr(app.state, _INDEX_KEY, index)
    return index


async def forbid_unknown_query(request: Request) -> None:
    """Refuse undeclared or repeated query parameters (a typo must not widen a query).

    ``async`` so that it runs on the event loop: a sync dependency would cost every request a
    thread hop.
    """
    if not request.url.query:
        return
    path = getattr(request.scope.get("route"), "path", None)
    declared = _query_params(request.app).get((request.method, str(path)))
    if declared is None:  # a route outside the schema: nothing to check against
        return
    errors: list[dict[str, Any]] = []
    for name in dict.fromkeys(request.query_params):
        if name not in declared:
            errors.append({"loc": ("query", name), "msg": "unknown query parameter"})
        elif not declared[name] and len(request.query_params.getlist(name)) > 1:
            errors.append({"loc": ("query", name), "msg": "given more than once"})
    if errors:
        raise RequestValidationError([{**error, "type": "extra_forbidden"} for error in errors])
