"""Finding the LLM provider an evaluator (the judge) talks through."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneloop.errors import ConfigError
from tuneloop.evals.target import import_object

if TYPE_CHECKING:
    from tuneloop.evals.evaluators.base import BuildContext


def resolve_provider(
    spec: str, options: Mapping[str, Any], *, context: BuildContext, what: str
) -> Any:
    """A provider object with an async ``chat(request)`` method.

    ``spec`` is resolved, in order, by the factory the caller injected
    (`BuildContext.providers`), as an import path (``package.module:attribute``: a
    provider, or a factory called with ``options``), or as the name of one of the
    runtime's providers: ``openai`` (`OpenAIChatProvider(**options)`), ``anthropic``
    (`AnthropicProvider(**options)`), ``simulated`` (options ``policy``, an import
    path to a policy function, and ``seed``; it answers without latency).

    Raises:
        ConfigError: nothing by that name, or the result has no ``chat`` method.
    """
    if context.providers is not None:
        provider = context.providers(spec, options)
    elif ":" in spec or "." in spec:
        provider = import_object(spec, search_paths=[context.base_dir], what=f"{what} provider")
        if not hasattr(provider, "chat") and callable(provider):
            provider = _call(provider, options, what)
    else:
        provider = _builtin(spec, options, what, context.base_dir)
    if not callable(getattr(provider, "chat", None)):
        raise ConfigError(
            f"{what}: provider {spec!r} gave {type(provider).__name__}, which has no chat() method"
        )
    return provider


def _builtin(name: str, options: Mapping[str, Any], what: str, base_dir: Path) -> Any:
    if name == "simulated":
        return _simulated(options, what, base_dir)
    classes = {
        "openai": ("tuneloop.runtime.providers.openai", "OpenAIChatProvider"),
        "anthropic": ("tuneloop.runtime.providers.anthropic", "AnthropicProvider"),
    }
    if name not in classes:
        raise ConfigError(
            f"{what}: unknown provider {name!r}; use openai, anthropic or simulated, or an "
            "import path 'package.module:factory'"
        )
    module_name, class_name = classes[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what}: provider {name!r} needs its SDK: pip install 'tuneloop[{name}]' ({exc})"
        ) from exc
    return _call(getattr(module, class_name), options, what)


def _simulated(options: Mapping[str, Any], what: str, base_dir: Path) -> Any:
    """The runtime's simulated provider, answering at once from a policy given by import path."""
    import asyncio
    import random

    from tuneloop.clock import SystemClock
    from tuneloop.runtime.providers.simulated import LatencyModel, SimulatedProvider

    unknown = set(options) - {"policy", "seed"}
    if "policy" not in options or unknown:
        raise ConfigError(
            f"{what}: the simulated provider takes options policy ('package.module:function', "
            f"required) and seed; got {sorted(options)}"
        )
    policy = import_object(
        str(options["policy"]), search_paths=[base_dir], what=f"{what} simulated policy"
    )
    return SimulatedProvider(
        policy,
        rng=random.Random(options.get("seed", 0)),
        clock=SystemClock(),
        sleep=asyncio.sleep,
        latency=LatencyModel(0.0, 0.0, 0.0, 0.0),
    )


def _call(factory: Any, options: Mapping[str, Any], what: str) -> Any:
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as exc:
        raise ConfigError(f"{what}: bad provider options {sorted(options)}: {exc}") from None
    except ValueError:
        pass  # no signature to check (a builtin): let the call decide
    try:
        return factory(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: the provider factory refused its options: {exc}") from exc
