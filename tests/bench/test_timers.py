"""bench.timers: what a timer around a function counts, and what it refuses to time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.timers import TimerError, Timers, resolve
from tests.bench import timed_target

MODULE = "tests.bench.timed_target"


@pytest.fixture
def timers() -> Iterator[Timers]:
    installed = Timers()
    yield installed
    installed.uninstall()


def test_a_timed_function_counts_its_calls_and_its_thread_cpu(timers: Timers) -> None:
    timers.install([f"{MODULE}:spin", f"{MODULE}:nap"])
    assert timed_target.spin(0.02) >= 0.02  # still returns what it returned
    timed_target.spin(0.02)
    timed_target.nap(0.05)
    spin, nap = timers.snapshot()[f"{MODULE}:spin"], timers.snapshot()[f"{MODULE}:nap"]
    assert spin.calls == 2
    assert spin.cpu_seconds >= 0.04
    assert spin.wall_seconds >= spin.cpu_seconds * 0.9
    # A sleep takes wall time, not CPU.
    assert nap.calls == 1
    assert nap.wall_seconds >= 0.05
    assert nap.cpu_seconds < 0.02


def test_a_call_that_raises_is_counted_and_raises(timers: Timers) -> None:
    timers.install([f"{MODULE}:fail"])
    with pytest.raises(RuntimeError, match="on purpose"):
        timed_target.fail()
    assert timers.snapshot()[f"{MODULE}:fail"].calls == 1


def test_a_method_is_timed_on_every_instance(timers: Timers) -> None:
    timers.install([f"{MODULE}:Box.open"])
    first, second = timed_target.Box(), timed_target.Box()
    assert first.open() == 1
    assert second.open() == 1
    assert first.open() == 2
    assert timers.snapshot()[f"{MODULE}:Box.open"].calls == 3


def test_reset_starts_the_counts_again_and_uninstall_puts_the_function_back(
    timers: Timers,
) -> None:
    original = timed_target.spin
    timers.install([f"{MODULE}:spin"])
    assert timed_target.spin is not original
    timed_target.spin(0.001)
    timers.reset()
    assert timers.snapshot()[f"{MODULE}:spin"].calls == 0
    timers.uninstall()
    assert timed_target.spin is original


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("no_colon_here", "module:function"),
        (f"{MODULE}:", "module:function"),
        ("tests.bench.no_such_module:f", "cannot import"),
        (f"{MODULE}:missing", "no function missing"),
        (f"{MODULE}:Nothing.open", "has no Nothing"),
        (f"{MODULE}:later", "coroutine function"),
        (f"{MODULE}:Box.shut", "static and class methods"),
    ],
)
def test_what_cannot_be_timed_is_refused_with_the_reason(spec: str, says: str) -> None:
    with pytest.raises(TimerError, match=says):
        resolve(spec)


def test_nothing_is_wrapped_when_one_of_the_names_is_refused(timers: Timers) -> None:
    original = timed_target.spin
    with pytest.raises(TimerError):
        timers.install([f"{MODULE}:spin", f"{MODULE}:later"])
    assert timed_target.spin is original
