"""Timers around named functions of a running server: calls, thread CPU and wall time of each.

py-spy samples stacks, and it gives the code around a syscall more than its share (the log
channel's ``write`` got four times what ``time.thread_time`` measures of the whole append). A
timer around the function itself counts exactly that function's calls and the CPU its thread
spent in them. ``bench.timed_parts`` installs these in the server and prints them per request.

A function is named ``module:function`` or ``module:Class.method``. Only plain functions can be
timed: around a coroutine function a timer would count the making of the coroutine, not its
work, so those are refused.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


class TimerError(ValueError):
    """A function that cannot be timed, and why."""


@dataclass
class Timing:
    """What one timed function did since the last reset."""

    calls: int = 0
    cpu_seconds: float = 0.0  # of the calling thread, inside the function
    wall_seconds: float = 0.0


def resolve(spec: str) -> tuple[Any, str, Callable[..., Any]]:
    """The owner (module or class), attribute name and function that ``spec`` names."""
    module_name, sep, qualname = spec.partition(":")
    if not sep or not module_name or not qualname:
        raise TimerError(f"{spec!r}: name it as module:function or module:Class.method")
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise TimerError(f"{spec!r}: cannot import {module_name} ({exc})") from None
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            raise TimerError(f"{spec!r}: {module_name} has no {part}")
    function = inspect.getattr_static(owner, name, None)
    if isinstance(function, staticmethod | classmethod):
        raise TimerError(f"{spec!r}: static and class methods are not supported")
    if not callable(function):
        raise TimerError(f"{spec!r}: no function {qualname} in {module_name}")
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        raise TimerError(f"{spec!r}: a coroutine function (a timer would time making it)")
    return owner, name, function


class Timers:
    """Timers installed around functions; ``snapshot`` reads them, ``reset`` starts again."""

    def __init__(self) -> None:
        self._timings: dict[str, Timing] = {}
        self._lock = threading.Lock()
        self._installed: list[tuple[Any, str, Callable[..., Any]]] = []

    def install(self, specs: Iterable[str]) -> None:
        """Wrap every named function (all are resolved first: none is wrapped if one fails)."""
        resolved = [(spec, *resolve(spec)) for spec in specs]
        for spec, owner, name, function in resolved:
            self._timings.setdefault(spec, Timing())
            setattr(owner, name, self._wrap(spec, function))
            self._installed.append((owner, name, function))

    def uninstall(self) -> None:
        """Put the original functions back."""
        for owner, name, function in reversed(self._installed):
            setattr(owner, name, function)
        self._installed.clear()

    def _wrap(self, spec: str, function: Callable[..., Any]) -> Callable[..., Any]:
        timing = self._timings[spec]
        lock = self._lock
        thread_time, perf_counter = time.thread_time, time.perf_counter

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = thread_time(), perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                cpu, wall = thread_time() - cpu, perf_counter() - wall
                with lock:
                    timing.calls += 1
                    timing.cpu_seconds += cpu
                    timing.wall_seconds += wall

        return timed

    def snapshot(self) -> dict[str, Timing]:
        """A copy of every timing so far."""
        with self._lock:
            return {
                spec: Timing(t.calls, t.cpu_seconds, t.wall_seconds)
                for spec, t in self._timings.items()
            }

    def reset(self) -> None:
        """Start every count again from zero."""
        with self._lock:
            for timing in self._timings.values():
                timing.calls, timing.cpu_seconds, timing.wall_seconds = 0, 0.0, 0.0
