"""Each way in counts its accepts under its own endpoint label."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.compat.conftest import Server, fixture


def test_every_endpoint_times_its_accepts_under_its_own_label(server: Server) -> None:
    token = server.token("gotify-app", destination="deploys")
    sender = {"Authorization": f"Bearer {server.token('sender')}"}
    post = server.client.post
    answers = [
        post("/v1/notifications", json={"destination": "deploys", "message": "m"}, headers=sender),
        post("/deploys", content="m", headers=sender),
        post("/message", json={"message": "m"}, headers={"X-Gotify-Key": token}),
        post(
            "/v1/hooks/alertmanager/alerts",
            json=fixture("alertmanager_firing.json"),
            headers=sender,
        ),
        post("/v1/hooks/grafana/alerts", json=fixture("grafana_firing.json"), headers=sender),
    ]
    assert [a.status_code for a in answers] == [202, 200, 200, 202, 202], [a.text for a in answers]

    scraped = server.client.get("/metrics", headers=server.admin())
    assert scraped.status_code == 200
    counts = {
        sample.labels["endpoint"]: sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "notifyd_accept_duration_seconds_count"
    }
    assert counts == {"api": 1, "ntfy": 1, "gotify": 1, "alertmanager": 1, "grafana": 1}
