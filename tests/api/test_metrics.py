"""GET /metrics: Prometheus text with what this process accepted and delivered, and the queue."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support import wait_for


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_accepts_attempts_and_the_queue(client: TestClient) -> None:
    for _ in range(3):
        client.post("/v1/notifications", json={"to": ["a", "b"], "message": "m"})
    client.post(
        "/v1/notifications", json={"to": "a", "message": "m"}, headers={"Idempotency-Key": "k"}
    )
    client.post(
        "/v1/notifications", json={"to": "a", "message": "m"}, headers={"Idempotency-Key": "k"}
    )

    def all_delivered() -> bool:
        found = _samples(client)
        return (
            found.get(("notifyd_attempts_total", (("channel", "log"), ("outcome", "succeeded"))))
            == 7
        )

    wait_for(all_delivered, what="7 successful attempts")
    found = _samples(client)
    assert found[("notifyd_notifications_accepted_total", (("channel", "log"),))] == 4  # no replay
    assert found[("notifyd_runs_created_total", (("channel", "log"),))] == 7
    assert found[("notifyd_attempt_duration_seconds_count", (("channel", "log"),))] == 7
    assert found[("notifyd_runs", (("channel", "log"), ("status", "queued")))] == 0
    assert found[("notifyd_runs", (("channel", "log"), ("status", "succeeded")))] == 7
    assert found[("notifyd_runs_due", (("channel", "log"),))] == 0
    assert found[("notifyd_oldest_due_run_age_seconds", ())] == 0
    assert ("notifyd_runs_in_flight", ()) in found
    assert found[("notifyd_accept_duration_seconds_count", (("endpoint", "api"),))] == 4
    assert found[("notifyd_delivery_latency_seconds_count", (("channel", "log"),))] == 7
    assert not [name for name, _labels in found if name.endswith("_created")]


def test_metrics_show_waiting_runs(held_client: TestClient) -> None:
    client = held_client
    client.post("/v1/notifications", json={"to": ["a", "b"], "message": "m"})
    found = _samples(client)
    assert found[("notifyd_runs", (("channel", "log"), ("status", "queued")))] == 2
    assert found[("notifyd_runs_due", (("channel", "log"),))] == 2
    assert found[("notifyd_oldest_due_run_age_seconds", ())] >= 0
