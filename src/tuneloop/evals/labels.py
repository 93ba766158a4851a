"""The label failure attribution puts on a failed case: who caused it, and how."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Responsible = Literal["user", "agent", "environment"]
FaultType = Literal["wrong_tool", "wrong_argument", "goal_partly_completed", "other"]


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who caused a failed case and how, as a judge labelled it (`tuneloop.evals.attribution`).

    ``responsible`` and ``fault`` are None when the judge's answer could not be read;
    ``error`` then says why.
    """

    responsible: Responsible | None
    fault: FaultType | None
    reasoning: str = ""
    trial: int = 0
    model: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "responsible": self.responsible,
            "fault": self.fault,
            "reasoning": self.reasoning,
            "trial": self.trial,
            "model": self.model,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attribution:
        """Read `to_dict` output back."""
        return cls(
            responsible=data.get("responsible"),
            fault=data.get("fault"),
            reasoning=str(data.get("reasoning") or ""),
            trial=int(data.get("trial") or 0),
            model=data.get("model"),
            error=data.get("error"),
        )
