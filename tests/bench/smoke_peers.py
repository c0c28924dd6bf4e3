"""A smoke run of ``make bench-peers``, kept out of the default suite (the file name does not
match ``test_*.py``): it needs the ``peers`` extra, Redis and PostgreSQL, and takes ~30 s.
Run it by name: ``.venv/bin/pytest tests/bench/smoke_peers.py``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from bench.support import ROOT


@pytest.mark.skipif(
    importlib.util.find_spec("celery") is None or importlib.util.find_spec("procrastinate") is None,
    reason="the peers extra is not installed (make bench-peers installs it)",
)
def test_a_tiny_peers_run_prints_every_ratio() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.peers", "--reps", "1", "--requests", "200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ratios = [line for line in result.stdout.splitlines() if " / " in line and "drain" in line]
    assert len(ratios) == 4, result.stdout
    assert "not delivered" not in result.stdout, result.stdout
