"""Functions for tests/bench/test_timers.py to time (a module of its own, so that wrapping its
names touches nothing else)."""

from __future__ import annotations

import time


def spin(seconds: float) -> float:
    """Use the CPU for ``seconds``; return how long it took."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass
    return time.thread_time() - start


def nap(seconds: float) -> None:
    """Sleep (wall time, no CPU)."""
    time.sleep(seconds)


def fail() -> None:
    """Raise."""
    raise RuntimeError("failed on purpose")


async def later() -> None:
    """A coroutine function."""


class Box:
    """A class with a method to time."""

    def __init__(self) -> None:
        self.opened = 0

    def open(self) -> int:
        """Count an opening."""
        self.opened += 1
        return self.opened

    @staticmethod
    def shut() -> None:
        """A static method."""
