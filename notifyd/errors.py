"""The NotifydError tree: each error knows its problem+json type, title, HTTP status and CLI exit code.

NotifydError                  500  something went wrong
├── ConfigError                    the settings are unusable
├── SchemaError                    the database schema is newer than the code, or behind
├── NotFound                  404  no such notification / run
├── InvalidState              409  the run is in the wrong state for the operation
├── InProgress                409  the same Idempotency-Key is still being processed
├── InvalidInput              422  the request is well-formed but unacceptable
├── Unauthorized              401  missing or bad credentials
├── Forbidden                 403  the token's scope does not allow this
├── RateLimited               429  too many requests
├── StoreUnavailable          503  the database cannot be reached; nothing was changed
└── ClientError                    `notifyd.client`: the server could not be reached, or refused
"""

from __future__ import annotations

from notifyd.tracking.errors import RunNotFound, TrackingError

PROBLEM_BASE = "https://notifyd.dev/problems/"


class NotifydError(Exception):
    """Base of every error notifyd raises on purpose."""

    status: int = 500
    slug: str = "internal"
    title: str = "Internal error"
    exit_code: int = 1

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """Extra HTTP headers the problem response carries."""
        return {}


class ConfigError(NotifydError):
    slug, title, exit_code = "config", "Invalid configuration", 2


class SchemaError(NotifydError):
    slug, title, exit_code = "schema", "Database schema mismatch", 3


class NotFound(NotifydError):
    status, slug, title = 404, "not-found", "Not found"


class InvalidState(NotifydError):
    status, slug, title = 409, "invalid-state", "Invalid state"


class InProgress(NotifydError):
    status, slug, title = 409, "in-progress", "Request in progress"


class InvalidInput(NotifydError):
    status, slug, title = 422, "invalid-input", "Invalid input"


class Unauthorized(NotifydError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        super().__init__(detail)
        self.invalid_token = invalid_token

    @property
    def headers(self) -> dict[str, str]:
        """The RFC 6750 challenge."""
        error = ', error="invalid_token"' if self.invalid_token else ""
        return {"WWW-Authenticate": f'Bearer realm="notifyd"{error}'}


class Forbidden(NotifydError):
    status, slug, title = 403, "forbidden", "Forbidden"


class RateLimited(NotifydError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class StoreUnavailable(NotifydError):
    status, slug, title = 503, "store-unavailable", "Store unavailable"


class ClientError(NotifydError):
    slug, title = "client", "Client error"

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.http_status = status


def from_tracking(exc: TrackingError) -> NotifydError:
    """The catalogue's error for one that tracking's admin operations raised."""
    if isinstance(exc, RunNotFound):
        return NotFound(str(exc))
    return InvalidState(str(exc))
