"""Inputs that once answered 500 on the compatibility endpoints (issue 18, Medium 3): each gets
its peer's own refusal, ntfy's ``{"code", "http", "error"}``, Gotify's ``{"error", "errorCode",
"errorDescription"}``, and the hooks' problem+json, never a traceback."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.compat.conftest import Server, Start

# One destination, so that a Gotify client (which names none) gets past choosing one.
ONE = {"alerts": {"channel": "log", "to": "oncall"}}
DEEP = "[" * 30_000 + "]" * 30_000  # 60,000 bytes: inside the 64 KiB body limit
HUGE_DELAYS = {
    "eighteen-nines": "9" * 18,
    "superscript-two": "²",
    "5000-digits": "9" * 5000,
    "fullwidth-digits": "\uff11\uff12",
    "arabic-indic-digits": "\u0663\u0660",
    "far-duration": "999999999d",
}
AM = "/v1/hooks/alertmanager/alerts"
GRAFANA = "/v1/hooks/grafana/alerts"


def _encoded_word(value: str) -> str:
    # RFC 2047, as ntfy decodes non-ASCII header values.
    return f"=?utf-8?b?{base64.b64encode(value.encode()).decode()}?="


def _cases() -> list[Any]:
    cases: list[Any] = []
    for label, value in HUGE_DELAYS.items():
        for header in ("X-Delay", "X-At", "X-In"):
            sent = value if value.isascii() else _encoded_word(value)
            cases.append(
                pytest.param(
                    "ntfy", "/alerts", {"content": "m", "headers": {header: sent}},
                    id=f"ntfy-{header}-{label}",
                )
            )  # fmt: skip
        for query in ("delay", "at", "in"):
            cases.append(
                pytest.param(
                    "ntfy", "/alerts", {"content": "m", "params": {query: value}},
                    id=f"ntfy-{query}-{label}",
                )
            )  # fmt: skip
        for field in ("delay", "at", "in"):
            document = {"topic": "alerts", "message": "m", field: value}
            cases.append(
                pytest.param(
                    "ntfy", "/", {"content": json.dumps(document)}, id=f"ntfy-json-{field}-{label}"
                )
            )
    for literal in ("Infinity", "-Infinity", "1e999"):
        body = f'{{"message": "x", "priority": {literal}}}'
        cases.append(
            pytest.param(
                "gotify", "/message",
                {"content": body, "headers": {"Content-Type": "application/json"}},
                id=f"gotify-priority-{literal}",
            )
        )  # fmt: skip
    deep: list[tuple[str, str, str]] = [
        ("ntfy", "/", f'{{"topic": "alerts", "message": "m", "x": {DEEP}}}'),
        ("gotify", "/message", f'{{"message": "m", "x": {DEEP}}}'),
        ("hook", AM, f'{{"alerts": [], "x": {DEEP}}}'),
        ("hook", GRAFANA, f'{{"alerts": [], "x": {DEEP}}}'),
    ]
    for dialect, path, body in deep:
        headers = {"Content-Type": "application/json"}
        cases.append(
            pytest.param(
                dialect, path, {"content": body, "headers": headers}, id=f"deep-json-{path}"
            )
        )
    extras = DEEP[:20_000] + DEEP[-20_000:]  # a multipart field holding JSON
    cases.append(
        pytest.param(
            "gotify", "/message", {"files": {"message": (None, "m"), "extras": (None, extras)}},
            id="gotify-deep-extras-multipart",
        )
    )  # fmt: skip
    labels = {
        "lone-surrogate": '"\\ud800"',
        "nul": '"a\\u0000b"',
        "nan": "NaN",
        "deep-33": '{"a": ' * 33 + "1" + "}" * 33,
    }
    for path in (AM, GRAFANA):
        for label, literal in labels.items():
            for where in ("value", "key"):
                if where == "key" and not literal.startswith('"'):
                    continue
                pair = f'"alertname": {literal}' if where == "value" else f"{literal}: 1"
                body = f'{{"status": "firing", "alerts": [{{"labels": {{{pair}}}}}]}}'
                cases.append(
                    pytest.param("hook", path, {"content": body}, id=f"{path}-{where}-{label}")
                )
    return cases


def _refused_in_dialect(dialect: str, answer: Any) -> None:
    assert answer.status_code < 500, answer.text
    if dialect == "ntfy":
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["http"] == 400 and 40000 <= body["code"] < 40100, body
        assert isinstance(body["error"], str) and body["error"]
    elif dialect == "gotify":
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["error"] == "Bad Request" and body["errorCode"] == 400, body
        assert isinstance(body["errorDescription"], str) and body["errorDescription"]
    else:
        # notifyd's own paths: its own refusal of a payload, problem+json.
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["status"] == 422


@pytest.fixture
def one(start: Start) -> Server:
    """An open server with a single destination (alerts)."""
    return start(destinations=ONE)


@pytest.mark.parametrize(("dialect", "path", "send"), _cases())
def test_refused_in_the_peers_shape(
    one: Server, dialect: str, path: str, send: dict[str, Any]
) -> None:
    _refused_in_dialect(dialect, one.client.post(path, **send))


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_put_takes_the_same_refusal(one: Server, method: str) -> None:
    answer = one.client.request(method, "/alerts", content="m", headers={"X-Delay": "9" * 5000})
    _refused_in_dialect("ntfy", answer)
    assert answer.json()["code"] in (40004, 40006)
