"""Feedback: scores attached to a run after the fact (thumbs, review labels, evals)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuneloop.server.auth import IngestPrincipal

router = APIRouter(prefix="/api/v1", tags=["feedback"])


class FeedbackIn(BaseModel):
    """A score for one run."""

    model_config = ConfigDict(extra="forbid")

    trace_id: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]
    name: Annotated[str, Field(min_length=1, max_length=128)]
    value: float
    comment: Annotated[str | None, Field(max_length=4096)] = None

    @field_validator("name", "comment")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value


@router.post("/feedback", status_code=201)
def post_feedback(request: Request, principal: IngestPrincipal, body: FeedbackIn) -> dict[str, Any]:
    """Attach a score to a run; the run need not have arrived yet."""
    feedback_id = request.app.state.store.add_feedback(
        principal.project_id,
        trace_id=body.trace_id,
        name=body.name,
        value=body.value,
        comment=body.comment,
        key_id=principal.key_id,
        now_ms=request.app.state.clock.now_ms(),
    )
    return {"feedback_id": feedback_id}
