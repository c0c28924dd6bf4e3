"""CORS (only when configured), with a refused preflight answered as problem+json like every error."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from notifyd.api.problems import problem_response


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware; its 400 for a refused preflight becomes problem+json."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """The preflight answer."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        detail = bytes(response.body).decode(errors="replace")
        headers = {
            k: v for k, v in response.headers.items() if k.lower().startswith("access-control")
        }
        return problem_response(response.status_code, detail, headers=headers or None)
