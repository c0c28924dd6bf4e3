"""A `notifyd worker` beside `notifyd serve` on one SQLite file: it takes queued runs at once."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import httpx

from tests.support import NOTIFYD, Receiver, ServerProcess, wait_for


def test_a_worker_on_sqlite_claims_the_servers_queued_runs_long_before_its_poll(
    tmp_path: Path,
) -> None:
    env = {
        "NOTIFYD_WEBHOOK__ALLOW_CIDRS": '["127.0.0.0/8"]',
        "NOTIFYD_CONCURRENCY": "1",  # the server delivers one at a time: the rest wait queued
        "NOTIFYD_POLL_SECONDS": "600",  # nobody looks for due runs unless woken
    }
    with Receiver(delay=0.3) as receiver, ServerProcess(tmp_path / "home", env=env) as server:
        worker_log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [NOTIFYD, "worker"],
            env={**server.env, "NOTIFYD_CONCURRENCY": "8"},
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        try:
            log = tmp_path / "worker.log"
            wait_for(lambda: b"running" in log.read_bytes(), timeout=30, what="the worker")
            accepted = []
            for i in range(12):
                response = httpx.post(
                    server.url + "/v1/notifications",
                    json={"channel": "webhook", "to": receiver.url, "message": f"m{i}"},
                )
                assert response.status_code == 202, response.text
                accepted += [t["id"] for t in response.json()["tasks"]]
            # The server alone would take 12 x 0.3 s; the worker, woken by the server's
            # commits (SQLite has no NOTIFY), takes the queued runs as they come.
            wait_for(lambda: receiver.count() >= 12, timeout=60, what="every delivery")
            with httpx.Client() as client:
                workers = Counter(
                    client.get(f"{server.url}/v1/tasks/{run_id}")
                    .json()["attempts_detail"][0]["worker"]
                    .split(":")[1]  # host:pid:random
                    for run_id in accepted
                )
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
            worker_log.close()
    assert str(worker.pid) in workers and workers[str(worker.pid)] >= 6, workers
    assert sum(workers.values()) == 12
