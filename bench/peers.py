"""``make bench-peers``: the same accept and drain work through notifyd and its peers, same run.

Accept: POST of ``accept_throughput``'s body, 32 connections, closed loop, to the validated
FastAPI route (the baseline), a Celery route (``.delay()``, Redis on 127.0.0.1:6379), a
procrastinate route (``defer_async``, PostgreSQL), and notifyd on SQLite and on PostgreSQL;
no worker runs meanwhile (notifyd's dispatcher is off), so every server only accepts. Drain:
then the runs each accepted are run by workers started for it: Celery's prefork worker (2
processes), procrastinate's worker (one process, 16 concurrent jobs), one ``notifyd worker``;
each delivery appends the same JSON line (notifyd's log channel; the peers' tasks write the
same), and runs/s is counted between the first line and the last, so a worker's start-up is
left out. Every system gets a fresh queue each repetition; repetitions are interleaved.
Needs the ``peers`` extra (``make bench-peers`` installs it).
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from bench.accept_throughput import Measured, measure
from bench.support import BenchServer, paired, row, spread, title
from bench.workers import (
    Process,
    exit_on_sigterm,
    libpq_url,
    log_file,
    notifyd_worker,
    postgres_schema,
    read_deliveries,
    wait_for_lines,
)

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 13
WARMUP = 500
REQUESTS = 6000
DRAIN_TIMEOUT = 90.0
REPS = 2
CELERY_PROCESSES = 2
PROCRASTINATE_CONCURRENCY = 16
WIDTH = 22  # a figure with its spread: "5,578 (5,130-9,306)"


def redis_command(*words: str) -> bytes:
    """One command in Redis's protocol (RESP): an array of bulk strings."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def flush_redis(db: int = REDIS_DB) -> None:
    """Empty the broker's database (no client library: two commands on a socket)."""
    with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=5) as sock:
        sock.sendall(redis_command("SELECT", str(db)) + redis_command("FLUSHDB"))
        answer = b""
        while answer.count(b"\r\n") < 2:
            chunk = sock.recv(1024)
            if not chunk:
                break
            answer += chunk
    if answer != b"+OK\r\n+OK\r\n":
        raise RuntimeError(f"redis at {REDIS_HOST}:{REDIS_PORT} answered {answer!r}")


class PeerServer(BenchServer):
    """A peer's route, ``python -m bench.peers_apps.<module> [serve] --port N``."""

    def __init__(self, module: str, env: dict[str, str], *, subcommand: bool = False) -> None:
        super().__init__(module)
        self.args = [sys.executable, "-m", f"bench.peers_apps.{module}"]
        self.args += ["serve"] if subcommand else []
        self.args += ["--port", str(self.port)]
        self.env = env | {"BENCH_PEER_LOG": str(log_file(self.home))}


@dataclass
class System:
    """One system's figures over the repetitions."""

    label: str
    accepts: list[Measured] = field(default_factory=list)
    drains: list[float] = field(default_factory=list)
    undelivered: int = 0

    def rates(self) -> list[float]:
        """Accepted requests/s of each repetition."""
        return [m.load.rate for m in self.accepts]


def accept_then_drain(
    system: System,
    server: BenchServer,
    workers: Callable[[], list[Process]],
    stack: ExitStack,
    requests: int,
) -> None:
    """Load ``server``, then start ``workers`` and time them draining what it accepted."""
    measured = measure(server, "/v1/notifications", warmup=WARMUP, requests=requests)
    system.accepts.append(measured)
    expected = WARMUP + measured.load.statuses.get(202, 0)
    started = [stack.enter_context(worker) for worker in workers()]
    path = log_file(server.home)
    seen = wait_for_lines(path, expected, timeout=DRAIN_TIMEOUT, watch=started)
    system.undelivered += max(0, expected - seen)
    system.drains.append(read_deliveries(path).rate)


def validated(system: System, requests: int) -> None:
    """The baseline: FastAPI validating the body, no store, no drain."""
    with BenchServer("bare") as server:
        system.accepts.append(measure(server, "/validated", warmup=WARMUP, requests=requests))


def celery(system: System, requests: int) -> None:
    """Celery: a ``.delay()`` route, then its prefork worker."""
    flush_redis()
    env = {"BENCH_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"}
    try:
        with ExitStack() as stack:
            server = stack.enter_context(PeerServer("celery_app", env))
            command = [
                sys.executable, "-m", "celery", "-A", "bench.peers_apps.celery_app:celery",
                "worker", "--pool", "prefork", "--concurrency", str(CELERY_PROCESSES),
                "--without-heartbeat", "--without-gossip", "--without-mingle",
                "--loglevel", "WARNING",
            ]  # fmt: skip
            worker = Process(command, env=server.env, log=server.home / "worker.log")
            accept_then_drain(system, server, lambda: [worker], stack, requests)
    finally:
        flush_redis()


def procrastinate(system: System, requests: int) -> None:
    """procrastinate: a ``defer_async`` route, then its worker, in a fresh schema."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema("bench_procrastinate"))
        env = {"BENCH_PROCRASTINATE_URL": libpq_url(url)}
        server = PeerServer("procrastinate_app", env, subcommand=True)
        module = [sys.executable, "-m", "bench.peers_apps.procrastinate_app"]
        Process([*module, "schema"], env=server.env, log=server.home / "schema.log").run()
        stack.enter_context(server)
        command = [*module, "worker", "--concurrency", str(PROCRASTINATE_CONCURRENCY)]
        worker = Process(command, env=server.env, log=server.home / "worker.log")
        accept_then_drain(system, server, lambda: [worker], stack, requests)


def notifyd(system: System, requests: int, *, postgres: bool) -> None:
    """notifyd accepting with its dispatcher off, then one ``notifyd worker``."""
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema("bench_peers")) if postgres else None
        server = BenchServer("notifyd", dispatch=False)
        if url:
            server.env["NOTIFYD_DATABASE_URL"] = url
        stack.enter_context(server)
        accept_then_drain(
            system, server, lambda: [notifyd_worker(server.home, url)], stack, requests
        )


def report(systems: list[System], baseline: System) -> None:
    """The table (medians and spreads over the repetitions), then notifyd's ratios to each peer."""
    row("system", "accepted/s", "p99", "x validated", "drain runs/s", width=WIDTH)
    for system in systems:
        row(
            system.label,
            spread(system.rates(), "{:,.0f}"),
            spread([m.load.ms(0.99) for m in system.accepts], "{:.0f}", " ms"),
            spread(paired(system.rates(), baseline.rates()), "{:.2f}", "x"),
            spread(system.drains, "{:,.0f}") if system.drains else "-",
            width=WIDTH,
        )
        failed = [
            m.load.describe_statuses()
            for m in system.accepts
            if m.load.errors or set(m.load.statuses) - {202}
        ]
        if system.undelivered:
            failed.append(f"{system.undelivered} accepted but not delivered in time")
        for line in failed:
            print(f"    {line}")


def ratios(ours: System, peers: list[System]) -> None:
    """notifyd's ratio to each peer, accept and drain, per repetition (median and spread)."""
    for peer in peers:
        accept = spread(paired(ours.rates(), peer.rates()), "{:.2f}", "x")
        drain = spread(paired(ours.drains, peer.drains), "{:.2f}", "x")
        print(f"  {ours.label} / {peer.label}: accept {accept}, drain {drain}")


def main(reps: int = REPS, requests: int = REQUESTS) -> None:
    """Every system ``reps`` times, interleaved; then the table and the ratios."""
    title(
        f"peers: accept (POST, 32 connections, {requests:,} requests) and drain (what was "
        f"accepted), {reps} interleaved reps"
    )
    base = System("validated FastAPI route (no store)")
    peers = [System("Celery .delay() route + worker"), System("procrastinate route + worker")]
    ours = [System("notifyd, SQLite"), System("notifyd, PostgreSQL")]
    for rep in range(reps):
        print(f"  rep {rep + 1}/{reps} ...", flush=True)
        validated(base, requests)
        celery(peers[0], requests)
        procrastinate(peers[1], requests)
        notifyd(ours[0], requests, postgres=False)
        notifyd(ours[1], requests, postgres=True)
    report([base, *peers, *ours], base)
    print(
        f"  workers: Celery prefork x{CELERY_PROCESSES}, procrastinate 1 process x"
        f"{PROCRASTINATE_CONCURRENCY} jobs, notifyd 1 `notifyd worker`; ratios per rep:"
    )
    for system in ours:
        ratios(system, peers)


def cli(argv: list[str] | None = None) -> None:
    """``python -m bench.peers [--reps N]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--reps", type=int, default=REPS, help="interleaved repetitions")
    parser.add_argument(
        "--requests", type=int, default=REQUESTS, help="measured requests per system and rep"
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    main(args.reps, args.requests)


if __name__ == "__main__":
    cli()
