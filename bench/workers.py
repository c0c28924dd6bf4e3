"""What the drain and steady-rate benchmarks share: worker processes, a PostgreSQL schema of
their own, the PostgreSQL server's CPU time, and the log channel's lines read back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

from sqlalchemy import create_engine, text

from bench.support import CLOCK_TICKS, ROOT, Started, percentile
from notifyd.config import LOG_FILE_NAME

# The variable the test suite reads (tests/conftest.py), then the relay benchmark's.
POSTGRES_URL = os.environ.get(
    "NOTIFYD_TEST_POSTGRES_URL",
    os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)


def backend_cpu_seconds(application_name: str) -> float:
    """CPU seconds used so far by the live PostgreSQL backends whose connections carry
    ``application_name`` (this machine's server, read from /proc): the store's own cost."""
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            pids = list(
                conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": application_name},
                ).scalars()
            )
    finally:
        engine.dispose()
    total = 0
    for pid in pids:
        try:  # a backend that ended meanwhile has nothing to read
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(stat[11]) + int(stat[12])
    return total / CLOCK_TICKS


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` appended to its query string."""
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}" if query else url


def libpq_url(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as libpq (psycopg, procrastinate) reads it."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


@contextmanager
def postgres_schema(prefix: str = "bench") -> Iterator[str]:
    """A fresh schema in the PostgreSQL database, dropped afterwards: yields the URL whose
    connections use it (``search_path``)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield with_query(POSTGRES_URL, options=f"-csearch_path%3D{schema}")
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def postgres_cpu_seconds(proc: Path = Path("/proc")) -> float:
    """utime+stime of every process whose command name starts with ``postgres`` (the server,
    its backends and its background writers), in seconds. On a shared machine this includes
    other clients' backends: read it beside a figure measured with nothing else running."""
    total = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        comm, _, rest = stat.partition(" (")[2].rpartition(")")
        if comm.startswith("postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that a benchmark stopped by it still runs its clean-up
    (the workers it started sit in process groups of their own, out of reach of the signal)."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class Process(Started):
    """A subprocess in its own process group (a prefork worker's children go with it), logging
    to a file; SIGTERM on stop, then SIGKILL of the whole group if it lingers."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str], log: Path) -> None:
        self.args = list(args)
        self.env = env
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start it (without waiting for anything)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFYD_")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=base | self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def run(self, timeout: float = 60.0) -> None:
        """Start it, wait for it to exit, and raise if it failed."""
        self.start()
        assert self.proc is not None
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.stop(timeout=5)
        if self.proc.returncode:
            self._failed()

    def _failed(self) -> None:
        assert self.proc is not None
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.args[:4]} exited {self.proc.returncode}:\n{tail}")

    def check(self) -> None:
        """Raise if it has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            self._failed()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM its group, wait, then SIGKILL whatever of the group is left (a prefork
        pool's children may outlive their parent for a moment)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def notifyd_worker(home: Path, database_url: str | None = None) -> Process:
    """``notifyd worker`` on the store of the bench server whose data dir is ``home`` (its log
    channel writes to the same file)."""
    script = Path(sys.executable).parent / "notifyd"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
    env = {"NOTIFYD_HOME": str(home)}
    if database_url:
        env["NOTIFYD_DATABASE_URL"] = database_url
    log = home / f"worker-{uuid.uuid4().hex[:6]}.log"
    return Process([*command, "worker", "--log-level", "warning"], env=env, log=log)


def log_file(home: Path) -> Path:
    """The log channel's file in a data dir."""
    return home / LOG_FILE_NAME


def count_lines(path: Path) -> int:
    """Lines in a file, 0 if it is not there yet."""
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def wait_for_lines(
    path: Path, n: int, *, timeout: float, watch: Sequence[Process] = (), stall: float = 15.0
) -> int:
    """Wait until ``path`` has ``n`` lines, ``timeout`` passes, or no line came for ``stall``
    seconds; raise if a watched process died. Returns the lines there are."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while True:
        seen = count_lines(path)
        now = time.monotonic()
        if seen != last:
            last, last_change = seen, now
        if seen >= n or now > deadline or now - last_change > stall:
            return seen
        for process in watch:
            process.check()
        time.sleep(0.05)


@dataclass(frozen=True)
class Deliveries:
    """The log lines of a drain or a steady run, read back."""

    count: int
    first: float  # epoch seconds of the first and last delivery
    last: float
    latencies: list[float]  # delivered_at - created_at, seconds, sorted

    @property
    def rate(self) -> float:
        """Deliveries per second between the first and the last (a worker's start-up and the
        poll's granularity left out)."""
        span = self.last - self.first
        return (self.count - 1) / span if span > 0 and self.count > 1 else float("nan")

    def ms(self, fraction: float) -> float:
        """A publish-to-delivered percentile in milliseconds."""
        return percentile(self.latencies, fraction) * 1000


def read_deliveries(path: Path, skip: int = 0) -> Deliveries:
    """Parse JSON lines with ``created_at`` and ``delivered_at`` (ISO 8601, with an offset),
    past the first ``skip`` lines (an earlier run's)."""
    created: list[float] = []
    delivered: list[float] = []
    with path.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if index < skip:
                continue
            record = json.loads(line)
            delivered.append(datetime.fromisoformat(record["delivered_at"]).timestamp())
            created.append(datetime.fromisoformat(record["created_at"]).timestamp())
    if not delivered:
        return Deliveries(0, float("nan"), float("nan"), [])
    latencies = sorted(d - c for d, c in zip(delivered, created, strict=True))
    return Deliveries(len(delivered), min(delivered), max(delivered), latencies)
