"""``bench.server`` with timers around named functions (``bench.timers``).

``python -m bench.timed_server --timed MODULE:NAME [--timed ...] --stats FILE -- SERVER ARGS``
installs the timers, then runs ``bench.server`` with the arguments after ``--``. On SIGUSR1
it writes every timing so far to ``FILE`` (JSON) and starts the counts again, so a benchmark
can bracket the load it measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.timers import TimerError, Timers


def main() -> None:
    """Install the timers and serve."""
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timed", action="append", default=[], metavar="MODULE:NAME")
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args(argv[:split])
    timers = Timers()
    try:
        timers.install(args.timed)
    except TimerError as exc:
        raise SystemExit(f"bench.timed_server: {exc}") from None

    def dump(_signum: int, _frame: FrameType | None) -> None:
        timings = {spec: dataclasses.asdict(t) for spec, t in timers.snapshot().items()}
        timers.reset()
        partial = args.stats.with_suffix(".partial")
        partial.write_text(json.dumps(timings))
        partial.replace(args.stats)  # the reader never sees half a file

    signal.signal(signal.SIGUSR1, dump)
    from bench import server

    sys.argv = ["bench.server", *argv[split + 1 :]]
    server.main()


if __name__ == "__main__":
    main()
