"""What the server and its ingest workers import: the memory they cost (issue 2).

The figures behind these checks (benchmarks/ingest.py, 200k spans) are in the README;
the tests assert the imports that produce them, not a memory threshold, so they fail
on the change that brings a heavy package back rather than on a noisy machine.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from tests.otlp_factory import agent_run, request
from tuneloop.server.ingest_pool import IngestPreparer
from tuneloop.server.ingest_worker import normalizer_of, settings_frame
from tuneloop.settings import ModelPrice, load_settings
from tuneloop.telemetry.prepare import NormalizerSpec, Prepared, prepare_request


def _loaded(code: str, modules: list[str]) -> list[str]:
    """The `modules` present in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return [name for name in result.stdout.strip().split(",") if name]


def test_importing_the_server_loads_no_scipy_jinja2_or_alembic() -> None:
    # scipy.special (~18 MB) loads on the first statistic, Jinja2 on the first dashboard
    # page, Alembic when a database is migrated.
    heavy = ["scipy", "jinja2", "alembic", "mako", "statsmodels", "multiprocessing"]
    assert _loaded("import tuneloop.server.app", heavy) == []


def test_the_ingest_worker_imports_only_what_preparing_needs() -> None:
    # What a worker process runs before its first request (see ingest_worker.WORKER_CODE).
    heavy = [
        "pydantic",
        "pydantic_settings",
        "yaml",
        "fastapi",
        "starlette",
        "sqlalchemy",
        "numpy",
        "httpx",
        "typer",
        "rich",
        "tuneloop.settings",
        "tuneloop.sdk",
        "tuneloop.store",
    ]
    loaded = _loaded("import tuneloop.server.ingest_worker", [*heavy, "google.protobuf"])
    assert loaded == ["google.protobuf"]


def test_import_tuneloop_loads_the_sdk_on_first_use() -> None:
    assert _loaded("import tuneloop", ["tuneloop.sdk", "httpx", "pydantic"]) == []
    assert _loaded("from tuneloop import Client", ["tuneloop.sdk", "httpx"]) == [
        "tuneloop.sdk",
        "httpx",
    ]


def _spec() -> NormalizerSpec:
    # A price the defaults do not have, so the test sees it cross the pipe.
    prices = load_settings().prices() | {
        "house-model": ModelPrice(input_per_1k=0.5, output_per_1k=2.0)
    }
    return NormalizerSpec(prices=prices, max_attribute_chars=64, max_attributes_per_span=8)


# Three runs, each one call of the house model (1,200 in, 300 out: $1.20) and one tool
# call, with an attribute over the 64-character limit.
BODY = request(
    *[
        span
        for _ in range(3)
        for span in agent_run(
            llm=[("house-model", 1200, 300)], tools=["lookup"], attrs={"note": "x" * 500}
        ).spans
    ]
).SerializeToString()
LIMIT = 1 << 20


def _same(left: Prepared, right: Prepared) -> None:
    assert left.rejected == right.rejected
    assert left.rejection_message == right.rejection_message
    assert len(left.spans) == len(right.spans) > 0
    for name in left.spans.__slots__:
        assert getattr(left.spans, name) == getattr(right.spans, name), name


def test_a_worker_normalizer_prices_and_truncates_like_the_server_one() -> None:
    spec = _spec()
    expected = prepare_request(spec.build(), "acme", BODY, None, "protobuf", LIMIT)
    got = prepare_request(
        normalizer_of(settings_frame(spec)), "acme", BODY, None, "protobuf", LIMIT
    )
    _same(got, expected)
    assert sum(counter[3] for counter in got.spans.counters) == pytest.approx(3 * 1.2)


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_processes_prepare_what_the_server_would(workers: int) -> None:
    spec = _spec()
    expected = prepare_request(spec.build(), "acme", BODY, None, "protobuf", LIMIT)
    preparer = IngestPreparer(spec, workers=workers)
    preparer.start()
    try:
        assert len(preparer.pids()) == workers

        async def prepare_many() -> list[Prepared]:
            calls = [preparer.prepare("acme", BODY, None, "protobuf", LIMIT) for _ in range(5)]
            return await asyncio.gather(*calls)

        for prepared in asyncio.run(prepare_many()):
            _same(prepared, expected)
    finally:
        pids = preparer.pids()
        preparer.close()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
