"""Task registration and argument binding."""

from __future__ import annotations

from typing import Any

import pytest

from notifyd.tracking import TaskContext, TaskRegistry


def test_arguments_bind_by_name_and_come_back_with_the_context() -> None:
    registry = TaskRegistry()

    received: list[Any] = []

    @registry.task("t")
    def task(a: int, /, b: str, *rest: int, ctx: TaskContext, **extra: Any) -> None:
        received.append((a, b, rest, ctx, extra))

    entry = registry.lookup(task)
    stored = entry.bind((1, "x", 2, 3), {"flag": True})
    assert stored == {"a": 1, "b": "x", "rest": [2, 3], "extra": {"flag": True}}
    ctx = TaskContext(run_id="run_1", attempt=1)
    args, kwargs = entry.call_args(stored, ctx)
    task(*args, **kwargs)
    assert received == [(1, "x", (2, 3), ctx, {"flag": True})]


def test_arguments_must_survive_json() -> None:
    registry = TaskRegistry()

    @registry.task("t")
    def task(value: Any) -> None:
        return None

    with pytest.raises(TypeError, match="JSON"):
        registry.lookup(task).bind((object(),), {})
    with pytest.raises(TypeError, match="JSON round trip"):
        registry.lookup(task).bind(((1, 2),), {})


def test_wrong_arguments_are_refused_when_added() -> None:
    registry = TaskRegistry()

    @registry.task("t")
    def task(a: int) -> None:
        return None

    with pytest.raises(TypeError, match="'t'"):
        registry.lookup(task).bind((1, 2), {})


def test_unregistered_functions_and_clashing_names_are_refused() -> None:
    registry = TaskRegistry()

    def loose() -> None:
        return None

    with pytest.raises(LookupError, match="not a registered task"):
        registry.lookup(loose)
    registry.register(loose, "name")

    def other() -> None:
        return None

    with pytest.raises(ValueError, match="already registered"):
        registry.register(other, "name")


def test_plain_keywords_bind_as_the_full_binding_would() -> None:
    registry = TaskRegistry()

    def deliver(
        ctx: TaskContext, notification_id: str, recipient: str, key: str | None = None
    ) -> None:
        return None

    task = registry.register(deliver, "deliver")
    plain = {"notification_id": "ntf_1", "recipient": "a@b.c", "key": None}
    assert task.bind((), plain) == plain
    with pytest.raises(TypeError, match="missing a required argument"):
        task.bind((), {"recipient": "a@b.c"})
    with pytest.raises(TypeError, match="unexpected keyword"):
        task.bind((), {"notification_id": "n", "recipient": "r", "nope": 1})
    with pytest.raises(TypeError, match="JSON"):
        task.bind((), {"notification_id": "n", "recipient": ("a", "b")})
    with pytest.raises(TypeError, match="JSON"):
        task.bind((), {"notification_id": "n", "recipient": float("nan")})


def test_calls_are_the_same_by_keyword_or_by_binding() -> None:
    registry = TaskRegistry()

    def keywords(ctx: TaskContext, a: str, b: int = 2) -> None:
        return None

    def positional(a: str, /, *rest: int) -> None:
        return None

    ctx = TaskContext(run_id="run_1", attempt=1)
    by_keyword = registry.register(keywords, "k")
    assert by_keyword.call_args({"a": "x"}, ctx) == ((), {"a": "x", "ctx": ctx})
    assert by_keyword.call_args({"a": "x", "b": 5}, ctx) == ((), {"a": "x", "b": 5, "ctx": ctx})
    bound = registry.register(positional, "p")
    assert bound.call_args({"a": "x", "rest": [1, 2]}, ctx) == (("x", 1, 2), {})
