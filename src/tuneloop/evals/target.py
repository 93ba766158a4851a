"""What an eval target is and what it returns.

A target is anything that answers a case: an ``async (input, config) -> output``
callable given by import path (``package.module:function``), or, once the runtime's
``Agent`` exists, an agent. A plain synchronous callable works too: it runs in a worker
thread so that a per-case timeout still fires.

The output may be a plain value (the answer), or a `TargetResult`, or any mapping or
object carrying some of its fields::

    {
      "output": "Your order A-1001 ships tomorrow.",     # the answer (any JSON value)
      "tool_calls": [{"name": "lookup_order",            # in the order they were made
                      "arguments": {"order_id": "A-1001"},
                      "status": "success"}],             # optional: success|partial|error
      "latency_ms": 812.0,        # optional: measured by the runner when missing
      "cost_usd": 0.0021,         # optional: what the run cost
      "trace_id": "5b8a…",        # optional: the run's own trace, when it traced itself
      "state": {"orders": {...}}, # optional: the environment after the run (final-state checks)
      "metadata": {...}           # optional: anything else evaluators may read
    }

The runtime ``Agent`` returns this shape so that every evaluator reads one thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import inspect
import math
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from tuneloop.errors import ConfigError, InvalidInputError

_RESULT_KEYS = frozenset(
    {"output", "tool_calls", "latency_ms", "cost_usd", "trace_id", "state", "metadata"}
)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call the target made: its name, arguments and (optionally) how it ended."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = {"name": self.name, "arguments": dict(self.arguments)}
        if self.status is not None:
            out["status"] = self.status
        return out


@dataclass(frozen=True, slots=True)
class TargetResult:
    """What a target returned for one case, in the one shape evaluators read."""

    output: Any = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    latency_ms: float | None = None
    cost_usd: float | None = None
    trace_id: str | None = None
    state: Any = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


class Target(Protocol):
    """Something the runner can ask to answer a case."""

    async def __call__(self, input: Any, config: Any) -> Any:
        """Answer ``input`` under ``config``; see the module docstring for the result shape."""
        ...


def to_target_result(value: Any) -> TargetResult:
    """Read whatever a target returned as a `TargetResult`.

    A `TargetResult` is kept; a mapping whose keys are all result fields and that has
    ``output`` is read field by field; so is an object with an ``output`` attribute
    (a pydantic model, a dataclass); anything else is the output itself.

    Raises:
        InvalidInputError: a field has the wrong type (``tool_calls`` not a list of
            ``{name, arguments}``, a negative latency...).
    """
    if isinstance(value, TargetResult):
        return value
    fields: Mapping[str, Any]
    if isinstance(value, Mapping) and "output" in value and set(value) <= _RESULT_KEYS:
        fields = value
    elif not isinstance(value, str | bytes | Mapping) and hasattr(value, "output"):
        fields = {key: getattr(value, key) for key in _RESULT_KEYS if hasattr(value, key)}
    else:
        return TargetResult(output=value)
    return TargetResult(
        output=fields.get("output"),
        tool_calls=tool_calls_from(fields.get("tool_calls")),
        latency_ms=_non_negative(fields.get("latency_ms"), "latency_ms"),
        cost_usd=_non_negative(fields.get("cost_usd"), "cost_usd"),
        trace_id=_optional_str(fields.get("trace_id"), "trace_id"),
        state=fields.get("state"),
        metadata=MappingProxyType(dict(fields.get("metadata") or {})),
    )


def tool_calls_from(value: Any) -> tuple[ToolCallRecord, ...]:
    """Tool calls from a list of mappings or objects with ``name`` and ``arguments``.

    Raises:
        InvalidInputError: an item has no name, or arguments that are not a mapping.
    """
    if value is None:
        return ()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidInputError(
            f"tool_calls must be a list of {{name, arguments}}, got {type(value).__name__}"
        )
    calls = []
    for index, item in enumerate(value):
        if isinstance(item, ToolCallRecord):
            calls.append(item)
            continue
        get = (
            item.get if isinstance(item, Mapping) else lambda key, obj=item: getattr(obj, key, None)
        )
        name = get("name")
        arguments = get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"tool_calls[{index}] has no name: {item!r}")
        if not isinstance(arguments, Mapping):
            raise InvalidInputError(
                f"tool_calls[{index}] ({name}): arguments must be a mapping, got "
                f"{type(arguments).__name__}"
            )
        status = get("status")
        calls.append(
            ToolCallRecord(
                name,
                MappingProxyType(dict(arguments)),
                None if status is None else str(status),
            )
        )
    return tuple(calls)


def _non_negative(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    if value < 0:
        raise InvalidInputError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInputError(f"{name} must be a string, got {type(value).__name__}")


def import_object(path: str, *, search_paths: Iterable[Path] = (), what: str = "object") -> Any:
    """Import ``package.module:attribute`` (or ``package.module.attribute``).

    Directories in ``search_paths`` are put at the front of ``sys.path`` first (the
    suite file's directory, so a suite can name a module next to it).

    Raises:
        ConfigError: the path is malformed, or the module or attribute does not exist.
    """
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ConfigError(
            f"{what} {path!r} is not an import path; write it as 'package.module:function'"
        )
    for directory in reversed([str(Path(p).resolve()) for p in search_paths]):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} {path!r}: cannot import module {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"{what} {path!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return obj


def as_async(function: Callable[..., Any], *, what: str) -> Callable[..., Awaitable[Any]]:
    """An awaitable version of ``function``: coroutine functions as they are, others in a thread.

    A synchronous function runs in a daemon thread of its own, so that one that hangs
    past its timeout neither blocks the event loop nor keeps the process from exiting.

    Raises:
        ConfigError: ``function`` is not callable.
    """
    if not callable(function):
        raise ConfigError(f"{what} must be callable, got {type(function).__name__}")
    if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - instances with an async __call__
    ):
        return function

    async def threaded(*args: Any) -> Any:
        result = await in_daemon_thread(function, *args)
        # A sync function may still hand back an awaitable (a lambda wrapping a coroutine).
        if inspect.isawaitable(result):
            return await result
        return result

    return threaded


async def in_daemon_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` in a new daemon thread, in a copy of the current context."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(outcome: Any, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome)

    def work() -> None:
        try:
            outcome = context.run(function, *args)
        except BaseException as exc:  # handed to the awaiting task, never lost
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome, None)

    threading.Thread(target=work, name="tuneloop-eval-target", daemon=True).start()
    return await future


def agent_target(factory: Callable[..., Any], *, what: str) -> Callable[..., Awaitable[Any]]:
    """A target that builds an agent from the config and asks it to ``run(input)``.

    ``factory(config)`` (sync or async) returns the agent, once per config object: every
    trial of a run shares it. The agent's ``run`` may be sync or async; its result is
    read like any target's (the runtime's ``RunResult`` carries ``output``,
    ``tool_calls``, ``cost_usd``, ``trace_id`` and ``outcome``).

    Raises:
        ConfigError: ``factory`` is not callable.
    """
    build = as_async(factory, what=what)
    lock = asyncio.Lock()
    built: list[tuple[Any, Callable[..., Awaitable[Any]]]] = []

    async def run(input: Any, config: Any) -> Any:
        async with lock:
            if not built or built[0][0] is not config:
                agent = await build(config)
                method = getattr(agent, "run", None)
                if not callable(method):
                    raise ConfigError(
                        f"{what} returned {type(agent).__name__}, which has no run() method"
                    )
                built[:] = [(config, as_async(method, what=f"{what}: run"))]
            answer = built[0][1]
        return await answer(input)

    return run
