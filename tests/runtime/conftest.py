"""Fixtures for runtime tests: simulated time, recorded sleeps, real OpenTelemetry spans."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tuneloop.clock import FakeClock
from tuneloop.sdk.spans import Run, run_attributes


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Sleeps:
    """A `Sleep` that records each wait and moves the fake clock instead of waiting."""

    clock: FakeClock
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds * 1000)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps(clock: FakeClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)


@dataclass
class Traced:
    """Runs traced with the SDK's span helpers into an in-memory exporter."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    clock: FakeClock

    @contextmanager
    def run(self, agent: str = "support") -> Iterator[Run]:
        attributes = run_attributes(
            agent,
            unit_id="u1",
            session_id=None,
            config_version=None,
            variant=None,
            experiment=None,
            extra=None,
        )
        with Run(self.provider.get_tracer("test"), agent, attributes, clock=self.clock) as run:
            yield run

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, [span.name for span in self.spans()]
        return found[0]


@pytest.fixture
def traced(clock: FakeClock) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Traced(provider, exporter, clock)
    provider.shutdown()
