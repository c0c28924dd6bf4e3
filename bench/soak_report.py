"""The soak's verdict: every accepted run against the server's record and the peers' own, and
the figures printed at the end."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.soak_load import Accepted, Incarnation, Readers
from bench.soak_peers import InboxSubscriber, Mailbox, WebhookReceiver
from bench.support import mib, percentile, row, title

UNFINISHED = ("queued", "running", "retrying")


def server_runs(url: str) -> dict[str, dict[str, Any]]:
    """Every run the server holds, by id (the task list, page after page)."""
    runs: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    with httpx.Client(timeout=30) as client:
        while True:
            params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
            page = client.get(f"{url}/v1/tasks", params=params).raise_for_status().json()
            runs.update((run["id"], run) for run in page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return runs


def log_deliveries(path: Path) -> Counter[str]:
    """The log channel's lines, counted by delivery id."""
    found: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                found[json.loads(line)["delivery_id"]] += 1
            except (ValueError, KeyError, TypeError):
                found["(unreadable line)"] += 1
    return found


@dataclass
class Verdict:
    """Each accepted run sorted: delivered, lost (and why), stuck; duplicates by delivery id."""

    delivered_runs: int = 0
    delivered_notifications: int = 0
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    duplicates: Counter[str] = field(default_factory=Counter)  # kind -> extra copies
    unasked: int = 0  # runs the server holds that no accepted answer named
    attempts: dict[str, int] = field(default_factory=dict)  # kind -> most attempts one run took
    by_status: Counter[str] = field(default_factory=Counter)


def judge(
    accepted: Accepted,
    runs: dict[str, dict[str, Any]],
    *,
    log: Counter[str],
    mailbox: Mailbox,
    receivers: list[WebhookReceiver],
    subscriber: InboxSubscriber,
) -> Verdict:
    """Sort every accepted run by what the server and the peer say happened to it."""
    verdict = Verdict()
    webhooks: Counter[str] = Counter()
    for receiver in receivers:
        webhooks.update(receiver.deliveries)
    failed_notifications: set[str] = set()
    for run_id, (kind, notification) in accepted.runs.items():
        run = runs.get(run_id)
        if run is None:
            verdict.lost.append(f"{run_id} ({kind}): accepted, not in the store")
            failed_notifications.add(notification)
            continue
        status = run["status"]
        verdict.by_status[status] += 1
        verdict.attempts[kind] = max(verdict.attempts.get(kind, 0), run["attempts"])
        if status in UNFINISHED:
            verdict.stuck.append(f"{run_id} ({kind}): {status}, due {run['next_attempt_at']}")
            failed_notifications.add(notification)
            continue
        if status != "succeeded":
            verdict.lost.append(f"{run_id} ({kind}): {status}: {run['last_error']}")
            failed_notifications.add(notification)
            continue
        if kind == "inbox":
            copies = subscriber.texts[accepted.inbox_texts[run_id]]
        else:
            copies = {"log": log, "email": mailbox.deliveries, "webhook": webhooks}[kind][run_id]
        if copies == 0:
            verdict.lost.append(f"{run_id} ({kind}): succeeded, but its peer never got it")
            failed_notifications.add(notification)
            continue
        verdict.delivered_runs += 1
        verdict.duplicates[kind] += copies - 1
    verdict.delivered_notifications = len(set(accepted.notifications) - failed_notifications)
    verdict.unasked = len(set(runs) - set(accepted.runs))
    return verdict


def print_report(
    *,
    accepted: Accepted,
    verdict: Verdict,
    incarnations: list[Incarnation],
    readers: Readers,
    events: list[str],
    subscriber: InboxSubscriber,
    receivers: list[WebhookReceiver],
    server_errors: list[str],
) -> None:
    """Print the soak's figures."""
    title("soak: what happened")
    for event in events:
        print(f"  {event}")
    title("soak: deliveries")
    kinds = Counter(kind for kind, _ in accepted.runs.values())
    row("accepted notifications", f"{len(accepted.notifications):,}")
    row("accepted runs (" + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())) + ")",
        f"{len(accepted.runs):,}")  # fmt: skip
    row("delivered notifications (every run succeeded, peer has it)",
        f"{verdict.delivered_notifications:,}")  # fmt: skip
    row("delivered runs", f"{verdict.delivered_runs:,}")
    row("lost runs", f"{len(verdict.lost):,}")
    row("stuck runs (unfinished after the drain)", f"{len(verdict.stuck):,}")
    dupes = ", ".join(f"{k} {n}" for k, n in sorted(verdict.duplicates.items()) if n) or "none"
    row(f"duplicated deliveries, at-least-once ({dupes})", f"{sum(verdict.duplicates.values()):,}")
    row("runs in the store no answer named", f"{verdict.unasked:,}")
    row("run states at the end", ", ".join(f"{s} {n:,}" for s, n in verdict.by_status.items()))
    row(
        "most attempts one run took",
        ", ".join(f"{k} {n}" for k, n in sorted(verdict.attempts.items())),
    )
    for what, n in sorted(accepted.counts.items()):
        row(f"submissions: {what}", f"{n:,}")
    for problem in accepted.problems[:5]:
        row("submission refused", problem)
    latencies = sorted(accepted.latencies)
    row("accept latency p50 / p99 (answered at the first try)",
        f"{percentile(latencies, 0.5) * 1000:.1f} ms", f"{percentile(latencies, 0.99) * 1000:.1f} ms")  # fmt: skip
    dup_ids = sum(n - 1 for n in subscriber.ids.values() if n > 1)
    row("inbox subscriber: connections, messages, repeated ids",
        f"{subscriber.connections}", f"{sum(subscriber.ids.values()):,}", f"{dup_ids}")  # fmt: skip
    for n, receiver in enumerate(receivers, 1):
        answers = ", ".join(f"{a} x {c:,}" for a, c in sorted(receiver.answers.items()))
        row(f"webhook receiver {n} answered", answers)
    for line in (verdict.lost + verdict.stuck)[:20]:
        print(f"    {line}")
    title("soak: server memory (VmRSS) per incarnation")
    for life in incarnations:
        if not life.rss:
            continue
        values = [kib for _, kib in life.rss]
        ended = f"{life.ended:.0f}" if life.ended is not None else "end"
        row(f"#{life.number} pid {life.pid}, {life.started:.0f}-{ended} s, {life.end}",
            f"first {mib(values[0])}", f"max {mib(max(values))}", f"last {mib(values[-1])}")  # fmt: skip
        series, next_at = [], life.rss[0][0]
        for at, kib in life.rss:
            if at >= next_at:
                series.append(f"{at:.0f}s {kib / 1024:.0f}")
                next_at = at + 30
        print("      MiB over time: " + ", ".join(series))
    title("soak: read latencies while the soak ran")
    for path in readers.latencies:
        count, p50, p99, worst = readers.summary(path)
        row(
            f"GET {path} ({count:,} reads)",
            f"p50 {p50:.1f} ms",
            f"p99 {p99:.1f} ms",
            f"max {worst:.0f} ms",
        )
    for what, n in sorted(readers.errors.items()):
        row(f"reads unanswered: {what}", f"{n:,}")
    title("soak: server log")
    row("ERROR or Traceback lines", f"{len(server_errors):,}")
    for line in server_errors[:10]:
        print(f"    {line[:200]}")
