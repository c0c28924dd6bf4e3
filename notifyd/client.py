"""A small typed HTTP client for the notifyd API (used by ``notifyd send``, usable by others)."""

from __future__ import annotations

from typing import Any

import httpx

from notifyd.errors import ClientError

DEFAULT_TIMEOUT = 10.0


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
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

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
        ):
            if value is not None:
                body[key] = value
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        response = self._request("POST", "/v1/notifications", json=body, headers=headers)
        result: dict[str, Any] = response.json()
        result["replayed"] = response.headers.get("Idempotency-Replay") == "true"
        return result

    def notification(self, notification_id: str) -> dict[str, Any]:
        """GET /v1/notifications/{id}."""
        result: dict[str, Any] = self._request("GET", f"/v1/notifications/{notification_id}").json()
        return result

    def task(self, run_id: str) -> dict[str, Any]:
        """GET /v1/tasks/{id}."""
        result: dict[str, Any] = self._request("GET", f"/v1/tasks/{run_id}").json()
        return result

    def health(self) -> dict[str, Any]:
        """GET /healthz."""
        result: dict[str, Any] = self._request("GET", "/healthz").json()
        return result

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
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
        except httpx.HTTPError as exc:
            raise ClientError(f"request to {self.base_url} failed: {exc}") from None
        if response.is_success:
            return response
        raise ClientError(_problem_detail(response), status=response.status_code)


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        return f"{response.status_code} {body.get('title', '')}: {body['detail']}".replace(
            "  ", " "
        )
    return f"the server answered {response.status_code} {response.reason_phrase}"
