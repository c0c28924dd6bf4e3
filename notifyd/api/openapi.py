"""Make the OpenAPI document name every status the API can answer, each as problem+json.

Routes document their own errors (``problem_responses``); what every route of a kind can answer
is added here, so that a new route is documented correctly without remembering the list:
500 and 422 everywhere (an unknown query parameter is refused), 401/403/429 where a token is
required, 400 and 413 where there is a body.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from notifyd.api.problems import PROBLEM_MEDIA_TYPE, Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {"description": "The Bearer challenge.", "schema": {"type": "string"}}
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "string"},
        }
    },
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _add(responses: dict[str, Any], status: int) -> None:
    responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})


# Path and query text may not hold NUL (notifyd.api.params refuses it): say so in the schema.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def _forbid_nul(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and "pattern" not in schema and "format" not in schema:
        schema["pattern"] = NO_NUL_PATTERN
    for option in schema.get("anyOf", []):
        _forbid_nul(option)


def complete_operation(operation: dict[str, Any]) -> None:
    """Add the statuses this kind of operation can answer; make every error problem+json."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") in ("path", "query"):
            _forbid_nul(parameter.get("schema", {}))
    responses: dict[str, Any] = operation.setdefault("responses", {})
    _add(responses, 500)
    _add(responses, 503)  # the database is unreachable
    if operation.get("security"):
        for status in (401, 403, 429):
            _add(responses, status)
    if "requestBody" in operation:
        _add(responses, 400)  # a body JSON cannot parse at all (nested too deep)
        _add(responses, 413)
    _add(responses, 422)  # at least an unknown query parameter
    for code, response in responses.items():
        if code[:1] in ("4", "5"):
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
            if int(code) in _HEADERS:
                response["headers"] = _HEADERS[int(code)]


def complete_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Complete every operation of an OpenAPI document (in place) and return it."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path_item in schema.get("paths", {}).values():
        for method in _METHODS:
            if method in path_item:
                complete_operation(path_item[method])
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_schema(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
