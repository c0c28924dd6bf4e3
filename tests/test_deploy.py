"""The shipped Grafana dashboard and Prometheus alert rules use only metrics a real scrape
has, and the rules pass ``promtool`` (where Debian's prometheus package put it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.channels.helpers import submit, wait_run

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "notifyd.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
METRIC = re.compile(r"\bnotifyd_[a-z0-9_]+")


def _expressions(node: Any) -> list[str]:
    """Every ``expr`` in a dashboard or a rules file."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in _expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in _expressions(value)]
    return []


def _used() -> set[str]:
    documents = [json.loads(DASHBOARD.read_text()), yaml.safe_load(RULES.read_text())]
    return {
        name for doc in documents for expr in _expressions(doc) for name in METRIC.findall(expr)
    }


def test_every_metric_the_dashboard_and_the_alerts_use_is_scraped(client: TestClient) -> None:
    used = _used()
    assert {"notifyd_oldest_due_run_age_seconds", "notifyd_runs_failed_total"} <= used
    delivered = submit(client, channel="log", to="ops", message="m")
    # The SSRF guard refuses loopback: the run fails for good, so the failure series exists.
    failed = submit(client, channel="webhook", to="http://127.0.0.1:9/hook", message="m")
    assert wait_run(client, delivered["tasks"][0]["id"])["status"] == "succeeded"
    assert wait_run(client, failed["tasks"][0]["id"])["status"] == "failed"

    response = client.get("/metrics")
    assert response.status_code == 200
    scraped = {
        sample.name
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert sorted(used - scraped) == []


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    for command in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        done = subprocess.run(["promtool", *command], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
