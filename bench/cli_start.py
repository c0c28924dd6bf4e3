"""How long ``notifyd --help`` takes to start, against ``python -c "import typer, rich"``.

Every command, ``--help`` and each Tab of shell completion pays this start; the goal is at most
1.5x the baseline (the store, the settings and HTTP load only in the commands that use them).
notifyd's modules are compiled first, as pip compiles an installed package's: the baseline's
are, and where ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it) every start would
otherwise compile notifyd's from source.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench.support import ROOT, row, title

RUNS = 15
GOAL = 1.5


def _median_seconds(args: list[str]) -> float:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    """Print the median start of each command and its ratio to the baseline."""
    title(f"CLI start: median of {RUNS} runs, ratio to `import typer, rich` (goal <= {GOAL}x)")
    compiled = [sys.executable, "-m", "compileall", "-q", "cli", "notifyd"]
    subprocess.run(compiled, cwd=ROOT, check=True, capture_output=True)
    baseline = _median_seconds([sys.executable, "-c", "import typer, rich"])
    row("python -c 'import typer, rich' (baseline)", f"{baseline * 1000:.0f} ms", "1.00x")
    probe = "import sys; from cli.main import app; sys.argv = ['notifyd', *sys.argv[1:]]; app()"
    for label, args in (
        ("notifyd --help", ["--help"]),
        ("notifyd --version", ["--version"]),
        ("notifyd tasks list --help", ["tasks", "list", "--help"]),
    ):
        seconds = _median_seconds([sys.executable, "-c", probe, *args])
        ratio = seconds / baseline
        verdict = "ok" if ratio <= GOAL else "over goal"
        row(label, f"{seconds * 1000:.0f} ms", f"{ratio:.2f}x", verdict)


if __name__ == "__main__":
    main()
