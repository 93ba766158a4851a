"""The demo's customers: deterministic per seed, realistic traffic, reactions to answers."""

from __future__ import annotations

from collections import Counter

import pytest

from tuneloop.demo.customers import INJECTION, INTENTS, QUESTIONS, Customers, understand
from tuneloop.errors import InvalidInputError

START_MS = 1_767_225_600_000
HOUR_MS = 3_600_000


def requests(seed: int, count: int, runs_per_hour: float = 600.0) -> list[object]:
    customers = Customers(seed, start_ms=START_MS, runs_per_hour=runs_per_hour)
    return [customers.next_request() for _ in range(count)]


def test_the_same_seed_sends_the_same_messages() -> None:
    assert requests(3, 300) == requests(3, 300)
    assert requests(3, 300) != requests(4, 300)


def test_messages_arrive_in_time_order_at_about_the_asked_rate() -> None:
    sent = requests(5, 2400)
    times = [r.due_ms for r in sent]  # type: ignore[attr-defined]

    assert times == sorted(times)
    assert times[0] >= START_MS
    hours = (times[-1] - START_MS) / HOUR_MS
    assert 3.4 < hours < 4.6  # 2,400 messages at 600 an hour


def test_traffic_mixes_intents_returning_customers_and_repeated_wording() -> None:
    sent = requests(7, 2000)
    intents = Counter(r.question.intent for r in sent if r.question is not None)  # type: ignore[attr-defined]
    assert set(intents) == set(INTENTS)
    assert 0.35 < intents["order_status"] / sum(intents.values()) < 0.45
    units = {r.unit_id for r in sent}  # type: ignore[attr-defined]
    sessions = {r.session_id for r in sent}  # type: ignore[attr-defined]
    assert len(units) < len(sessions) < len(sent)
    texts = Counter(r.text for r in sent)  # type: ignore[attr-defined]
    assert texts.most_common(1)[0][1] > 50  # policy and account questions recur verbatim
    injections = sum(r.text == INJECTION for r in sent)  # type: ignore[attr-defined]
    assert 0 < injections < 60
    phones = [r.text for r in sent if "reach me on +1" in r.text]  # type: ignore[attr-defined]
    assert 60 < len(phones) < 200


def test_every_question_is_understood_with_its_order_and_despite_a_phone_number() -> None:
    for question in QUESTIONS:
        text = question.text.format(order="A-12345")
        assert understand(text) == (question, "A-12345" if question.needs_order else None)
        assert understand(text + " You can reach me on +1 415 555 0142.") == understand(text)
        assert understand(text + " You can reach me on [REDACTED:phone].") == understand(text)
    assert understand(INJECTION) is None
    assert understand("Where is my order?") is None


def test_an_unanswered_question_is_asked_again_in_the_same_session() -> None:
    customers = Customers(11, start_ms=START_MS, runs_per_hour=600.0)
    asked = [customers.next_request() for _ in range(200)]
    reasks = [
        customers.react(r, answered=False, escalated=False, at_ms=r.due_ms + 3000)
        for r in asked
        if r.question is not None
    ]
    scheduled = [r.reask_ms for r in reasks if r.reask_ms is not None]
    assert 0.3 < len(scheduled) / len(reasks) < 0.7
    following = [customers.next_request() for _ in range(400)]
    again = [r for r in following if r.turn > 1 and r.text in {a.text for a in asked}]
    assert again
    originals = {(a.session_id, a.text) for a in asked}
    assert all((r.session_id, r.text) in originals or r.turn == 2 for r in again)


def test_answered_customers_rate_well_and_unanswered_ones_badly() -> None:
    customers = Customers(2, start_ms=START_MS, runs_per_hour=600.0)
    asked = [r for r in (customers.next_request() for _ in range(3000)) if r.question is not None]
    good = [customers.react(r, answered=True, escalated=False, at_ms=r.due_ms) for r in asked]
    bad = [customers.react(r, answered=False, escalated=False, at_ms=r.due_ms) for r in asked]
    up_good = [x.thumbs for x in good if x.thumbs is not None]
    up_bad = [x.thumbs for x in bad if x.thumbs is not None]
    assert sum(up_good) / len(up_good) > 0.8
    assert sum(up_bad) / len(up_bad) < 0.2


def test_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(InvalidInputError, match="runs_per_hour must be > 0"):
        Customers(1, start_ms=START_MS, runs_per_hour=0)
