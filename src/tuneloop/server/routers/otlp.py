"""OTLP/HTTP trace ingest: ``POST /v1/traces`` (protobuf or JSON, optionally gzip)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from google.rpc.status_pb2 import Status
from starlette.concurrency import run_in_threadpool

from tuneloop.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    StoreBusyError,
    TuneloopError,
)
from tuneloop.server.auth import require
from tuneloop.server.http_errors import status_of
from tuneloop.telemetry.otlp import Encoding, encode_response, encoding_of

router = APIRouter(tags=["ingest"])

_MEDIA = {"protobuf": "application/x-protobuf", "json": "application/json"}
# google.rpc.Code values used in OTLP error bodies.
_RPC_CODE = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 503: 14}
_authorize = require("ingest")


def _error(encoding: Encoding, status: int, message: str, *, retry_after: bool = False) -> Response:
    code = _RPC_CODE.get(status, 13)
    headers = {"Retry-After": "1"} if retry_after else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if encoding == "protobuf":
        body = Status(code=code, message=message).SerializeToString()
    else:
        body = json.dumps({"code": code, "message": message}).encode()
    return Response(body, status_code=status, media_type=_MEDIA[encoding], headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"body of {declared} bytes exceeds the limit of {limit} bytes "
            "(TUNELOOP_MAX_BODY_BYTES); send smaller batches"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"body exceeds the limit of {limit} bytes (TUNELOOP_MAX_BODY_BYTES); "
                "send smaller batches"
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/v1/traces", response_class=Response)
async def export_traces(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Store an OTLP trace export; acknowledged only once its spans are committed."""
    encoding = encoding_of(request.headers.get("content-type"))
    if encoding is None:
        return _error(
            "json",
            415,
            f"unsupported Content-Type {request.headers.get('content-type')!r}: "
            "send application/x-protobuf or application/json",
        )
    app = request.app
    limit: int = app.state.settings.max_body_bytes
    try:
        # Checked here rather than as a dependency so that a refused key, too, gets the
        # OTLP error body (a google.rpc.Status in the request's encoding).
        principal = await run_in_threadpool(_authorize, request, authorization, x_api_key)
        body = await _read_body(request, limit)
        prepared = await app.state.preparer.prepare(
            principal.project_id, body, request.headers.get("content-encoding"), encoding, limit
        )
        if prepared.rejected and not len(prepared.spans):
            raise InvalidInputError(
                f"all {prepared.rejected} spans rejected: {prepared.rejection_message}"
            )
        if len(prepared.spans):
            # Acknowledge only after the commit that holds these spans.
            await asyncio.wrap_future(app.state.store.writer.submit(prepared.spans))
    except TuneloopError as exc:
        return _error(
            encoding, status_of(exc), str(exc), retry_after=isinstance(exc, StoreBusyError)
        )
    return Response(
        encode_response(
            encoding, rejected_spans=prepared.rejected, error_message=prepared.rejection_message
        ),
        media_type=_MEDIA[encoding],
    )
