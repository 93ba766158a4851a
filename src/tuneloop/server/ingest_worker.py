"""An ingest worker process: decodes, normalizes and prepares OTLP requests for the server.

`IngestPreparer` starts each worker with :data:`WORKER_CODE` and talks to it over its
standard input and output in length-prefixed frames: first the normalizer's settings
(answered with ``ready``), then one pickled request at a time, each answered with
``("ok", Prepared)`` or ``("error", exception, traceback text)``.

A worker is a plain ``python -c`` process rather than a multiprocessing child, because
a spawned multiprocessing child re-imports the parent's ``__main__``: under
``tuneloop serve`` that is the whole CLI (Typer, Rich, pydantic-settings), ~30 MB per
worker for nothing. This module imports only what preparing needs (protobuf, the OTLP
decoder, the normalizer), so a worker stays near 20 MB. Keep it that way: no pydantic,
FastAPI, SQLAlchemy or numpy here or in what it imports (a test checks).
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import traceback
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.prepare import prepare_request
from tuneloop.telemetry.pricing import PriceTable

if TYPE_CHECKING:
    from tuneloop.telemetry.prepare import NormalizerSpec

# Run as ``python -c WORKER_CODE PATH...``. Ctrl-C reaches the whole process group, but
# stopping the workers is the server's job, even while one is still importing; then the
# server's sys.path, so that the worker imports this very tuneloop.
WORKER_CODE = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "sys.path[:] = sys.argv[1:]; "
    "from tuneloop.server.ingest_worker import main; main()"
)
READY = b"ready"
_HEADER = struct.Struct("!Q")


@dataclass(frozen=True, slots=True)
class WorkerPrice:
    """A model's price as the worker holds it: plain floats, no pydantic model to unpickle."""

    input_per_1k: float
    output_per_1k: float


def write_frame(stream: IO[bytes], data: bytes) -> None:
    """Write one frame (length, then bytes) and flush it."""
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """Read one frame; None when the other side has closed the pipe (or died)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    return data if len(data) == size else None


def settings_frame(spec: NormalizerSpec) -> bytes:
    """The first frame a worker reads: what it needs to build the same Normalizer as ``spec``."""
    prices = {
        model: (float(price.input_per_1k), float(price.output_per_1k))
        for model, price in spec.prices.items()
    }
    return pickle.dumps(
        (prices, spec.max_attribute_chars, spec.max_attributes_per_span),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def normalizer_of(frame: bytes) -> Normalizer:
    """The Normalizer a `settings_frame` describes."""
    prices, max_attribute_chars, max_attributes_per_span = pickle.loads(frame)
    return Normalizer(
        prices=PriceTable({model: WorkerPrice(*price) for model, price in prices.items()}),
        max_attribute_chars=max_attribute_chars,
        max_attributes_per_span=max_attributes_per_span,
    )


def _answer(normalizer: Normalizer, frame: bytes) -> bytes:
    try:
        reply: tuple[object, ...] = ("ok", prepare_request(normalizer, *pickle.loads(frame)))
    except Exception as exc:
        reply = ("error", exc, traceback.format_exc())
    try:
        return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle: send what it said
        error = RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")
        return pickle.dumps(("error", error, reply[-1]), protocol=pickle.HIGHEST_PROTOCOL)


def main() -> None:
    """Serve requests from standard input until the server closes it."""
    requests = sys.stdin.buffer
    # Answers go to a copy of the original stdout; file descriptor 1 becomes stderr, so
    # that a stray print from any library cannot corrupt a frame.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    settings = read_frame(requests)
    if settings is None:
        return
    normalizer = normalizer_of(settings)
    write_frame(answers, READY)
    while (frame := read_frame(requests)) is not None:
        write_frame(answers, _answer(normalizer, frame))
