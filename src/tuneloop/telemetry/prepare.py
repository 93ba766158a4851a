"""The CPU-bound half of ingest, runnable in a worker process.

Imports no web or database code, so a worker process stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.otlp import Encoding, decode_request, decompress
from tuneloop.telemetry.pricing import PriceTable
from tuneloop.telemetry.rows import PreparedSpans, prepare

if TYPE_CHECKING:
    # Annotations only: tuneloop.settings brings pydantic-settings and PyYAML, which a
    # worker process does not otherwise need.
    from tuneloop.settings import ModelPrice


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
