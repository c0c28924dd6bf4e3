"""``python -m bench.soak`` (``make soak``): a bounded soak of the real ``notifyd serve``.

Mixed load on 127.0.0.1 (log, email to an aiosmtpd server the soak stops and starts, webhooks
with tokens in their URLs to receivers that answer 500, 503 or slowly by turns, an inbox topic
followed by a subscriber that reconnects with ``since``) while the server is SIGKILLed and
restarted every ``--kill-every`` seconds on the same home and port, and its secret key is
rotated half way. Then peers are made healthy, the runs drain, and every accepted run is checked
against the store and the peers' own records. It prints accepted, delivered, lost, duplicated
(at-least-once: expected after a kill, counted by delivery id), stuck, RSS per incarnation and
read latencies, and exits 1 on any lost or stuck run. ``--minutes`` bounds it (default 10).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from bench.soak_load import Incarnation, Publishers, Readers, RssSampler
from bench.soak_peers import InboxSubscriber, SmtpServer, WebhookReceiver
from bench.soak_report import UNFINISHED, judge, log_deliveries, print_report, server_runs
from bench.support import NotifydServe, free_port, title

# A short retry schedule, so that every run settles in the drain: 8 attempts over ~100 s,
# longer than any SMTP outage the soak makes.
RETRY_SCHEDULE = "[1, 2, 5, 10, 20, 30]"
WEBHOOK_TIMEOUT = 5.0
CONFIG = """
[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from_address = "notifyd@soak.test"
timeout = 5

[inbox]
keepalive_seconds = 5

[destinations.phone]
channel = "inbox"
to = ["phone"]
"""


@dataclass(frozen=True)
class Options:
    """How long, how hard and how often things break."""

    minutes: float
    kill_every: float
    rate: float
    smtp_every: float
    smtp_down: float
    drain: float
    keep: Path | None


def parse() -> Options:
    """The command line (each option also from its SOAK_* environment variable)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])

    def option(name: str, default: float, text: str) -> None:
        env = "SOAK_" + name.upper().replace("-", "_")
        parser.add_argument(f"--{name}", type=float, default=float(os.environ.get(env, default)),
                            help=f"{text} (default {default:g}; env {env})")  # fmt: skip

    option("minutes", 10, "how long the load runs")
    option("kill-every", 120, "seconds between SIGKILLs of the server")
    option("rate", 20, "notifications submitted per second")
    option("smtp-every", 150, "seconds between SMTP outages")
    option("smtp-down", 40, "how long each SMTP outage lasts, in seconds")
    option("drain", 180, "seconds allowed after the load for every run to finish")
    parser.add_argument("--keep", type=Path, help="copy the server's home here at the end")
    args = parser.parse_args()
    return Options(
        args.minutes, args.kill_every, args.rate, args.smtp_every, args.smtp_down, args.drain,
        args.keep,
    )  # fmt: skip


def timeline(options: Options) -> list[tuple[float, str]]:
    """When the kills, the SMTP outages and the rotation happen, in soak seconds."""
    duration = options.minutes * 60
    events = [
        (k * options.kill_every, "kill") for k in range(1, int(duration / options.kill_every) + 1)
    ]
    events = [(at, what) for at, what in events if at < duration - 5]
    # Half way between the two kills around the middle: the rotation runs while a server serves.
    gap = min(options.kill_every, duration)
    events.append(((int(duration / 2 / gap) + 0.5) * gap, "rotate"))
    start = 50.0
    while start + options.smtp_down < duration:
        events += [(start, "smtp down"), (start + options.smtp_down, "smtp up")]
        start += options.smtp_every
    return sorted(events)


class Soak:
    """The server, its peers and the traffic, and the clock they share."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.started = time.monotonic()
        self.events: list[str] = []
        self.smtp = SmtpServer(free_port())
        self.smtp.start()
        self.receivers = [
            WebhookReceiver(timeout=WEBHOOK_TIMEOUT, offset=n, seed=n) for n in range(2)
        ]
        self.server = NotifydServe(CONFIG.format(smtp_port=self.smtp.port))
        self.server.env |= {
            "NOTIFYD_RETRY__SCHEDULE": RETRY_SCHEDULE,
            "NOTIFYD_WEBHOOK__ALLOW_CIDRS": '["127.0.0.0/8"]',
            "NOTIFYD_WEBHOOK__TIMEOUT": str(WEBHOOK_TIMEOUT),
        }
        self.incarnations: list[Incarnation] = []
        self.alive: Incarnation | None = None
        self.rotation: threading.Thread | None = None
        self.rotation_failed = False

    def now(self) -> float:
        """Seconds since the soak began."""
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        """Print and keep one line of what happened."""
        line = f"{self.now():6.1f} s  {text}"
        self.events.append(line)
        print(line, flush=True)

    def start_server(self) -> None:
        """Start (again, same home and port) and wait until it answers."""
        began = self.now()
        self.server.start()
        self.alive = Incarnation(len(self.incarnations) + 1, self.server.pid, began)
        self.incarnations.append(self.alive)
        self.note(
            f"server #{self.alive.number} (pid {self.server.pid}) up in {self.now() - began:.1f} s"
        )

    def kill_server(self) -> None:
        """SIGKILL: no shutdown code runs."""
        life, self.alive = self.alive, None
        assert life is not None and self.server.proc is not None
        self.server.proc.send_signal(signal.SIGKILL)
        self.server.proc.wait(10)
        life.ended, life.end = self.now(), "SIGKILLed"
        self.note(f"SIGKILL server #{life.number}")

    def rotate(self) -> None:
        """``notifyd secrets rotate`` with the server's environment, in a thread (load goes on)."""

        def run() -> None:
            began = self.now()
            self.note("notifyd secrets rotate: started")
            env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")}
            script = Path(sys.executable).parent / "notifyd"
            done = subprocess.run(
                [str(script), "secrets", "rotate"], env=env | self.server.env,
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            said = " ".join((done.stdout + done.stderr).split())  # Rich wraps its lines
            self.rotation_failed = done.returncode != 0
            self.note(
                f"notifyd secrets rotate: exit {done.returncode} in {self.now() - began:.1f} s: {said}"
            )

        self.rotation = threading.Thread(target=run, daemon=True)
        self.rotation.start()

    def act(self, what: str) -> None:
        """One event of the timeline."""
        if what == "kill":
            self.kill_server()
            self.start_server()
        elif what == "rotate":
            self.rotate()
        elif what == "smtp down":
            self.smtp.stop()
            self.note("SMTP server stopped")
        elif what == "smtp up":
            self.smtp.start()
            self.note("SMTP server started")

    def open_runs(self) -> int | None:
        """Runs not finished yet, from the stats (None while unanswered)."""
        try:
            stats = httpx.get(self.server.url + "/v1/tasks/stats", timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return None
        return sum(int(stats["by_status"].get(status, 0)) for status in UNFINISHED)

    def drain(self, settled: Callable[[], bool]) -> None:
        """Peers healthy; wait until every run is finished and arrived, or the drain window ends."""
        self.smtp.start()
        for receiver in self.receivers:
            receiver.healthy = True
        self.note("load stopped; SMTP up, receivers healthy: draining")
        deadline = time.monotonic() + self.options.drain
        open_runs = None
        while time.monotonic() < deadline:
            open_runs = self.open_runs()
            if open_runs == 0 and settled():
                self.note("drained: no run unfinished, every peer has what succeeded")
                return
            time.sleep(1)
        self.note(
            f"drain window ({self.options.drain:.0f} s) over with {open_runs} run(s) unfinished"
        )

    def close(self, *, failed: bool) -> None:
        """Stop everything the soak started; keep the server's home when asked or on failure."""
        proc = self.server.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        keep = self.options.keep or (
            Path(f"/tmp/notifyd-soak-{int(time.time())}") if failed else None
        )
        if keep is not None:
            shutil.copytree(self.server.home, keep, dirs_exist_ok=True)
            print(f"the server's home is kept in {keep}")
        self.server.stop()
        self.smtp.stop()
        for receiver in self.receivers:
            receiver.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Run the soak; 0 when nothing was lost or stuck."""
    options = parse()
    signal.signal(signal.SIGTERM, _interrupt)
    title(
        f"soak: {options.minutes:g} min at {options.rate:g}/s, SIGKILL every {options.kill_every:g} s, "
        f"SMTP down {options.smtp_down:g} s every {options.smtp_every:g} s, key rotation half way"
    )
    soak = Soak(options)
    failed = True
    stoppers: list[Callable[[], None]] = []
    try:
        soak.start_server()
        subscriber = InboxSubscriber(soak.server.url, "phone")
        stoppers.append(subscriber.close)
        time.sleep(1)  # subscribed before the first message
        rss = RssSampler(lambda: soak.alive, soak.now)
        readers = Readers(lambda: soak.server.url)
        publishers = Publishers(lambda: soak.server.url, soak.receivers, rate=options.rate)
        stoppers += [rss.close, readers.close, publishers.stop.set]
        plan = timeline(options)
        duration = options.minutes * 60
        next_progress = 30.0
        while (now := soak.now()) < duration:
            while plan and plan[0][0] <= now:
                soak.act(plan.pop(0)[1])
            if now >= next_progress:
                life = soak.alive
                rss_now = f"{life.rss[-1][1] / 1024:.0f} MiB" if life and life.rss else "-"
                soak.note(f"accepted {len(publishers.accepted.notifications):,}, "
                          f"open runs {soak.open_runs()}, RSS {rss_now}")  # fmt: skip
                next_progress += 30
            time.sleep(0.2)
        publishers.join()
        readers.close()
        if soak.rotation is not None:
            soak.rotation.join(300)
        accepted = publishers.accepted
        mailbox = soak.smtp.mailbox

        def settled() -> bool:
            texts = accepted.inbox_texts.values()
            return all(subscriber.seen(text) for text in texts)

        soak.drain(settled)
        runs = server_runs(soak.server.url)
        rss.sample()
        rss.close()
        subscriber.close()
        verdict = judge(
            accepted,
            runs,
            log=log_deliveries(soak.server.home / "notifications.log"),
            mailbox=mailbox,
            receivers=soak.receivers,
            subscriber=subscriber,
        )
        log_text = (soak.server.home / "server.log").read_text(errors="replace")
        print_report(
            accepted=accepted,
            verdict=verdict,
            incarnations=soak.incarnations,
            readers=readers,
            events=soak.events,
            subscriber=subscriber,
            receivers=soak.receivers,
            server_errors=[
                line for line in log_text.splitlines() if "ERROR" in line or "Traceback" in line
            ],
        )
        failed = bool(verdict.lost or verdict.stuck or soak.rotation_failed or accepted.problems)
        print(f"\nsoak {'FAILED' if failed else 'passed'}: {len(verdict.lost)} lost, "
              f"{len(verdict.stuck)} stuck, {sum(verdict.duplicates.values())} duplicated", flush=True)  # fmt: skip
        return 1 if failed else 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything the soak started", flush=True)
        failed = False
        return 130
    finally:
        for stop in stoppers:
            with contextlib.suppress(Exception):
                stop()
        soak.close(failed=failed)


if __name__ == "__main__":
    sys.exit(main())
