"""No input to a compatibility endpoint answers 5xx (issue 18, Medium 3): property tests over
ntfy's publish (PUT/POST /<topic> and the JSON POST /), Gotify's POST /message and the
Alertmanager and Grafana hooks.

One server per test serves every example (the examples only read its answers). Examples are
few, so the suite stays fast; ``NOTIFYD_PROPERTY_EXAMPLES`` raises them for a deeper run.
"""

from __future__ import annotations

import base64
import json
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compat.conftest import Server, Start, fixture

MAX_EXAMPLES = int(os.environ.get("NOTIFYD_PROPERTY_EXAMPLES", "100"))
PROPERTY = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # each run explores afresh; a failure prints its example
    # The server is built once per test and only read by the examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HOOK_FIELDS = [
    "status",
    "receiver",
    "groupKey",
    "truncatedAlerts",
    "alerts",
    "groupLabels",
    "commonLabels",
    "externalURL",
    "message",
]
ALERT_FIELDS = ["status", "labels", "annotations", "fingerprint", "startsAt", "endsAt"]
DELAY = ["x-delay", "delay", "x-at", "at", "x-in", "in"]
ONE = {"alerts": {"channel": "log", "to": "oncall"}}
NTFY_NAMES = [
    "x-title", "title", "t", "x-message", "m", "x-priority", "priority", "p", "x-tags", "tags",
    "x-delay", "delay", "x-at", "at", "x-in", "in", "x-click", "click", "x-markdown", "md",
    "auth", "authorization",
]  # fmt: skip

# Text as clients send it: any code point, lone surrogates and NUL included.
anything = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "\x00", "²"])),
    max_size=40,
)
# Values that look almost like what the parsers read.
near_misses = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "1e999",
            "Infinity",
            "NaN",
            "-1",
            "30m",
            "1d",
            "40d",
            "2h",
            "²",
            "\uff11\uff12",
            "9" * 18,
            "9" * 5000,
            "999999999d",
            "2026-12-31T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+01:00",
            "urgent",
            "=?utf-8?b?wrI=?=",
            "=?bogus?q?x?=",
            "=?utf-8?b?!!!?=",
            "Bearer ntd_x",
            "Basic !!!",
        ]
    ),
    st.integers().map(str),
    st.floats().map(str),
    st.from_regex(r"[0-9]{1,30}[smhdw]?", fullmatch=True),
)
# Delays at the edges of what datetime holds, and digits int() reads but ntfy does not.
delays = st.one_of(
    st.sampled_from(["9" * 18, "9" * 5000, "²", "\uff11\uff12", "999999999d", "1e308s", "4102444800"]),
    near_misses,
)  # fmt: skip
# NaN and Infinity as json.dumps writes them, and numbers no integer or datetime holds.
numbers = st.one_of(
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -1e308, 2**63, -(2**63), 10**300]),
    st.floats(),
    st.integers(),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    anything,
    near_misses,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(anything, inner, max_size=4)
    ),
    max_leaves=20,
)
# Nested documents around and past the 64-level bound (30,000 levels: test_edges).
deep_values = st.integers(min_value=1, max_value=200).map(
    lambda depth: json.loads("[" * depth + "]" * depth)
)


def sometimes(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy`` in about one example of four, None otherwise."""
    return st.one_of(st.none(), st.none(), st.none(), strategy)


def mutated(
    base: dict[str, Any], changes: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` (a document the endpoint accepts) with one to three of its fields changed."""
    names = st.lists(st.sampled_from(sorted(changes)), min_size=1, max_size=3, unique=True)
    return names.flatmap(
        lambda chosen: st.fixed_dictionaries({n: changes[n] for n in chosen}).map(
            lambda changed: {**base, **changed}
        )
    )


def header_value(text: str) -> bytes:
    """``text`` as a header can carry it: latin-1 without line breaks, or an RFC 2047 word."""
    cleaned = "".join(c for c in text if c not in "\r\n\x00")
    try:
        return cleaned.encode("latin-1")
    except UnicodeEncodeError:
        encoded = base64.b64encode(cleaned.encode("utf-8", "surrogatepass")).decode()
        return f"=?utf-8?b?{encoded}?=".encode()


def dump(document: Any) -> bytes:
    """JSON as a peer might send it: lone surrogates escaped, NaN and Infinity as literals."""
    return json.dumps(document).encode()


def no_5xx(answer: Any) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text)


@pytest.fixture
def one(start: Start) -> Server:
    """An open server with a single destination (alerts), so Gotify's clients reach it too."""
    return start(destinations=ONE)


ntfy_params = st.dictionaries(
    st.sampled_from(NTFY_NAMES), st.one_of(near_misses, anything), max_size=3
)


@given(
    method=st.sampled_from(["PUT", "POST", "GET"]),  # GET: /<topic>/publish
    topic=st.one_of(st.just("alerts"), st.sampled_from(["nowhere", "v1", "ui"]), st.from_regex(r"\w{1,12}", fullmatch=True)),
    headers=ntfy_params,
    params=ntfy_params,
    delay=st.tuples(st.sampled_from(["header", "query"]), st.sampled_from(DELAY), delays),
    body=st.one_of(st.binary(max_size=200), anything.map(lambda t: t.encode("utf-8", "surrogatepass"))),
)  # fmt: skip
@PROPERTY
def test_ntfy_publish_never_5xx(
    one: Server,
    method: str,
    topic: str,
    headers: dict[str, str],
    params: dict[str, str],
    delay: tuple[str, str, str],
    body: bytes,
) -> None:
    where, name, value = delay
    (headers if where == "header" else params)[name] = value
    sent = {name.encode(): header_value(value) for name, value in headers.items()}
    query = {name: value.encode("utf-8", "surrogatepass").decode("latin-1") for name, value in params.items()}  # fmt: skip
    path, content = (f"/{topic}/publish", None) if method == "GET" else (f"/{topic}", body)
    no_5xx(one.client.request(method, path, content=content, headers=sent, params=query))


ntfy_changes: dict[str, st.SearchStrategy[Any]] = {
    "topic": st.one_of(st.just("nowhere"), json_values),
    "message": json_values,
    "title": json_values,
    "priority": json_values,
    "tags": st.one_of(st.lists(anything, max_size=3), json_values),
    "delay": st.one_of(delays, json_values),
    "at": st.one_of(delays, json_values),
    "in": st.one_of(delays, json_values),
    "click": json_values,
    "markdown": json_values,
    "deep": deep_values,
}


@given(
    document=st.one_of(mutated({"topic": "alerts", "message": "m"}, ntfy_changes), json_values),
    raw=sometimes(st.binary(max_size=100)),
    method=st.sampled_from(["PUT", "POST"]),
)
@PROPERTY
def test_ntfy_json_publish_never_5xx(
    one: Server, document: Any, raw: bytes | None, method: str
) -> None:
    no_5xx(one.client.request(method, "/", content=raw if raw is not None else dump(document)))


gotify_fields = mutated(
    {"message": "m"},
    {
        "message": json_values,
        "title": json_values,
        "priority": st.one_of(numbers, near_misses, json_values),
        "extras": st.one_of(json_values, json_values.map(json.dumps), deep_values),
        "deep": deep_values,
    },
)


def _gotify_send(fields: dict[str, Any], form: str) -> dict[str, Any]:
    if form == "json":
        return {"content": dump(fields), "headers": {"Content-Type": "application/json"}}
    as_text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    encoded = {k: v.encode("utf-8", "surrogatepass") for k, v in as_text.items()}
    if form == "multipart":
        return {"files": {k: (None, v) for k, v in encoded.items()}}
    from urllib.parse import urlencode

    return {
        "content": urlencode(encoded).encode(),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


@given(
    fields=gotify_fields,
    form=st.sampled_from(["json", "form", "multipart"]),
    raw=sometimes(st.binary(max_size=100)),
)
@PROPERTY
def test_gotify_message_never_5xx(
    one: Server, fields: dict[str, Any], form: str, raw: bytes | None
) -> None:
    send = _gotify_send(fields, form)
    if raw is not None:
        send = {"content": raw, "headers": {"Content-Type": "application/json"}}
    no_5xx(one.client.post("/message", **send))


labels = st.dictionaries(
    st.one_of(st.sampled_from(["alertname", "severity"]), anything), json_values, max_size=3
)


@st.composite
def hook_payloads(draw: st.DrawFn, kind: str) -> Any:
    """The peer's own sample payload with a few labels, annotations or fields changed."""
    payload: dict[str, Any] = fixture(f"{kind}_firing.json")
    for alert in payload["alerts"]:
        alert["labels"].update(draw(labels))
        alert.setdefault("annotations", {}).update(draw(labels))
    for key in ("groupLabels", "commonLabels"):
        payload[key] = {**payload.get(key, {}), **draw(labels)}
    fields = draw(st.dictionaries(st.sampled_from(HOOK_FIELDS), json_values, max_size=2))
    payload.update(fields)
    if isinstance(payload["alerts"], list) and draw(st.booleans()):
        payload["alerts"].append(
            draw(
                st.one_of(json_values, st.dictionaries(st.sampled_from(ALERT_FIELDS), json_values))
            )
        )
    if draw(st.booleans()):
        payload["deep"] = draw(deep_values)
    return payload


@pytest.mark.parametrize("kind", ["alertmanager", "grafana"])
@given(data=st.data(), raw=sometimes(st.one_of(st.binary(max_size=100), json_values.map(dump))))
@PROPERTY
def test_alert_hooks_never_5xx(
    one: Server, kind: str, data: st.DataObject, raw: bytes | None
) -> None:
    body = raw if raw is not None else dump(data.draw(hook_payloads(kind)))
    no_5xx(one.client.post(f"/v1/hooks/{kind}/alerts", content=body))
