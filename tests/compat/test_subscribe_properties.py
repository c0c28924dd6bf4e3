"""No input to the subscribe endpoints gives a 5xx: each answer is a stream, a poll, or the
peer's own error (properties over topics, ``since`` values, filters and Gotify's paging)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.compat.conftest import Server, Start

INBOX = {"phone": {"channel": "inbox", "to": "phone"}, "alerts": {"channel": "log", "to": "x"}}
TEXT = st.text(st.characters(codec="utf-8"), max_size=80)
ANYTHING = st.one_of(TEXT, st.sampled_from(["all", "latest", "none", "10m", "1h30m", "0", "-1",
                                            "9" * 30, "AbCdEf123456", "1e309", "NaN", "²"]))  # fmt: skip
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def inbox(start: Start) -> Server:
    """One app for all of a property's examples (hypothesis runs them in one test call)."""
    server = start(destinations=INBOX)
    assert server.client.post("/phone", content="kept").status_code == 200
    return server


@SETTINGS
@given(topics=TEXT, since=ANYTHING, priority=ANYTHING, tags=TEXT, dialect=st.sampled_from(
    ["json", "sse", "raw"]))  # fmt: skip
def test_ntfy_poll_never_fails_with_5xx(
    inbox: Server, topics: str, since: str, priority: str, tags: str, dialect: str
) -> None:
    answer = inbox.client.get(
        f"/{quote(topics, safe=',')}/{dialect}",
        params={"poll": "1", "since": since, "priority": priority, "tags": tags},
    )
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400 and answer.headers["content-type"].startswith("application/json"):
        assert {"code", "http", "error"} <= set(answer.json())


@SETTINGS
@given(limit=ANYTHING, since=ANYTHING, message_id=TEXT)
def test_gotify_reads_never_fail_with_5xx(
    inbox: Server, limit: str, since: str, message_id: str
) -> None:
    paged = inbox.client.get("/message", params={"limit": limit, "since": since})
    assert paged.status_code < 500, paged.text
    if paged.status_code >= 400:
        assert set(paged.json()) == {"error", "errorCode", "errorDescription"}
    deleted = inbox.client.delete(f"/message/{quote(message_id, safe='')}")
    assert deleted.status_code < 500, deleted.text
