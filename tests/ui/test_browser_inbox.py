"""The web inbox in Chromium: a topic's messages live over SSE, shown as text, with browser
notifications, across a server's SIGKILL and restart, and behind the dashboard's login."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support import ServerProcess, wait_for
from tests.ui.conftest import SERVER_ENV, Server, Watch, open_page

TOPICS = ("phone", "pager", "desk", "hostile", "kept")
SCRIPT = "<script>window.pwned=1</script>"
IMAGE = "<img src=x onerror=window.pwned=2>"
# Injected by the browser before the page's own scripts (the CSP forbids inline and eval, not
# this): each Notification the page constructs is recorded, then shown as usual.
RECORD_NOTIFICATIONS = """
window.__notifications = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) {
    window.__notifications.push({title, body: options && options.body, tag: options && options.tag});
    super(title, options);
  }
};
"""


def write_config(directory: Path) -> Path:
    config = directory / "notifyd.toml"
    config.write_text(
        "".join(f'[destinations.{t}]\nchannel = "inbox"\nto = ["{t}"]\n\n' for t in TOPICS)
    )
    return config


def inbox_env(directory: Path) -> dict[str, str]:
    return {**SERVER_ENV, "NOTIFYD_CONFIG": str(write_config(directory))}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An open server (no tokens, loopback) whose destinations are inbox topics."""
    directory = tmp_path_factory.mktemp("ui-inbox")
    with Server(directory / "home", env=inbox_env(directory)) as served:
        yield served


def publish(
    server: ServerProcess, topic: str, message: str, *, title: str = "", token: str | None = None
) -> str:
    """ntfy's ``POST /<topic>`` with a Title header; returns the notification's id."""
    headers = {"title": title} if title else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    answer = httpx.post(f"{server.url}/{topic}", content=message, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    notification_id: str = answer.json()["id"]
    return notification_id


def open_inbox(page: Any, server: ServerProcess, topic: str) -> Any:
    """Open a topic's inbox and wait until its stream is open; returns the list."""
    page.goto(f"{server.url}/ui/inbox/{topic}")
    inbox = page.locator("#inbox")
    expect(inbox).to_have_attribute("data-state", "live")
    expect(page.locator("#inbox-state")).to_have_text("live")
    return inbox


def messages(page: Any) -> list[str]:
    shown: list[str] = page.locator("#inbox li[data-id] .message").all_text_contents()
    return shown


def test_new_messages_appear_in_order_without_reload(
    server: Server, watched: tuple[Any, Watch]
) -> None:
    page, watch = watched
    inbox = open_inbox(page, server, "phone")
    expect(page.locator("#inbox-empty")).to_be_visible()
    for n in ("one", "two", "three"):
        publish(server, "phone", n, title=f"Title {n}")
    items = inbox.locator("li[data-id]")
    expect(items).to_have_count(3)
    assert messages(page) == ["three", "two", "one"]  # newest first
    expect(items.first.locator(".title")).to_have_text("Title three")
    expect(page.locator("#inbox-empty")).to_have_count(0)
    assert len(set(items.evaluate_all("items => items.map(i => i.dataset.id)"))) == 3
    # One page load: the messages came over the stream.
    loads = [url for url in watch.requests if url.endswith("/ui/inbox/phone")]
    assert loads == [f"{server.url}/ui/inbox/phone"]
    assert any("/ui/inbox/phone/events" in url for url in watch.requests)


def test_hostile_titles_and_messages_are_text(server: Server, watched: tuple[Any, Watch]) -> None:
    page, watch = watched
    inbox = open_inbox(page, server, "hostile")
    publish(server, "hostile", IMAGE, title=SCRIPT)
    publish(server, "hostile", SCRIPT, title=IMAGE)
    items = inbox.locator("li[data-id]")
    expect(items).to_have_count(2)
    assert messages(page) == [SCRIPT, IMAGE]
    assert items.locator(".title").all_text_contents() == [IMAGE, SCRIPT]
    expect(inbox.locator("img")).to_have_count(0)
    expect(inbox.locator("script")).to_have_count(0)
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert not [url for url in watch.requests if url.endswith("/x")]  # no image was fetched
    # Kept and shown by the server this time: escaped by the template.
    page.reload()
    expect(items).to_have_count(2)
    assert messages(page) == [SCRIPT, IMAGE]
    expect(inbox.locator("img")).to_have_count(0)
    assert page.evaluate("typeof window.pwned") == "undefined"
    html = httpx.get(f"{server.url}/ui/inbox/hostile", timeout=10).text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=window.pwned=2&gt;" in html
    assert SCRIPT not in html and "<img src=x" not in html
    assert watch.dialogs == []


def test_kept_messages_are_shown_and_followed(server: Server, watched: tuple[Any, Watch]) -> None:
    page, _ = watched
    publish(server, "kept", "older", title="A")
    publish(server, "kept", "newer", title="B")
    inbox = open_inbox(page, server, "kept")
    assert messages(page) == ["newer", "older"]
    publish(server, "kept", "live")
    expect(inbox.locator("li[data-id]")).to_have_count(3)
    assert messages(page) == ["live", "newer", "older"]


def test_a_browser_notification_for_each_new_message(browser: Any, server: Server) -> None:
    context, page, watch = open_page(browser, server.url)
    try:
        page.add_init_script(RECORD_NOTIFICATIONS)
        open_inbox(page, server, "pager")
        assert page.evaluate("Array.isArray(window.__notifications)")  # the init script ran
        allow = page.locator("#notify-allow")
        # Not granted yet: the page offers the button; the user allows (Playwright grants).
        expect(allow).to_be_visible()
        context.grant_permissions(["notifications"], origin=server.url)
        allow.click()
        expect(allow).to_be_hidden()
        expect(page.locator("#notify-state")).to_have_text("browser notifications on")
        publish(server, "pager", "disk full on db1", title="Disk")
        publish(server, "pager", "no title here")
        expect(page.locator("#inbox li[data-id]")).to_have_count(2)
        shown = wait_for(
            lambda: page.evaluate("window.__notifications.length == 2 && window.__notifications"),
            what="two notifications",
        )
        ids = page.locator("#inbox li[data-id]").evaluate_all(
            "items => items.map(i => i.dataset.id)"
        )
        assert shown == [
            {"title": "Disk", "body": "disk full on db1", "tag": ids[1]},
            {"title": "pager", "body": "no title here", "tag": ids[0]},  # the topic stands in
        ]
    finally:
        context.close()
    assert not watch.errors, f"console errors: {watch.errors}"


def test_granted_before_the_page_opens_no_button(browser: Any, server: Server) -> None:
    context, page, watch = open_page(browser, server.url)
    try:
        context.grant_permissions(["notifications"], origin=server.url)
        page.add_init_script(RECORD_NOTIFICATIONS)
        open_inbox(page, server, "desk")
        expect(page.locator("#notify-allow")).to_be_hidden()
        expect(page.locator("#notify-state")).to_have_text("browser notifications on")
        publish(server, "desk", SCRIPT, title=IMAGE)
        expect(page.locator("#inbox li[data-id]")).to_have_count(1)
        shown = wait_for(
            lambda: page.evaluate("window.__notifications.length && window.__notifications"),
            what="a notification",
        )
        assert [(n["title"], n["body"]) for n in shown] == [(IMAGE, SCRIPT)]
    finally:
        context.close()
    assert not watch.errors, f"console errors: {watch.errors}"


def test_the_topic_list_shows_configured_topics(server: Server, watched: tuple[Any, Watch]) -> None:
    page, _ = watched
    page.goto(server.url + "/ui/inbox")
    links = page.locator("#topics a")
    for topic in TOPICS:
        expect(links.filter(has_text=topic)).to_have_attribute("href", f"/ui/inbox/{topic}")
    links.filter(has_text="pager").click()
    expect(page).to_have_url(server.url + "/ui/inbox/pager")
    expect(page.locator("#inbox")).to_have_attribute("data-state", "live")


def test_after_sigkill_and_restart_the_page_catches_up_without_duplicates(
    browser: Any, tmp_path: Path
) -> None:
    env = inbox_env(tmp_path)
    first = ServerProcess(tmp_path / "home", env=env).start()
    context, page, watch = open_page(browser, first.url)
    second: ServerProcess | None = None
    try:
        inbox = open_inbox(page, first, "phone")
        publish(first, "phone", "before")
        items = inbox.locator("li[data-id]")
        expect(items).to_have_count(1)
        first.kill()
        expect(inbox).to_have_attribute("data-state", "reconnecting")
        second = ServerProcess(tmp_path / "home", env=env, port=first.port).start()
        # Published while the page may still be waiting to retry: it asks since the last
        # message it saw, so this one comes either way, and once.
        publish(second, "phone", "while away")
        expect(inbox).to_have_attribute("data-state", "live", timeout=60_000)
        publish(second, "phone", "after")
        expect(items).to_have_count(3)
        assert messages(page) == ["after", "while away", "before"]
        ids = items.evaluate_all("items => items.map(i => i.dataset.id)")
        assert len(set(ids)) == 3
    finally:
        context.close()
        if second is not None:
            second.__exit__()
        first.kill()
    assert not watch.foreign, watch.foreign
    # The EventSource reports the refused reconnects as console errors: only those are allowed.
    assert all("/ui/inbox/phone/events" in e or "ERR_" in e for e in watch.errors), watch.errors


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("ui-inbox-auth")
    with Server(directory / "home", env=inbox_env(directory)) as served:
        tokens = {scope: served.token(f"inbox-{scope}", scope) for scope in ("read", "send")}
        yield served, tokens


def test_a_read_token_logs_in_and_reads_the_inbox(
    browser: Any, secured: tuple[Server, dict[str, str]]
) -> None:
    server, tokens = secured
    publish(server, "phone", SCRIPT, title="kept", token=tokens["send"])
    context, page, watch = open_page(browser, server.url)
    try:
        page.goto(server.url + "/ui/inbox")
        expect(page).to_have_url(server.url + "/ui/login?next=%2Fui%2Finbox")
        assert SCRIPT not in page.content() and "window.pwned" not in page.content()
        page.fill("#token", tokens["read"])
        page.click("#login button[type=submit]")
        expect(page).to_have_url(server.url + "/ui/inbox")
        page.locator("#topics a").filter(has_text="phone").click()
        inbox = page.locator("#inbox")
        expect(inbox).to_have_attribute("data-state", "live")
        assert messages(page) == [SCRIPT]
        publish(server, "phone", "fresh", token=tokens["send"])
        expect(inbox.locator("li[data-id]")).to_have_count(2)
        assert messages(page) == ["fresh", SCRIPT]
        assert page.evaluate("typeof window.pwned") == "undefined"
    finally:
        context.close()
    assert not watch.foreign and not watch.errors, (watch.foreign, watch.errors)
    # Without the session the stream refuses: the page's login is what lets it in.
    assert httpx.get(server.url + "/ui/inbox/phone/events", timeout=10).status_code == 401


def test_when_the_session_ends_the_page_asks_for_the_login_again(
    browser: Any, tmp_path: Path
) -> None:
    env = {**inbox_env(tmp_path), "NOTIFYD_TOKEN_CACHE_SECONDS": "0"}
    first = ServerProcess(tmp_path / "home", env=env).start()
    reader = first.cli("tokens", "create", "reader", "--scope", "read").stdout.strip()
    context, page, watch = open_page(browser, first.url)
    second: ServerProcess | None = None
    try:
        page.goto(first.url + "/ui/inbox/phone")
        page.fill("#token", reader)
        page.click("#login button[type=submit]")
        expect(page).to_have_url(first.url + "/ui/inbox/phone")
        expect(page.locator("#inbox")).to_have_attribute("data-state", "live")
        # Sessions live in the server's memory: a restart ends them. The stream is refused
        # from then on (401), which an EventSource cannot tell from a cut: the page must not
        # stay "reconnecting" for ever.
        first.kill()
        second = ServerProcess(tmp_path / "home", env=env, port=first.port).start()
        expect(page).to_have_url(first.url + "/ui/login?next=%2Fui%2Finbox%2Fphone", timeout=60_000)
        page.fill("#token", reader)
        page.click("#login button[type=submit]")
        expect(page.locator("#inbox")).to_have_attribute("data-state", "live")
    finally:
        context.close()
        if second is not None:
            second.__exit__()
        first.kill()
    assert not watch.foreign, watch.foreign
    assert all("/ui/inbox/phone" in e or "ERR_" in e or "401" in e for e in watch.errors), (
        watch.errors
    )
