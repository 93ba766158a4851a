"""The CPU-bound half of ingest, runnable in a worker process.

Imports no web or database code, so a worker process stays small.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from tuneloop.settings import ModelPrice
from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.otlp import Encoding, decode_request, decompress
from tuneloop.telemetry.pricing import PriceTable
from tuneloop.telemetry.rows import PreparedSpans, prepare


@dataclass(frozen=True, slots=True)
class NormalizerSpec:
    """What a worker process needs to build its Normalizer (picklable)."""

    prices: dict[str, ModelPrice]
    max_attribute_chars: int
    max_attributes_per_span: int

    def build(self) -> Normalizer:
        """The Normalizer this spec describes."""
        return Normalizer(
            prices=PriceTable(self.prices),
            max_attribute_chars=self.max_attribute_chars,
            max_attributes_per_span=self.max_attributes_per_span,
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A decoded request: rows to write, and the spans refused with the first reasons."""

    spans: PreparedSpans
    rejected: int
    rejection_message: str


def prepare_request(
    normalizer: Normalizer,
    project_id: str,
    body: bytes,
    content_encoding: str | None,
    encoding: Encoding,
    limit: int,
) -> Prepared:
    """Decompress, decode, normalize and turn into rows; raises on malformed input."""
    raw = decompress(body, content_encoding, limit=limit)
    batch = normalizer.normalize(decode_request(raw, encoding))
    return Prepared(
        prepare(project_id, batch.spans), batch.rejected.count, batch.rejected.message()
    )


# Each worker process builds its Normalizer once, in the pool's initializer; this is
# per-process state of the worker, never touched in the server process.
_worker_normalizer: Normalizer | None = None


def init_worker(spec: NormalizerSpec) -> None:
    """Pool initializer: build this worker process's Normalizer."""
    # Ctrl-C is the server's to handle; the pool is shut down from there.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker_normalizer
    _worker_normalizer = spec.build()


def prepare_in_worker(
    project_id: str, body: bytes, content_encoding: str | None, encoding: Encoding, limit: int
) -> Prepared:
    """Pool task: prepare_request with this worker's Normalizer."""
    assert _worker_normalizer is not None, "worker initializer did not run"
    return prepare_request(_worker_normalizer, project_id, body, content_encoding, encoding, limit)
