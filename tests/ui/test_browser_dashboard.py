"""The dashboard in Chromium, open mode (no tokens, loopback): what an operator sees and does."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.support import Receiver
from tests.ui.conftest import Server, Watch

HOSTILE = "<script>alert(1)</script>"


def test_overview_shows_the_newest_runs(server: Server, watched: tuple[Any, Watch]) -> None:
    page, watch = watched
    first = server.submit(to=["first"], message="one")
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/ui/")
    expect(page.locator("#newest")).to_contain_text(first)
    expect(page.locator("svg[role=img]")).to_have_count(2)
    later = server.submit(to=["later"], message="two")
    # Not reloaded: the page refreshes itself.
    expect(page.locator("#newest tbody tr").first).to_contain_text(later)
    expect(page.locator("#newest")).to_contain_text("later")
    assert watch.requests[0] == server.url + "/"


def test_pause_stops_the_refresh(server: Server, watched: tuple[Any, Watch]) -> None:
    page, _ = watched
    page.goto(server.url + "/ui/runs")
    page.click("#pause")
    expect(page.locator("#pause")).to_have_text("Resume")
    expect(page.locator("#refresh-state")).to_have_text("paused")
    page.click("#pause")
    expect(page.locator("#pause")).to_have_text("Pause")
    # A locator, not wait_for_function: polling a string of JavaScript needs eval, which the
    # dashboard's CSP refuses whenever the refresh has not happened at the first look.
    expect(page.locator("body")).to_have_attribute("data-refreshed", re.compile(r"^[1-9]\d*$"))


def test_filter_to_failed_runs_and_read_one(
    server: Server, receiver: Receiver, watched: tuple[Any, Watch]
) -> None:
    page, _ = watched
    ok = server.submit(to=["fine"], message="fine")
    bad = server.submit(channel="webhook", to=[receiver.url], subject="doomed", message="m")
    server.wait_status(bad, "failed")
    page.goto(server.url + "/ui/runs")
    page.select_option("select[name=status]", "failed")
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(server.url + "/ui/runs?status=failed")
    rows = page.locator("#runs tbody tr")
    expect(page.locator(f"tr[data-run='{bad}']")).to_be_visible()
    expect(page.locator(f"tr[data-run='{ok}']")).to_have_count(0)
    for status in rows.evaluate_all("rows => rows.map(r => r.dataset.status)"):
        assert status == "failed"
    page.click(f"a[href='/ui/runs/{bad}']")
    expect(page).to_have_url(f"{server.url}/ui/runs/{bad}")
    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator("#subject")).to_have_text("doomed")
    attempt = page.locator("#attempts li").first
    expect(attempt).to_have_attribute("data-outcome", "permanent_error")
    expect(attempt.locator(".answer")).to_contain_text("410")
    page.click("a[href^='/ui/notifications/']")
    expect(page.locator("#runs")).to_contain_text(bad)


def test_retry_a_failed_run_and_see_it_succeed(
    server: Server, receiver: Receiver, watched: tuple[Any, Watch]
) -> None:
    page, _ = watched
    receiver.status = 410
    run_id = server.submit(channel="webhook", to=[receiver.url], message="again")
    server.wait_status(run_id, "failed")
    page.goto(f"{server.url}/ui/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("failed")
    receiver.status = 200
    page.click("button[data-action=retry]")
    expect(page).to_have_url(f"{server.url}/ui/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    expect(page.locator("#attempts li").first).to_have_attribute("data-outcome", "succeeded")


def test_a_script_recipient_is_shown_as_text(server: Server, watched: tuple[Any, Watch]) -> None:
    page, watch = watched
    run_id = server.submit(to=[HOSTILE], subject=HOSTILE, message=HOSTILE)
    page.goto(f"{server.url}/ui/runs/{run_id}")
    expect(page.locator("#recipient")).to_have_text(HOSTILE)
    expect(page.locator("#subject")).to_have_text(HOSTILE)
    page.goto(f"{server.url}/ui/runs?q=alert")
    expect(page.locator(f"tr[data-run='{run_id}'] .recipient")).to_have_text(HOSTILE)
    assert watch.dialogs == []


def test_docs_render_offline(server: Server, watched: tuple[Any, Watch]) -> None:
    page, _ = watched
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("notifyd")
    page.goto(server.url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("notifyd")
