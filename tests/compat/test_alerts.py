"""Alertmanager and Grafana webhooks: subject, message, data, priority, dedup, auth."""

from __future__ import annotations

import base64
import copy
import json

from notifyd.compat.alerts import bounded, message, subject
from notifyd.config import MAX_DATA_BYTES
from tests.compat.conftest import Server, fixture

AM = "/v1/hooks/alertmanager/alerts"


def test_alertmanager_payload_becomes_one_notification(server: Server) -> None:
    payload = fixture("alertmanager_firing.json")
    answer = server.client.post(AM, json=payload)
    assert answer.status_code == 202, answer.text
    [line] = server.delivered()
    assert line["subject"] == "[FIRING:2] DiskFull"
    assert line["message"].splitlines() == [
        "[FIRING] alertname=DiskFull instance=db-1:9100 job=node severity=page",
        "  Disk almost full on db-1",
        "[FIRING] alertname=DiskFull instance=db-2:9100 job=node severity=page",
        "  Disk almost full on db-2",
    ]
    assert line["data"] == payload
    assert line["priority"] == 5  # severity page


def test_repeats_are_delivered_once_and_changes_at_once(server: Server) -> None:
    payload = fixture("alertmanager_firing.json")
    first = server.client.post(AM, json=payload)
    assert first.status_code == 202
    repeat = copy.deepcopy(payload)
    repeat["alerts"][0]["annotations"]["description"] = "/var is 94% full"  # values move
    again = server.client.post(AM, json=repeat)
    assert again.status_code == 200 and again.headers["Idempotency-Replay"] == "true"
    assert again.json()["id"] == first.json()["id"]
    resolved = copy.deepcopy(payload)
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
    changed = server.client.post(AM, json=resolved)
    assert changed.status_code == 202 and changed.json()["id"] != first.json()["id"]
    fewer = copy.deepcopy(payload)
    fewer["alerts"] = fewer["alerts"][:1]
    assert server.client.post(AM, json=fewer).status_code == 202
    lines = server.delivered(3)
    assert [line["subject"] for line in lines] == [
        "[FIRING:2] DiskFull",
        "[RESOLVED:2] DiskFull",
        "[FIRING:1] DiskFull",
    ]
    assert lines[1]["priority"] == 3


def test_grafana_payload(server: Server) -> None:
    payload = fixture("grafana_firing.json")
    answer = server.client.post("/v1/hooks/grafana/deploys", json=payload)
    assert answer.status_code == 202, answer.text
    [line] = server.delivered()
    assert line["subject"] == "[FIRING:2] High memory usage"
    assert "alertname=High CPU usage team=blue zone=eu-1" in line["message"]
    assert "This alert was triggered for zone us-1" in line["message"]
    assert line["data"] == payload
    assert line["priority"] == 4


def test_large_payload_is_kept_in_a_bounded_form() -> None:
    payload = fixture("alertmanager_firing.json")
    template = payload["alerts"][0]
    payload["alerts"] = []
    for n in range(200):
        alert = copy.deepcopy(template)
        alert["labels"]["instance"] = f"host-{n}:9100"
        alert["fingerprint"] = f"{n:016x}"
        payload["alerts"].append(alert)
    kept = bounded(payload)
    assert len(json.dumps(kept).encode()) <= MAX_DATA_BYTES
    marker = kept["notifyd_truncated"]
    assert marker["alerts_total"] == 200
    assert 0 < marker["alerts_kept"] == len(kept["alerts"]) < 200
    assert "generatorURL" not in kept["alerts"][0]
    assert kept["groupKey"] == payload["groupKey"]
    assert subject(payload) == "[FIRING:200] DiskFull"
    assert message(payload).count("[FIRING]") == 200


def test_large_payload_is_accepted(server: Server) -> None:
    payload = fixture("alertmanager_firing.json")
    payload["alerts"] = payload["alerts"] * 60
    for n, alert in enumerate(payload["alerts"]):
        alert = payload["alerts"][n] = copy.deepcopy(alert)
        alert["fingerprint"] = f"{n:016x}"
    answer = server.client.post(AM, json=payload)
    assert answer.status_code == 202, answer.text
    [line] = server.delivered()
    assert line["data"]["notifyd_truncated"]["alerts_total"] == 120


def test_auth_bearer_and_basic(server: Server) -> None:
    token = server.token("alertmanager")
    payload = fixture("alertmanager_firing.json")
    assert server.client.post(AM, json=payload).status_code == 401
    basic = "Basic " + base64.b64encode(f"alertmanager:{token}".encode()).decode()
    assert server.client.post(AM, json=payload, headers={"Authorization": basic}).status_code == 202
    bearer = {"Authorization": f"Bearer {token}"}
    assert server.client.post(AM, json=payload, headers=bearer).status_code == 200  # a repeat


def test_unknown_destination_and_bad_body(server: Server) -> None:
    payload = fixture("alertmanager_firing.json")
    missing = server.client.post("/v1/hooks/alertmanager/nowhere", json=payload)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert server.client.post(AM, json={"status": "firing"}).status_code == 422
    assert server.client.post(AM, content=b"[]").status_code == 422
