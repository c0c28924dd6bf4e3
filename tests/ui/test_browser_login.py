"""The dashboard in Chromium once tokens exist: login, logout, and scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import SERVER_ENV, Server, Watch, open_page


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    with Server(tmp_path_factory.mktemp("ui-auth") / "home", env=SERVER_ENV) as served:
        tokens = {scope: served.token(f"ui-{scope}", scope) for scope in ("read", "admin")}
        yield served, tokens


@pytest.fixture
def watched(browser: Any, secured: tuple[Server, dict[str, str]]) -> Iterator[tuple[Any, Watch]]:
    context, page, watch = open_page(browser, secured[0].url)
    yield page, watch
    context.close()
    assert not watch.foreign, f"requests left for another host: {watch.foreign}"
    assert not watch.errors, f"console errors: {watch.errors}"


def login(page: Any, server: Server, token: str) -> None:
    page.goto(server.url + "/ui/")
    expect(page).to_have_url(server.url + "/ui/login?next=%2Fui%2F")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    expect(page).to_have_url(server.url + "/ui/")


def test_login_and_logout(
    secured: tuple[Server, dict[str, str]], watched: tuple[Any, Watch]
) -> None:
    server, tokens = secured
    page, _ = watched
    run_id = server.submit(tokens["admin"], to=["private-recipient"], message="private")
    page.goto(f"{server.url}/ui/runs/{run_id}")
    expect(page.locator("#login")).to_be_visible()
    # Nothing of the store is shown (only the path asked for is kept, to come back to).
    assert "private" not in page.content() and run_id not in page.inner_text("body")
    page.fill("#token", "ntd_not-a-token")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("invalid")
    page.fill("#token", tokens["read"])
    page.click("#login button[type=submit]")
    expect(page).to_have_url(f"{server.url}/ui/runs/{run_id}")
    expect(page.locator("#recipient")).to_have_text("private-recipient")
    cookies = page.context.cookies()
    assert [c["name"] for c in cookies] == ["notifyd_ui"]
    assert cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert tokens["read"] not in cookies[0]["value"]
    assert page.evaluate("document.cookie") == "" and page.evaluate("localStorage.length") == 0
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    page.goto(server.url + "/ui/")
    expect(page.locator("#login")).to_be_visible()
    assert run_id not in page.content() and "private" not in page.content()


def test_a_read_token_cannot_act(
    secured: tuple[Server, dict[str, str]], watched: tuple[Any, Watch]
) -> None:
    server, tokens = secured
    page, _ = watched
    later = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    run_id = server.submit(tokens["admin"], to=["x"], message="m", send_at=later)
    login(page, server, tokens["read"])
    page.goto(f"{server.url}/ui/runs/{run_id}")
    cancel = page.locator("button[data-action=cancel]")
    expect(cancel).to_be_disabled()
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{server.url}/ui/runs/{run_id}/cancel",
        form={"csrf": csrf},
        headers={"origin": server.url},
        max_redirects=0,
    )
    assert answer.status == 403
    assert server.status(run_id, tokens["admin"]) == "queued"
    page.click("#logout")
    login(page, server, tokens["admin"])
    page.goto(f"{server.url}/ui/runs/{run_id}")
    page.click("button[data-action=cancel]")
    expect(page.locator("#run-status")).to_have_text("cancelled")
