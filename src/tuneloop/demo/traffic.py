"""Production traffic in simulated time: customers, the agent, its support team, the controller.

`Traffic.serve` plays customers' messages through the `SupportAgent` one run at a
time, on the demo's clock, as fast as the CPU allows. Every ``tick_every_ms`` of
simulated time it does what happens in the background of a real deployment:

- the support team works through refunds waiting for approval (it approves those
  within its limit and rejects the rest) and the runs carry on;
- the SDK's buffered spans are flushed, so the server has seen every run so far;
- the server's controller ticks (`ControllerHook`), evaluating rollouts and alerts;
  when it moved an allocation, the agent's SDK state is refreshed before the next run.

After each run the customer reacts: a rating (``thumbs`` feedback) and, when the
agent routed the message to the wrong tool, a correction of the routing decision
(``decision.router`` feedback, from the customer or the colleague who took over).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.demo.customers import Customers, Request
from tuneloop.demo.services import order_record
from tuneloop.demo.support import HANDOFF, REFUND, ROUTER_STEP, SupportAgent, routed_intent
from tuneloop.errors import RuntimeFailure
from tuneloop.runtime import RunResult
from tuneloop.sdk import Client

ControllerHook = Callable[[], bool]
"""Runs one controller tick now; True when it moved an allocation (advanced, rolled back...)."""
Done = Callable[[], bool]
"""Asked at ticks: True once the act has what it waits for."""
REFUND_LIMIT_CENTS = 30_000
_FLUSH_TIMEOUT_S = 120.0
_STATE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Served:
    """What a stretch of traffic did.

    Attributes:
        runs: customer messages answered.
        reviewed: refunds the support team decided (each run carries on as a run of
            its own: a new segment, a new trace).
        since_ms: simulated start.
        until_ms: simulated end.
        done: the act's condition was met (else the time ran out).
    """

    runs: int
    reviewed: int
    since_ms: int
    until_ms: int
    done: bool


class Traffic:
    """Drives customers through the agent on the demo's clock (see the module docstring).

    Args:
        clock: the simulated clock every component reads.
        customers: the world's customers.
        agent: the support agent.
        client: the agent's SDK client (feedback, flushes, state refreshes).
        controller: the controller hook.
        tick_every_ms: simulated time between two ticks.
    """

    def __init__(
        self,
        *,
        clock: FakeClock,
        customers: Customers,
        agent: SupportAgent,
        client: Client,
        controller: ControllerHook,
        tick_every_ms: int,
    ) -> None:
        self._clock = clock
        self._customers = customers
        self._agent = agent
        self._client = client
        self._controller = controller
        self._tick_every_ms = tick_every_ms
        self._next_tick_ms = clock.now_ms() + tick_every_ms
        self._busy_until_ms = clock.now_ms()
        self._feedback = ThreadPoolExecutor(max_workers=2, thread_name_prefix="demo-feedback")
        self._pending: list[Future[bool]] = []
        self.runs = 0
        self.reviewed = 0

    @property
    def now_ms(self) -> int:
        """The simulated time."""
        return self._clock.now_ms()

    async def serve(
        self,
        *,
        for_ms: int,
        done: Done | None = None,
        check_every_ms: int | None = None,
    ) -> Served:
        """Serve customers for ``for_ms`` of simulated time, or until ``done()`` says so.

        Args:
            for_ms: the longest stretch to serve.
            done: checked every ``check_every_ms`` (default: every tick), after the tick.
            check_every_ms: how often to ask ``done``.
        """
        since = self.now_ms
        deadline = since + for_ms
        every = check_every_ms or self._tick_every_ms
        next_check = since + every
        runs, reviewed = self.runs, self.reviewed

        def served(done: bool) -> Served:
            return Served(self.runs - runs, self.reviewed - reviewed, since, self.now_ms, done)

        while True:
            due = max(self._customers.peek_ms(), self._busy_until_ms)
            while self._next_tick_ms <= min(due, deadline):
                await self._tick()
                if done is not None and self.now_ms >= next_check:
                    next_check = self.now_ms + every
                    if done():
                        return served(True)
            if due > deadline:
                self._move_to(deadline)
                return served(False)
            request = self._customers.next_request()
            self._move_to(request.due_ms)
            result = await self._agent.handle(
                request.text, unit_id=request.unit_id, session_id=request.session_id
            )
            self._busy_until_ms = self.now_ms
            self.runs += 1
            self._react(request, result)

    def settle(self) -> None:
        """Deliver every rating and span sent so far (before reading the platform's figures).

        Raises:
            RuntimeFailure: the server did not take them in time.
        """
        for future in self._pending:
            future.result()
        self._pending.clear()
        if not self._client.flush(timeout_s=_FLUSH_TIMEOUT_S):
            raise RuntimeFailure(
                f"the SDK could not deliver every span to the server: {self._client.stats}"
            )

    def refresh_state(self) -> None:
        """Wait until the SDK has fetched the agent's state after this call.

        Two completed checks: the first may have been in flight when the state changed.

        Raises:
            RuntimeFailure: the server did not answer in time.
        """
        before = _checks(self._client)
        deadline = time.monotonic() + _STATE_TIMEOUT_S
        while _checks(self._client) < before + 2:
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"the SDK did not refresh the agent's state within {_STATE_TIMEOUT_S:g} s: "
                    f"{self._client.config_stats}"
                )
            time.sleep(0.002)

    def close(self) -> None:
        """Finish sending ratings and stop the sender threads."""
        self._feedback.shutdown(wait=True)

    # --- internals --------------------------------------------------------------------

    def _move_to(self, at_ms: int) -> None:
        behind = at_ms - self.now_ms
        if behind > 0:
            self._clock.advance(behind)

    async def _tick(self) -> None:
        self._move_to(self._next_tick_ms)
        self._next_tick_ms += self._tick_every_ms
        for item in await self._agent.pending(REFUND):
            order = str((item.arguments or {}).get("order_id", ""))
            total = int(order_record(order)["total_cents"]) if order else 0
            approve = 0 < total <= REFUND_LIMIT_CENTS
            reason = "within the team's refund limit" if approve else "above the team's limit"
            await self._agent.decide(item, approve=approve, reason=reason)
            self.reviewed += 1
        self._busy_until_ms = max(self._busy_until_ms, self.now_ms)
        self.settle()
        if self._controller():
            self.refresh_state()

    def _react(self, request: Request, result: RunResult) -> None:
        question = request.question
        if question is None or result.trace_id is None:
            return
        if result.waiting and result.review is not None and result.review.tool == REFUND:
            return  # the customer waits for the refund; they rate it later, if at all
        routed = routed_intent(result)
        if routed is not None and routed != question.intent:
            name = semconv.FEEDBACK_DECISION_PREFIX + ROUTER_STEP
            self._send(result.trace_id, name, 0.0)
        handed_over = result.waiting and result.review is not None and result.review.tool == HANDOFF
        answered = result.outcome == "success" and routed == question.intent
        reaction = self._customers.react(
            request, answered=answered, escalated=handed_over, at_ms=self.now_ms
        )
        if reaction.thumbs is not None:
            self._send(result.trace_id, semconv.FEEDBACK_THUMBS, float(reaction.thumbs))

    def _send(self, trace_id: str, name: str, value: float) -> None:
        self._pending.append(self._feedback.submit(self._client.feedback, trace_id, name, value))


def _checks(client: Client) -> int:
    stats = client.config_stats
    return stats.state_fetched + stats.state_unchanged
