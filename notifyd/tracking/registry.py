"""Task functions registered by name, and the context a task may ask for."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

CONTEXT_PARAM = "ctx"
_PLAIN = frozenset({str, int, bool, type(None)})


# Not frozen: made for every attempt, and a frozen dataclass is three times as slow to build.
@dataclass(slots=True)
class TaskContext:
    """Handed to a task that declares a ``ctx`` parameter: which run and attempt this is."""

    run_id: str
    attempt: int
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFunction:
    """A registered task: its name, the function, and how to call it."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    signature: inspect.Signature

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Bind call arguments to parameter names; they must survive a JSON round trip."""
        if not args and self._plain_call(kwargs):
            return dict(kwargs)
        try:
            bound = self._caller_signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name!r}: {exc}") from None
        arguments = dict(bound.arguments)
        for param in self._caller_signature.parameters.values():
            if param.kind is param.VAR_POSITIONAL and param.name in arguments:
                arguments[param.name] = list(arguments[param.name])
        try:
            if json.loads(json.dumps(arguments)) != arguments:
                raise TypeError("arguments change in a JSON round trip (use lists, not tuples)")
        except (TypeError, ValueError) as exc:
            raise TypeError(f"task {self.name!r}: arguments must be JSON values: {exc}") from None
        return arguments

    def _plain_call(self, kwargs: dict[str, Any]) -> bool:
        # Keywords naming parameters, every required one given, each a string, int, bool or
        # None: what binding and a JSON round trip would accept unchanged, known without them
        # (on the accept path, that work was a measurable share of a request).
        names = self._keyword_names
        return (
            names is not None
            and names[1] <= kwargs.keys() <= names[0]
            and all(type(value) in _PLAIN for value in kwargs.values())
        )

    @functools.cached_property
    def _keyword_names(self) -> tuple[frozenset[str], frozenset[str]] | None:
        """(every parameter, the required ones), or None when a ``*args``/``**kwargs`` exists."""
        params = self._caller_signature.parameters.values()
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY) for p in params):
            return None
        return (
            frozenset(p.name for p in params),
            frozenset(p.name for p in params if p.default is p.empty),
        )

    @functools.cached_property
    def _keyword_call(self) -> bool:
        """Whether every parameter can be passed by keyword (no ``*args``, nothing
        positional-only): then a call needs no ``inspect`` binding (per run, that was costly)."""
        return all(
            p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            for p in self.signature.parameters.values()
        )

    @functools.cached_property
    def _caller_signature(self) -> inspect.Signature:
        """The signature callers bind to: the function's, without the injected context."""
        params = [p for p in self.signature.parameters.values() if p.name != CONTEXT_PARAM]
        return self.signature.replace(parameters=params)

    def call_args(
        self, arguments: Mapping[str, Any], ctx: TaskContext
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Turn stored arguments back into ``*args, **kwargs`` for the function."""
        if self._keyword_call:
            names = self.signature.parameters
            kwargs = {name: value for name, value in arguments.items() if name in names}
            if CONTEXT_PARAM in names:
                kwargs[CONTEXT_PARAM] = ctx
            return (), kwargs
        values: dict[str, Any] = {}
        for param in self.signature.parameters.values():
            if param.name == CONTEXT_PARAM:
                values[param.name] = ctx
            elif param.name in arguments:
                value = arguments[param.name]
                values[param.name] = tuple(value) if param.kind is param.VAR_POSITIONAL else value
        bound = inspect.BoundArguments(self.signature, values)  # type: ignore[arg-type,unused-ignore]
        return bound.args, bound.kwargs


class TaskRegistry:
    """Maps task names to functions. Names are what the database stores, so keep them stable."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskFunction] = {}

    def register(self, func: Callable[..., Any], name: str | None = None) -> TaskFunction:
        """Register ``func`` under ``name`` (default ``module.qualname``)."""
        task_name = name or f"{func.__module__}.{func.__qualname__}"
        signature = inspect.signature(func)
        task = TaskFunction(
            name=task_name,
            func=func,
            is_async=inspect.iscoroutinefunction(func),
            signature=signature,
        )
        existing = self._tasks.get(task_name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"task name {task_name!r} is already registered")
        self._tasks[task_name] = task
        return task

    def task(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@registry.task("send_report")``."""

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            self.register(func, name)
            return func

        return decorate

    def get(self, name: str) -> TaskFunction | None:
        """The task registered as ``name``."""
        return self._tasks.get(name)

    def lookup(self, func: Callable[..., Any]) -> TaskFunction:
        """The registration of ``func``; a function that was never registered is refused."""
        for task in self._tasks.values():
            if task.func is func:
                return task
        raise LookupError(
            f"{getattr(func, '__qualname__', func)!r} is not a registered task: "
            "decorate it with @registry.task()"
        )

    def names(self) -> list[str]:
        """Every registered name."""
        return sorted(self._tasks)
