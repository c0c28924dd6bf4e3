"""Browser tests: Debian's Chromium driven by Playwright against a real ``notifyd serve``.

Every page a test opens is watched: a request to any other host than the server, a console
error or an uncaught page error fails the test when it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import Receiver, ServerProcess, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_ENV = {
    "NOTIFYD_WEBHOOK__ALLOW_CIDRS": '["127.0.0.0/8"]',
    "NOTIFYD_TOKEN_CACHE_SECONDS": "0",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/test_browser" in str(item.fspath):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the whole session (Playwright's own download is not used)."""
    from playwright.sync_api import expect, sync_playwright

    # Generous: two cores are shared with other work; waits end as soon as the page is ready.
    expect.set_options(timeout=20_000)

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Server(ServerProcess):
    """A served dashboard with helpers to submit notifications and make tokens."""

    def submit(self, token: str | None = None, **body: Any) -> str:
        """POST a notification; returns its first run's id."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        answer = httpx.post(self.url + "/v1/notifications", json=body, headers=headers, timeout=10)
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["tasks"][0]["id"]
        return run_id

    def status(self, run_id: str, token: str | None = None) -> str:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        answer = httpx.get(f"{self.url}/v1/tasks/{run_id}", headers=headers, timeout=10)
        status: str = answer.json()["status"]
        return status

    def wait_status(self, run_id: str, status: str, token: str | None = None) -> None:
        wait_for(lambda: self.status(run_id, token) == status, what=f"{run_id} to be {status}")

    def token(self, name: str, scope: str) -> str:
        return self.cli("tokens", "create", name, "--scope", scope).stdout.strip()

    def __enter__(self) -> Server:
        self.start()
        return self


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A webhook peer whose answer a test sets (410: a permanent failure)."""
    with Receiver(status=410) as peer:
        yield peer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An open server (no tokens, loopback), shared by a module's tests."""
    with Server(tmp_path_factory.mktemp("ui") / "home", env=SERVER_ENV) as served:
        yield served


@dataclass
class Watch:
    """What a page did that it should not: requests elsewhere, console errors."""

    origin: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def request(self, request: Any) -> None:
        self.requests.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)


def open_page(browser: Any, origin: str) -> tuple[Any, Any, Watch]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = Watch(origin)
    page.on("request", watch.request)

    def console(message: Any) -> None:
        if message.type == "error":
            watch.errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))

    def dialog(d: Any) -> None:
        # The dashboard asks before cancelling (confirm); anything else (an alert) is a failure.
        if d.type == "confirm":
            d.accept()
        else:
            watch.dialogs.append(d.message)
            d.dismiss()

    page.on("dialog", dialog)
    page.set_default_timeout(20_000)
    return context, page, watch


@pytest.fixture
def watched(browser: Any, server: Server) -> Iterator[tuple[Any, Watch]]:
    """A fresh browser context and page on ``server``, checked when the test ends."""
    context, page, watch = open_page(browser, server.url)
    yield page, watch
    context.close()
    assert not watch.foreign, f"requests left for another host: {watch.foreign}"
    assert not watch.errors, f"console errors: {watch.errors}"
