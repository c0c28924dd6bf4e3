"""A small typed HTTP client for the notifyd API (used by ``notifyd send``, usable by others)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from notifyd.errors import ClientError

DEFAULT_TIMEOUT = 10.0
_STREAM_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT, read=None)


class NotifydClient:
    """Talks to one notifyd server. Errors arrive as ClientError with one readable message."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if token is not None and not token.isascii():
            raise ClientError("the API token is not valid: tokens are plain ASCII (ntd_…)")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        try:
            self._http = httpx.Client(
                base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise ClientError(f"invalid server URL {base_url!r}: {exc}") from None

    def __enter__(self) -> NotifydClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def send(
        self,
        *,
        to: list[str] | None = None,
        message: str,
        subject: str | None = None,
        channel: str | None = None,
        destination: str | None = None,
        data: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        send_at: str | None = None,
        delay: str | None = None,
        priority: int | None = None,
    ) -> dict[str, Any]:
        """POST /v1/notifications; returns the 202 body (with ``replayed`` for an idempotent replay)."""
        body: dict[str, Any] = {"message": message}
        if to is not None:
            body["to"] = to
        for key, value in (
            ("subject", subject),
            ("channel", channel),
            ("destination", destination),
            ("data", data),
            ("send_at", send_at),
            ("delay", delay),
            ("priority", priority),
        ):
            if value is not None:
                body[key] = value
        if idempotency_key is not None and not idempotency_key.isascii():
            raise ClientError("an Idempotency-Key must be plain ASCII (it travels in a header)")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response, result = self._request("POST", "/v1/notifications", json=body, headers=headers)
        result["replayed"] = response.headers.get("Idempotency-Replay") == "true"
        return result

    def notification(self, notification_id: str) -> dict[str, Any]:
        """GET /v1/notifications/{id}."""
        return self._request("GET", f"/v1/notifications/{notification_id}")[1]

    def task(self, run_id: str) -> dict[str, Any]:
        """GET /v1/tasks/{id}."""
        return self._request("GET", f"/v1/tasks/{run_id}")[1]

    def health(self) -> dict[str, Any]:
        """GET /healthz."""
        return self._request("GET", "/healthz")[1]

    def subscribe(
        self, topics: list[str], *, since: str | None = None, poll: bool = False
    ) -> Iterator[dict[str, Any]]:
        """ntfy's ``GET /<topics>/json``: each event (open, keepalive, message) as it comes; with
        ``poll`` the kept messages, then the end. ClientError when refused or disconnected."""
        params = {"since": since} if since else {}
        if poll:
            params["poll"] = "1"
        path = "/" + ",".join(topics) + "/json"
        try:
            # No read timeout: an idle stream is quiet between keepalives.
            with self._http.stream("GET", path, params=params, timeout=_STREAM_TIMEOUT) as answer:
                if not answer.is_success:
                    answer.read()
                    raise ClientError(_subscribe_error(answer), status=answer.status_code)
                for line in answer.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.ConnectError:
            raise ClientError(
                f"cannot reach the notifyd server at {self.base_url} (is `notifyd serve` running?)"
            ) from None
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise ClientError(f"the stream from {self.base_url} broke off: {exc}") from None

    def _request(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response, dict[str, Any]]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ClientError(
                f"cannot reach the notifyd server at {self.base_url} (is `notifyd serve` running?)"
            ) from None
        except httpx.TimeoutException:
            raise ClientError(
                f"the notifyd server at {self.base_url} did not answer in time"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ClientError(f"request to {self.base_url} failed: {exc}") from None
        if not response.is_success:
            raise ClientError(_problem_detail(response), status=response.status_code)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ClientError(
                f"{self.base_url} answered {response.status_code} but not with a JSON object: "
                "is it a notifyd server?"
            )
        return response, body


def _subscribe_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):  # ntfy's shape
        return f"{response.status_code}: {body['error']}"
    return _problem_detail(response)


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        # pydantic prefixes a validator's message with "Value error, ": not the user's concern.
        detail = str(body["detail"]).replace("Value error, ", "")
        return f"{response.status_code} {body.get('title', '')}: {detail}".replace("  ", " ")
    return f"the server answered {response.status_code} {response.reason_phrase}"
