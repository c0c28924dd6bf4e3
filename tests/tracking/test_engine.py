"""The engines: their JSON serializer writes exactly what json.dumps writes; SQLite's settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifyd.tracking.engine import WAL_SIZE_LIMIT, json_dumps, tracking_engine


def test_sqlite_connections_use_the_wal_and_cap_it(tmp_path: Path) -> None:
    engine = tracking_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            limit = conn.exec_driver_sql("PRAGMA journal_size_limit").scalar_one()
            assert limit == WAL_SIZE_LIMIT
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -1.5,
        float("nan"),
        "plain",
        "naïve \u2028 </script> \x00 \udcff",
        [],
        ["a@example.com", None, 1, [2, {"x": False}]],
        ("a", "tuple"),
        {"notification_id": "ntf_1", "nested": {"list": [1.0, 1e300], "é": "ü"}},
        {1: "int key", None: "null key"},
    ],
)
def test_the_same_text_as_json_dumps(value: object) -> None:
    assert json_dumps(value) == json.dumps(value)


def test_what_is_not_json_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="datetime is not JSON serializable"):
        json_dumps({"when": datetime.now(UTC)})
