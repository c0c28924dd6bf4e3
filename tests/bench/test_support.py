"""The figures' arithmetic, the worker helpers and the peers' command line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.peers import redis_command
from bench.support import ROOT, median, paired, percentile, ratio, spread
from bench.workers import (
    Process,
    count_lines,
    libpq_url,
    postgres_cpu_seconds,
    read_deliveries,
    wait_for_lines,
    with_query,
)


def test_percentile_median_spread_and_ratio() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert math.isnan(percentile([], 0.5))
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert spread([0.5, 0.7, 0.6]) == "0.60 (0.50-0.70)"
    assert spread([1234.0], "{:,.0f}", "/s") == "1,234/s"
    assert spread([10.0, 30.0], "{:.0f}", " ms") == "20 ms (10-30)"
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(1.0, 0.0))


def test_urls_for_libpq_and_extra_parameters() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert libpq_url(url) == "postgresql://postgres@127.0.0.1:5432/test"
    assert with_query(url, application_name="b") == f"{url}?application_name=b"
    assert with_query(f"{url}?a=1", b="2") == f"{url}?a=1&b=2"


def test_redis_commands_are_resp_arrays() -> None:
    assert redis_command("SELECT", "13") == b"*2\r\n$6\r\nSELECT\r\n$2\r\n13\r\n"
    assert redis_command("FLUSHDB") == b"*1\r\n$7\r\nFLUSHDB\r\n"


def test_postgres_cpu_sums_only_postgres_processes(tmp_path: Path) -> None:
    def stat(pid: int, comm: str, utime: int, stime: int) -> None:
        (tmp_path / str(pid)).mkdir()
        fields = ["S", *["0"] * 10, str(utime), str(stime), *["0"] * 10]
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")

    ticks = os.sysconf("SC_CLK_TCK")
    stat(10, "postgres", 3 * ticks, ticks)
    stat(11, "postgres: walwriter", ticks, 0)  # a name with a space and a colon
    stat(12, "python (x)", 100 * ticks, 0)  # not postgres, a parenthesis in its name
    (tmp_path / "self").mkdir()
    assert postgres_cpu_seconds(tmp_path) == 5.0


def test_deliveries_read_back_from_log_lines(tmp_path: Path) -> None:
    path = tmp_path / "notifications.log"
    assert count_lines(path) == 0
    lines = [
        {
            "created_at": "2026-12-06T10:00:00+00:00",
            "delivered_at": "2026-12-06T10:00:00.010+00:00",
        },
        {
            "created_at": "2026-12-06T10:00:00+00:00",
            "delivered_at": "2026-12-06T10:00:00.510+00:00",
        },
        {
            "created_at": "2026-12-06T10:00:01+00:00",
            "delivered_at": "2026-12-06T10:00:01.030+00:00",
        },
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert count_lines(path) == 3
    deliveries = read_deliveries(path)
    assert deliveries.count == 3
    assert abs(deliveries.rate - 2 / 1.02) < 1e-6
    assert round(deliveries.ms(0.5)) == 30
    assert read_deliveries(path, skip=2).count == 1
    assert wait_for_lines(path, 3, timeout=5) == 3
    started = time.monotonic()
    assert wait_for_lines(path, 4, timeout=5, stall=0.2) == 3  # gives up when nothing comes
    assert time.monotonic() - started < 4


def test_a_process_is_stopped_with_its_children(tmp_path: Path) -> None:
    script = f"sleep 60 & echo $! > {tmp_path / 'child'}; wait"
    process = Process(["sh", "-c", script], env={}, log=tmp_path / "log")
    with process:
        deadline = time.monotonic() + 5
        child_file = tmp_path / "child"
        while not (child_file.exists() and child_file.read_text().strip()):
            assert time.monotonic() < deadline, "the shell did not start its child"
            time.sleep(0.02)
        child = int(child_file.read_text())
    assert process.proc is not None and process.proc.returncode is not None
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if status == "Z":  # ended, not yet reaped by its (ended) parent's adopter
            break
        time.sleep(0.02)
    else:
        assert not Path(f"/proc/{child}").exists()


def test_the_peers_benchmark_has_a_help_that_needs_no_peer_installed() -> None:
    # bench.peers starts the peers as subprocesses: its own import needs neither Celery nor
    # procrastinate, so this runs wherever the dev extra is installed.
    result = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--reps" in result.stdout
    assert "Celery" in result.stdout


def test_ratios_are_paired_by_repetition() -> None:
    assert paired([2.0, 9.0], [1.0, 3.0]) == [2.0, 3.0]
    assert math.isnan(paired([1.0], [0.0])[0])
