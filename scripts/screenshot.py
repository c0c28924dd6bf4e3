"""Make the README's dashboard screenshot again: ``.venv/bin/python scripts/screenshot.py``.

Starts ``notifyd serve`` on a free loopback port with a throwaway data dir, sends a few
notifications (some to a local webhook peer that answers 410, so they fail), waits for them to
settle, and has Debian's Chromium (the browser tests' set-up) photograph ``/ui/``.
Writes ``docs/dashboard.png`` unless given another path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
NOTIFYD = str(Path(sys.executable).parent / "notifyd")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Gone(BaseHTTPRequestHandler):
    """A webhook peer that answers 410 Gone: a permanent failure."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(410)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait(check: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    peer = ThreadingHTTPServer(("127.0.0.1", 0), Gone)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{peer.server_address[1]}/hook"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")},
            "NOTIFYD_HOME": home,
            "NOTIFYD_WEBHOOK__ALLOW_CIDRS": '["127.0.0.0/8"]',
        }
        server = subprocess.Popen(
            [NOTIFYD, "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait(lambda: httpx.get(url + "/healthz").status_code == 200, "the server")
            people = ["alice@example.org", "bob@example.org", "ops-team", "carol", "dave"]
            for i, name in enumerate(people * 3):
                note = {"to": [name], "subject": f"Backup {i} finished", "message": "ok"}
                httpx.post(url + "/v1/notifications", json=note).raise_for_status()
            for i in range(3):
                note = {"channel": "webhook", "to": [hook], "message": f"deploy {i} failed"}
                httpx.post(url + "/v1/notifications", json=note).raise_for_status()
            wait(
                lambda: httpx.get(url + "/v1/tasks/stats").json()["by_status"]["failed"] == 3,
                "the runs to settle",
            )
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url + "/ui/")
                page.click("#pause")  # a still picture
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            peer.shutdown()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png")
