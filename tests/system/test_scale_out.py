"""Scale-out on PostgreSQL: two servers and a headless worker share one queue."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support import NOTIFYD, Receiver, ServerProcess, wait_for

pytestmark = pytest.mark.postgres


def test_two_servers_and_a_worker_deliver_each_run_once(tmp_path: Path, postgres_url: str) -> None:
    env = {
        "NOTIFYD_DATABASE_URL": postgres_url,
        "NOTIFYD_WEBHOOK__ALLOW_CIDRS": '["127.0.0.0/8"]',
        "NOTIFYD_CONCURRENCY": "4",
        # Every process sharing a store needs the same key for the recipients it encrypts.
        "NOTIFYD_SECRET_KEY": Fernet.generate_key().decode(),
    }
    # Each server delivers what it accepts itself while it has a free slot (a hand-off): posting
    # faster than two servers' 8 slots drain leaves runs queued, for whichever process is free.
    with Receiver(delay=0.02) as receiver:
        first = ServerProcess(tmp_path / "a", env=env).start()
        second = ServerProcess(tmp_path / "b", env=env).start()
        worker_log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [NOTIFYD, "worker"], env=first.env, stdout=worker_log, stderr=subprocess.STDOUT
        )
        try:
            log = tmp_path / "worker.log"
            wait_for(lambda: b"running" in log.read_bytes(), timeout=30, what="the worker")

            def post(i: int) -> list[str]:
                server = first if i % 2 else second
                response = httpx.post(
                    server.url + "/v1/notifications",
                    json={"channel": "webhook", "to": receiver.url, "message": f"m{i}"},
                )
                assert response.status_code == 202, response.text
                return [t["id"] for t in response.json()["tasks"]]

            with ThreadPoolExecutor(16) as pool:
                accepted = [run_id for ids in pool.map(post, range(150)) for run_id in ids]
            wait_for(lambda: receiver.count() >= 150, timeout=60, what="every delivery")
            runs = {r["id"]: r for r in first.runs("--status", "succeeded")}
            assert set(runs) == set(accepted)
            with httpx.Client() as client:
                workers = Counter(
                    client.get(f"{second.url}/v1/tasks/{run_id}")
                    .json()["attempts_detail"][0]["worker"]
                    .rsplit(":", 1)[0]
                    for run_id in accepted
                )
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
            worker_log.close()
            first.__exit__()
            second.__exit__()
    delivered = Counter(headers["webhook-id"] for headers, _ in receiver.deliveries)
    assert set(delivered) == set(accepted) and max(delivered.values()) == 1
    # Three processes (host:pid) took a share of one queue.
    assert len(workers) == 3, workers
