"""The library page's example (docs/library.md) works as written, on a fresh database, creating
only its tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from notifyd.tracking.admin import RUNS
from tests.support import wait_for

LIBRARY_PAGE = Path(__file__).resolve().parents[2] / "docs" / "library.md"


def _example() -> str:
    match = re.search(r"```python\n(.*?)```", LIBRARY_PAGE.read_text(), re.S)
    assert match is not None, "the library section has no python example"
    return match.group(1)


def test_the_library_example_runs_a_task_durably_with_only_its_own_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "library_example"}
    exec(compile(_example(), "docs/library.md", "exec"), namespace)
    engine = namespace["engine"]
    tables = set(inspect(engine).get_table_names())
    assert tables == {"task_run", "attempt", "task_run_tally", "tracking_schema"}
    with TestClient(namespace["app"]) as client:
        run_id = client.post("/reports/7").json()["run"]

        def status() -> str | None:
            with engine.connect() as conn:
                found: str | None = conn.execute(
                    select(RUNS.c.status).where(RUNS.c.id == run_id)
                ).scalar()
                return found

        wait_for(lambda: status() == "succeeded", timeout=10, interval=0.02, what="the run")
    with engine.connect() as conn:
        run = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).one()
    assert run.args == {"user_id": 7} and run.max_attempts == 5
    engine.dispose()
