"""Nothing accepted is lost: SIGKILL mid-delivery and right after 202s; SQLite under 50 clients."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

from tests.support import Receiver, ServerProcess, wait_for

LOOPBACK_ENV = {
    "NOTIFYD_WEBHOOK__ALLOW_CIDRS": '["127.0.0.0/8"]',
    "NOTIFYD_LEASE_SECONDS": "2",
    "NOTIFYD_SWEEP_SECONDS": "0.5",
}


def _post_many(url: str, bodies: list[dict[str, object]], threads: int = 4) -> list[str]:
    """POST every body; return the accepted run ids (all must be accepted)."""
    run_ids: list[str] = []
    lock = threading.Lock()
    chunks = [bodies[i::threads] for i in range(threads)]

    def worker(chunk: list[dict[str, object]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for body in chunk:
                response = client.post("/v1/notifications", json=body)
                assert response.status_code == 202, response.text
                with lock:
                    run_ids.extend(t["id"] for t in response.json()["tasks"])

    workers = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return run_ids


def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Receiver(delay=0.01) as receiver:
        server = ServerProcess(home, env=LOOPBACK_ENV).start()
        try:
            bodies: list[dict[str, object]] = [
                {"channel": "webhook", "to": receiver.url, "message": f"n{i}"} for i in range(1000)
            ]
            accepted = _post_many(server.url, bodies)
            assert len(accepted) == 1000
            wait_for(lambda: receiver.count() >= 200, what="deliveries to be under way")
            server.kill()
            running_at_kill = len(server.runs("--status", "running"))
            assert running_at_kill > 0, "the kill should land mid-delivery"
            server = ServerProcess(home, env=LOOPBACK_ENV, port=server.port).start()
            wait_for(
                lambda: len({h["webhook-id"] for h, _ in receiver.deliveries}) == 1000,
                timeout=120,
                what="every run to be delivered",
            )
        finally:
            server.__exit__()
    by_id: dict[str, int] = defaultdict(int)
    ids_by_message: dict[str, set[str]] = defaultdict(set)
    for headers, body in receiver.deliveries:
        by_id[headers["webhook-id"]] += 1
        ids_by_message[str(body.get("message"))].add(headers["webhook-id"])
    assert set(by_id) == set(accepted), "0 lost, nothing unexpected"
    duplicates = sum(count - 1 for count in by_id.values())
    assert duplicates <= running_at_kill
    # A duplicate is recognisable: the same notification always carries the same delivery id.
    assert all(len(ids) == 1 for ids in ids_by_message.values())


def test_every_acknowledged_notification_survives_a_kill_right_after_its_202(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    acknowledged: list[str] = []
    lock = threading.Lock()
    port = None
    for _round in range(4):
        server = ServerProcess(home, env=LOOPBACK_ENV, port=port).start()
        port = server.port
        stop = threading.Event()

        def poster(server: ServerProcess = server, stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as client:
                while not stop.is_set():
                    try:
                        response = client.post(
                            "/v1/notifications", json={"to": "x", "message": "m"}
                        )
                    except httpx.HTTPError:
                        return  # the server died under us: that request was never acknowledged
                    if response.status_code == 202:
                        with lock:
                            acknowledged.append(response.json()["id"])
                            if len(acknowledged) % 25 == 0:
                                server.kill()  # right after this 202
                                stop.set()

        posters = [threading.Thread(target=poster) for _ in range(6)]
        for p in posters:
            p.start()
        for p in posters:
            p.join(timeout=60)
        server.kill()
    with (
        ServerProcess(home, env=LOOPBACK_ENV, port=port) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        for notification_id in acknowledged:
            assert client.get(f"/v1/notifications/{notification_id}").status_code == 200
        wait_for(
            lambda: len(server.runs("--status", "succeeded")) >= len(acknowledged),
            timeout=60,
            what="every acknowledged notification to be delivered",
        )
    assert len(acknowledged) >= 100


def test_sqlite_takes_50_concurrent_clients_without_lock_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    statuses: dict[int, int] = defaultdict(int)
    errors: list[str] = []
    lock = threading.Lock()
    with ServerProcess(home) as server:
        deadline = time.monotonic() + 4.0

        def client_loop() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while time.monotonic() < deadline:
                    try:
                        code = client.post(
                            "/v1/notifications", json={"to": "x", "message": "m"}
                        ).status_code
                    except httpx.HTTPError as exc:
                        with lock:
                            errors.append(repr(exc))
                        return
                    with lock:
                        statuses[code] += 1

        clients = [threading.Thread(target=client_loop) for _ in range(50)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        stats = httpx.get(server.url + "/v1/tasks/stats").json()
    assert errors == []
    assert set(statuses) == {202}, dict(statuses)
    assert sum(stats["by_status"].values()) == statuses[202]
    assert "database is locked" not in server.log()
