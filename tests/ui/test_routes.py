"""The dashboard's routes without a browser: access, sessions, CSRF, headers and escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from notifyd.api.app import create_app
from notifyd.config import Settings
from notifyd.db import engine_for, upgrade
from notifyd.tokens import Scope
from notifyd.ui.session import COOKIE
from tests.api.security_support import create_token
from tests.conftest import make_settings
from tests.support import wait_for

ORIGIN = {"origin": "http://testserver"}
HOSTILE = "<script>alert(1)</script>"
REFUSED_HOOK = "http://127.0.0.1:9/hook"  # the SSRF guard fails it permanently


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    settings = make_settings(tmp_path / "home", token_cache_seconds=0)
    engine = engine_for(settings)
    upgrade(engine)
    yield settings, engine
    engine.dispose()


@pytest.fixture
def ui(store: tuple[Settings, Engine]) -> Iterator[TestClient]:
    settings, _ = store
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def submit(client: TestClient, headers: dict[str, str] | None = None, **body: Any) -> str:
    """Post a notification through the API; returns its first run's id."""
    answer = client.post("/v1/notifications", json=body, headers=headers or {})
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["tasks"][0]["id"]
    return run_id


def run_status(client: TestClient, run_id: str, headers: dict[str, str] | None = None) -> str:
    status: str = client.get(f"/v1/tasks/{run_id}", headers=headers or {}).json()["status"]
    return status


def failed_run(client: TestClient, headers: dict[str, str] | None = None) -> str:
    run_id = submit(client, headers, channel="webhook", to=[REFUSED_HOOK], message="m")
    wait_for(lambda: run_status(client, run_id, headers) == "failed", what="the run to fail")
    return run_id


def test_root_leads_to_the_dashboard(ui: TestClient) -> None:
    assert ui.get("/").headers["location"] == "/ui/"
    assert ui.get("/ui").headers["location"] == "/ui/"


def test_every_page_sends_a_strict_csp_and_a_strict_cookie(ui: TestClient) -> None:
    run_id = submit(ui, to=["ops"], message="m")
    note_id = ui.get(f"/v1/tasks/{run_id}").json()["notification_id"]
    for path in (
        "/ui/",
        "/ui/runs",
        f"/ui/runs/{run_id}",
        f"/ui/notifications/{note_id}",
        "/ui/runs/run_missing",
        "/ui/runs?status=nonsense",
        "/ui/inbox",
        "/ui/inbox/ops",
        "/ui/inbox/no%20such%20topic",
    ):
        answer = ui.get(path)
        assert answer.status_code in (200, 400, 404), path
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp, path
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert "<script>" not in answer.text and " style=" not in answer.text, path
    ui.cookies.clear()
    cookie = ui.get("/ui/").headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Max-Age=" in cookie


def test_untrusted_text_is_escaped_everywhere(ui: TestClient) -> None:
    run_id = submit(
        ui, to=[HOSTILE], subject=f"{HOSTILE} [red]x[/red]", message="<img src=x onerror=alert(1)>"
    )
    note_id = ui.get(f"/v1/tasks/{run_id}").json()["notification_id"]
    wait_for(lambda: run_status(ui, run_id) == "succeeded", what="delivery")
    for path in (
        "/ui/",
        "/ui/runs",
        f"/ui/runs?q={run_id}",
        f"/ui/runs/{run_id}",
        f"/ui/notifications/{note_id}",
    ):
        html = ui.get(path).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        assert "<script>alert" not in html and "<img src=x" not in html, path


def test_untrusted_text_is_escaped_in_the_web_inbox(ui: TestClient) -> None:
    text = f"{HOSTILE} [/x] [red]x[/red] <img src=x onerror=alert(1)>"
    run_id = submit(
        ui,
        channel="inbox",
        to=["hostile"],
        subject=text,
        message=f"{text}\r\n{text}",
        data={"tags": [HOSTILE], "click": 'https://example.org/"><script>alert(1)</script>'},
    )
    wait_for(lambda: run_status(ui, run_id) == "succeeded", what="the message to be kept")
    submit(ui, channel="inbox", to=["hostile"], message="m", data={"click": "javascript:alert(1)"})
    html = ui.get("/ui/inbox/hostile").text
    assert "javascript:" not in html  # only http(s) links are kept
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # title, 2 lines, tag
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "[/x] [red]x[/red]" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert '"><script>' not in html  # the link's address stays inside its attribute
    topics = ui.get("/ui/inbox").text
    assert 'href="/ui/inbox/hostile"' in topics
    # A hostile topic name is refused before anything is shown of it, and shown escaped.
    for path in ("/ui/inbox/%3Cimg%20src=x%20onerror=alert(1)%3E", "/ui/inbox/a%0D%0Ab"):
        answer = ui.get(path)
        assert answer.status_code == 404 and "text/html" in answer.headers["content-type"]
        assert "<img" not in answer.text and "\r\n" not in answer.headers.get("location", "")
        events = ui.get(path + "/events")
        assert events.status_code == 404 and "text/plain" in events.headers["content-type"]


def test_search_finds_by_run_notification_and_recipient(ui: TestClient) -> None:
    first = submit(ui, to=["alice@example.org"], message="m")
    second = submit(ui, to=["bob_100%"], message="m")
    note = ui.get(f"/v1/tasks/{second}").json()["notification_id"]
    assert first in ui.get("/ui/runs?q=alice").text
    assert second not in ui.get("/ui/runs?q=alice").text
    assert second in ui.get(f"/ui/runs?q={note}").text
    assert first in ui.get(f"/ui/runs?q={first}").text
    # LIKE wildcards are literal: "%" matches only a "%"
    assert first not in ui.get("/ui/runs?q=%25").text and second in ui.get("/ui/runs?q=%25").text


def test_bad_filters_are_a_400_page(ui: TestClient) -> None:
    for query in ("status=nonsense", "since=yesterday-ish"):
        answer = ui.get(f"/ui/runs?{query}")
        assert answer.status_code == 400 and "text/html" in answer.headers["content-type"]


def test_posts_need_this_origin_and_the_session_csrf_token(ui: TestClient) -> None:
    run_id = failed_run(ui)
    page = ui.get(f"/ui/runs/{run_id}").text
    token = csrf_of(page)
    path = f"/ui/runs/{run_id}/retry"
    assert ui.post(path, data={"csrf": token}).status_code == 403  # no Origin
    evil = {"origin": "http://evil.example"}
    assert ui.post(path, data={"csrf": token}, headers=evil).status_code == 403
    assert ui.post(path, data={"csrf": "forged"}, headers=ORIGIN).status_code == 403
    assert ui.post(path, data={"back": "/ui/"}, headers=ORIGIN).status_code == 403
    assert run_status(ui, run_id) == "failed"
    done = ui.post(path, data={"csrf": token}, headers=ORIGIN)
    assert done.status_code == 303 and done.headers["location"] == f"/ui/runs/{run_id}"
    assert run_status(ui, run_id) in ("queued", "running", "failed")
    wait_for(lambda: run_status(ui, run_id) == "failed", what="the retried run to fail again")
    detail = ui.get(f"/v1/tasks/{run_id}").json()
    assert detail["attempts"] == 2


def test_bulk_retry_confirms_with_a_count(ui: TestClient) -> None:
    runs = [failed_run(ui) for _ in range(2)]
    confirm = ui.get("/ui/bulk?action=retry&status=failed")
    assert confirm.status_code == 200 and "2 run(s) match" in confirm.text
    done = ui.post(
        "/ui/bulk",
        data={"csrf": csrf_of(confirm.text), "action": "retry", "status": "failed"},
        headers=ORIGIN,
    )
    assert done.status_code == 200 and "2 run(s) queued again" in done.text

    def attempts(run_id: str) -> int:
        count: int = ui.get(f"/v1/tasks/{run_id}").json()["attempts"]
        return count

    for run_id in runs:
        wait_for(lambda r=run_id: attempts(r) == 2, what="the retry")  # type: ignore[misc]
    assert ui.get("/ui/bulk?action=retry&status=succeeded").status_code == 400


@pytest.fixture
def tokens(store: tuple[Settings, Engine]) -> dict[Scope, str]:
    _, engine = store
    return {scope: create_token(engine, f"t-{scope}", scope) for scope in Scope}


def login(client: TestClient, token: str) -> Any:
    return client.post("/ui/login", data={"token": token, "next": "/ui/runs"}, headers=ORIGIN)


def test_with_tokens_nothing_is_shown_before_login(
    ui: TestClient, tokens: dict[Scope, str]
) -> None:
    admin = {"authorization": f"Bearer {tokens[Scope.admin]}"}
    run_id = submit(ui, admin, to=[HOSTILE], message="secret message")
    for path in ("/ui/", "/ui/runs", f"/ui/runs/{run_id}", "/ui/bulk?status=failed"):
        answer = ui.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
        assert run_id not in answer.text
    page = ui.get("/ui/login")
    assert page.status_code == 200 and run_id not in page.text and "secret" not in page.text
    assert "content-security-policy" in page.headers
    refused = ui.post(f"/ui/runs/{run_id}/cancel", data={"csrf": "x"}, headers=ORIGIN)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")


def test_login_session_and_logout(ui: TestClient, tokens: dict[Scope, str]) -> None:
    bad = login(ui, "ntd_wrong")
    assert (
        bad.status_code == 200
        and "invalid" in bad.text
        and COOKIE not in bad.headers.get("set-cookie", "")
    )
    refused = login(ui, tokens[Scope.send])
    assert "a send token cannot open the dashboard" in refused.text
    assert COOKIE not in refused.headers.get("set-cookie", "")
    assert ui.post("/ui/login", data={"token": tokens[Scope.read]}).status_code == 403  # no Origin
    answer = login(ui, tokens[Scope.read])
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/runs"
    cookie = answer.headers["set-cookie"]
    assert (
        tokens[Scope.read] not in cookie and tokens[Scope.read].removeprefix("ntd_") not in cookie
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    overview = ui.get("/ui/")
    assert overview.status_code == 200 and "t-read" in overview.text
    out = ui.post("/ui/logout", data={"csrf": csrf_of(overview.text)}, headers=ORIGIN)
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]
    ui.cookies.clear()
    assert ui.get("/ui/").status_code == 303


def test_a_stolen_cookie_dies_with_logout(ui: TestClient, tokens: dict[Scope, str]) -> None:
    login(ui, tokens[Scope.read])
    key = ui.cookies[COOKIE]
    csrf = csrf_of(ui.get("/ui/").text)
    ui.post("/ui/logout", data={"csrf": csrf}, headers=ORIGIN)
    ui.cookies.set(COOKIE, key, path="/ui")
    assert ui.get("/ui/").status_code == 303


def test_a_read_token_views_but_cannot_act(ui: TestClient, tokens: dict[Scope, str]) -> None:
    admin = {"authorization": f"Bearer {tokens[Scope.admin]}"}
    run_id = failed_run(ui, admin)
    login(ui, tokens[Scope.read])
    page = ui.get(f"/ui/runs/{run_id}")
    assert page.status_code == 200 and "disabled" in page.text
    refused = ui.post(f"/ui/runs/{run_id}/retry", data={"csrf": csrf_of(page.text)}, headers=ORIGIN)
    assert refused.status_code == 403 and "admin" in refused.text
    assert run_status(ui, run_id, admin) == "failed"
    login(ui, tokens[Scope.admin])
    page = ui.get(f"/ui/runs/{run_id}")
    done = ui.post(f"/ui/runs/{run_id}/retry", data={"csrf": csrf_of(page.text)}, headers=ORIGIN)
    assert done.status_code == 303


def test_open_sessions_end_once_a_token_exists(
    ui: TestClient, store: tuple[Settings, Engine]
) -> None:
    assert ui.get("/ui/").status_code == 200
    create_token(store[1], "late", Scope.read)
    assert ui.get("/ui/").status_code == 303


def test_docs_are_served_offline_and_the_schema_is_unchanged(ui: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        html = ui.get(path).text
        assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html
        assert "/static-offline-docs/" in html
    assert ui.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    paths = ui.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui") or p in ("/", "/docs", "/redoc")]


def test_revoking_every_token_keeps_the_dashboard_closed(
    ui: TestClient, store: tuple[Settings, Engine]
) -> None:
    from notifyd.db import write_session
    from notifyd.tokens import revoke_token

    create_token(store[1], "only", Scope.read)
    with write_session(store[1]) as session:
        revoke_token(session=session, name="only")
    assert ui.get("/ui/").status_code == 303


def test_assets_ship_with_the_package(ui: TestClient) -> None:
    for name, kind in (("ui.css", "text/css"), ("ui.js", "javascript"), ("favicon.svg", "svg")):
        answer = ui.get(f"/ui/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"], name


def test_a_token_bound_to_a_destination_reads_only_its_inbox_topic(tmp_path: Path) -> None:
    from notifyd.db import write_session
    from notifyd.tokens import create_token as make_token

    inbox = {"channel": "inbox", "to": ["phone"]}
    settings = make_settings(
        tmp_path / "home",
        token_cache_seconds=0,
        destinations={"phone": inbox, "other": {**inbox, "to": ["other"]}},
    )
    engine = engine_for(settings)
    upgrade(engine)
    with write_session(engine) as session:
        bound = make_token(session=session, name="phone-app", scope=Scope.read, destination="phone")
    with TestClient(create_app(settings), follow_redirects=False) as ui:
        assert login(ui, bound.token).status_code == 303
        topics = ui.get("/ui/inbox").text
        assert 'href="/ui/inbox/phone"' in topics and 'href="/ui/inbox/other"' not in topics
        assert ui.get("/ui/inbox/phone").status_code == 200
        assert ui.get("/ui/inbox/other").status_code == 403
        assert ui.get("/ui/inbox/other/events").status_code == 403
    engine.dispose()
