"""A process killed with SIGKILL mid-run: the next process resumes it, and the refund happens once.

The support agent's refund waits for approval; the approved run is resumed in a real
subprocess that kills itself right after the refund (before the checkpoint recording
it), or inside the refund (after the payment, before tuneloop records anything). A
third process finishes the run. Its answer is the answer of a run that never crashed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tuneloop.clock import SystemClock
from tuneloop.runtime import Agent, real_sleep

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "support_agent"
RUNNER = Path(__file__).with_name("crash_runner.py")
MESSAGE = "I want a refund for order A-1003, it arrived broken."
RUN_ID = "crash-run-1"

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import support_app
    import support_shop

    yield support_app, support_shop


def support(example: Any, store: Path, payments: Path) -> tuple[Agent, Any]:
    app, shop = example
    bank = shop.Payments(payments)
    clock = SystemClock()
    return app.build_agent(
        app.simulated_model(clock, real_sleep), shop.Shop(bank), store=str(store), clock=clock
    ), bank


async def approved_run(example: Any, store: Path, payments: Path) -> Agent:
    """Start the run (it parks at the refund) and approve the refund."""
    agent, _ = support(example, store, payments)
    parked = await agent.run(MESSAGE, run_id=RUN_ID, unit_id="user-7")
    assert parked.waiting and parked.review is not None
    assert parked.review.tool == "refund"
    await agent.decide(parked.review.review_id, "approve", reviewer="ana", reason="photo seen")
    return agent


def resume_in_subprocess(
    store: Path, payments: Path, kill: str | None
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        str(RUNNER),
        RUN_ID,
        "--store",
        str(store),
        "--payments",
        str(payments),
    ]
    if kill is not None:
        command += ["--kill", kill]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)


async def reference_answer(example: Any, tmp_path: Path) -> str:
    """What the same run answers when nothing crashes."""
    agent = await approved_run(example, tmp_path / "ref.db", tmp_path / "ref-pay.db")
    done = await agent.resume(RUN_ID)
    assert done.outcome == "success" and done.output is not None
    return done.output


@pytest.mark.parametrize(
    ("kill", "payment_calls"),
    [("after-refund", 1), ("inside-refund", 2)],
)
async def test_a_killed_run_resumes_without_refunding_twice(
    example: Any, tmp_path: Path, kill: str, payment_calls: int
) -> None:
    store, payments = tmp_path / "runs.db", tmp_path / "payments.db"
    agent = await approved_run(example, store, payments)

    crashed = resume_in_subprocess(store, payments, kill)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    checkpoint = await agent.store.load(RUN_ID)
    assert checkpoint is not None
    # The crash came before the checkpoint: the run still owes the refund's result.
    assert checkpoint.state == "executing"
    assert checkpoint.data["messages"][-1]["tool_calls"][0]["name"] == "refund"
    _, bank = support(example, store, payments)
    assert bank.refunds() == [("A-1003", 12999)]

    finished = resume_in_subprocess(store, payments, None)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert (result["state"], result["outcome"]) == ("completed", "success")
    assert result["tools"] == [
        ["transfer_to_support-billing", "success"],
        ["lookup_order", "success"],
        ["refund", "success"],
    ]
    assert bank.refunds() == [("A-1003", 12999)]
    # after-refund: the ledger answered the replayed call; inside-refund: the tool ran
    # again with the same idempotency key, and the payment API deduplicated it.
    assert bank.attempts() == payment_calls
    assert result["output"] == await reference_answer(example, tmp_path)
