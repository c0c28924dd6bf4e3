"""What the benchmarks share: a server subprocess, /proc readings, percentiles and printing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ProcStatus:
    """Memory, threads and CPU time of a process, from /proc."""

    rss_kib: int
    peak_rss_kib: int
    threads: int
    cpu_seconds: float


def proc_status(pid: int) -> ProcStatus:
    """Read VmRSS, VmHWM and Threads from /proc/PID/status and utime+stime from /proc/PID/stat."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return ProcStatus(
        rss_kib=int(fields["VmRSS"].split()[0]),
        peak_rss_kib=int(fields["VmHWM"].split()[0]),
        threads=int(fields["Threads"]),
        cpu_seconds=(int(stat[11]) + int(stat[12])) / CLOCK_TICKS,
    )


def machine_cpu_seconds() -> float:
    """CPU seconds every process of the machine has used since boot (from /proc/stat): the
    share other work took of a measurement shows beside the figures it may have skewed."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


class Started:
    """A process of a benchmark's: ``with`` starts it, and stops it however the block ends."""

    def start(self) -> Self:
        """Start it; itself."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop it (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class BenchServer(Started):
    """``python -m bench.server`` in a subprocess on a free port with a temporary data dir."""

    def __init__(
        self,
        mode: str,
        *,
        slow_seconds: float = 1.0,
        concurrency: int = 32,
        dispatch: bool = True,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.mode = mode
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.TemporaryDirectory(prefix=f"notifyd-bench-{mode}-")
        self.home = Path(self._tmp.name)
        self.args = [
            sys.executable, "-m", "bench.server", "--mode", mode, "--port", str(self.port),
            "--home", str(self.home), "--slow-seconds", str(slow_seconds),
            "--concurrency", str(concurrency),
        ]  # fmt: skip
        if not dispatch:
            self.args.append("--no-dispatch")
        self.args += extra
        self.env: dict[str, str] = {}
        self.cwd = ROOT  # the tree whose code the server runs (an A/B points it at another)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Self:
        """Start and wait until /healthz answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")} | self.env
        with (self.home / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench server exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/healthz")
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"bench server did not answer within {timeout}s:\n{self.log()}")

    def get(self, path: str) -> Any:
        """GET a JSON resource from the server."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def status(self) -> ProcStatus:
        """The server process's memory, threads and CPU time now."""
        return proc_status(self.pid)

    def log(self) -> str:
        """What the server printed."""
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; remove the data dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._tmp.cleanup()


class NotifydServe(BenchServer):
    """The real ``notifyd serve``, as a user runs it, configured by ``config`` (TOML text)."""

    def __init__(self, config: str) -> None:
        super().__init__("serve")
        config_file = self.home / "notifyd.toml"
        config_file.write_text(config)
        script = Path(sys.executable).parent / "notifyd"
        # The `notifyd` script of this environment; its entry point when it is not installed.
        command = [str(script)] if script.exists() else [sys.executable, "-c", _ENTRY_POINT]
        self.args = [
            *command, "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "warning",
        ]  # fmt: skip
        self.env = {"NOTIFYD_HOME": str(self.home), "NOTIFYD_CONFIG": str(config_file)}
        if os.environ.get("BENCH_PROFILE"):  # where the server's CPU goes, for cProfile/pstats
            self.args[: len(command)] = [sys.executable, "-c", _PROFILED_ENTRY_POINT]


_ENTRY_POINT = "from cli.main import app; app()"
# uvicorn raises the SIGTERM it caught again once it has stopped: exit on it, writing the stats.
_PROFILED_ENTRY_POINT = """
import cProfile, os, signal, sys
from cli.main import app
profile = cProfile.Profile()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
profile.enable()
try:
    app()
finally:
    profile.disable()
    profile.dump_stats(os.environ["BENCH_PROFILE"])
"""


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def title(text: str) -> None:
    """Print a benchmark's heading and the machine's load (other work skews the figures)."""
    load = os.getloadavg()[0]
    print(f"\n== {text}  [load average {load:.1f} on {os.cpu_count()} CPUs]", flush=True)


def row(label: str, *values: str, width: int = 12) -> None:
    """Print one aligned line of figures."""
    print(f"  {label:<44}" + "  ".join(f"{value:>{width}}" for value in values), flush=True)


def mib(kib: int) -> str:
    """KiB as a MiB figure."""
    return f"{kib / 1024:.1f} MiB"


def median(values: list[float]) -> float:
    """The median (the mean of the middle two of an even count)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def spread(values: list[float], fmt: str = "{:.2f}", unit: str = "") -> str:
    """``median (min-max)`` of repeated figures; one figure alone as itself."""
    if len(values) == 1:
        return fmt.format(values[0]) + unit
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return f"{fmt.format(median(values))}{unit} ({low}-{high})"


def paired(numerators: list[float], denominators: list[float]) -> list[float]:
    """Each repetition's ratio to the same repetition's baseline (interleaved runs share the
    machine's mood, so their ratios spread less than their figures)."""
    return [ratio(n, d) for n, d in zip(numerators, denominators, strict=True)]


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN rather than an error when there is no denominator."""
    return numerator / denominator if denominator else float("nan")
