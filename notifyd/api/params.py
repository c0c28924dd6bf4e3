"""Path and query parameters: exactly what the OpenAPI schema says, nothing looser, no NULs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BeforeValidator
from starlette.requests import HTTPConnection

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339(value: object) -> object:
    # Pydantic alone would also take "0.5" (a Unix time) or a date without a time zone.
    if isinstance(value, str) and not _RFC3339.fullmatch(value.strip()):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T09:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00:00+01:00 and 9999-12-31T23:59:59-01:00 have no UTC form: 422, not 500.
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("out of range: in UTC it must be between years 1 and 9999") from None


DateTimeParam = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc)]
_INDEX_KEY = "notifyd_query_params"
# PostgreSQL cannot store or even compare text holding NUL; no identifier or filter needs one.
NUL_MESSAGE = "must not contain NUL characters"


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


def _query_errors(request: Request) -> list[dict[str, Any]]:
    path = getattr(request.scope.get("route"), "path", None)
    declared = _query_params(request.app).get((request.method, str(path)))
    errors: list[dict[str, Any]] = []
    for name in dict.fromkeys(request.query_params):
        values = request.query_params.getlist(name)
        if declared is not None and name not in declared:
            errors.append({"loc": ("query", name), "msg": "unknown query parameter"})
        elif declared is not None and not declared[name] and len(values) > 1:
            errors.append({"loc": ("query", name), "msg": "given more than once"})
        elif any("\x00" in value for value in values):
            errors.append({"loc": ("query", name), "msg": NUL_MESSAGE})
    return errors


OWN_CHECKS = "notifyd_checks_own_parameters"
F = TypeVar("F", bound=Callable[..., Any])


def checks_own_parameters(endpoint: F) -> F:
    """Mark a route that checks its parameters itself and answers in its peer's dialect (ntfy's
    subscribe API): its bad input must get the peer's error, not notifyd's problem+json."""
    setattr(endpoint, OWN_CHECKS, True)
    return endpoint


async def strict_parameters(connection: HTTPConnection) -> None:
    """Refuse undeclared or repeated query parameters (a typo must not widen a query) and NULs.

    ``async`` so that it runs on the event loop: a sync dependency would cost every request a
    thread hop. WebSocket routes (subscribers) check their own parameters, in their dialect.
    """
    if connection.scope["type"] != "http":
        return
    if getattr(getattr(connection.scope.get("route"), "endpoint", None), OWN_CHECKS, False):
        return
    request = cast(Request, connection)
    # Read from the scope: this runs on every request, and Request.url is not free.
    errors = [
        {"loc": ("path", name), "msg": NUL_MESSAGE}
        for name, value in request.scope.get("path_params", {}).items()
        if isinstance(value, str) and "\x00" in value
    ]
    if request.scope.get("query_string"):
        errors += _query_errors(request)
    if errors:
        raise RequestValidationError([{**error, "type": "value_error"} for error in errors])
