"""Output evaluators: exact, contains, regex, JSON schema, numeric, edit distance, ROUGE-L, BLEU."""

from __future__ import annotations

import json

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics.bleu import BLEU

from tests.evals.helpers import score
from tuneloop.evals.evaluators.base import BaseEvaluator, Params
from tuneloop.evals.evaluators.registry import BUILTIN_EVALUATORS
from tuneloop.evals.evaluators.text import levenshtein


def build(name: str, **params: object) -> BaseEvaluator[Params]:
    evaluator_type = BUILTIN_EVALUATORS[name]
    return evaluator_type(name, evaluator_type.params_model.model_validate(params))


def test_exact_match_normalizes_whitespace_and_accepts_structured_outputs() -> None:
    exact = build("exact_match")
    assert score(exact, "  Hello   world ", "Hello world").status == "pass"
    assert score(exact, "hello world", "Hello world").status == "fail"
    assert score(build("exact_match", case_sensitive=False), "HELLO world", "hello World").passed
    assert score(exact, {"a": [1, 2]}, {"a": [1, 2]}).passed
    assert not score(exact, {"a": [2, 1]}, {"a": [1, 2]}).passed
    assert score(exact, "b", ["a", "b"]).passed  # any of several references
    skipped = score(exact, "x", {"contains": "x"})
    assert (skipped.status, skipped.score) == ("skipped", None)


def test_contains_scores_the_share_found_and_fails_on_forbidden_text() -> None:
    contains = build("contains")
    half = score(contains, "order A-1001 is late", {"contains": ["A-1001", "shipped"]})
    assert (half.status, half.score) == ("fail", 0.5)
    assert "missing ['shipped']" in half.explanation
    assert score(contains, "ORDER a-1001", {"contains": "a-1001"}).passed  # case-insensitive
    banned = score(contains, "your password is x", {"contains": "x", "not_contains": ["password"]})
    assert (banned.status, banned.score) == ("fail", 0.0)
    anyof = build("contains", values=["refund", "credit"], mode="any")
    assert score(anyof, "we issued a credit", None).passed
    assert (
        score(build("contains", case_sensitive=True), "abc", {"contains": "ABC"}).status == "fail"
    )


def test_regex_searches_or_fullmatches() -> None:
    assert score(build("regex"), "Order A-1001 shipped", {"regex": r"A-\d{4}"}).passed
    assert not score(build("regex", fullmatch=True), "Order A-1001", {"regex": r"A-\d{4}"}).passed
    assert score(build("regex", pattern="^yes$", ignore_case=True), "YES", None).passed
    bad_case_pattern = score(build("regex"), "x", {"regex": "("})
    assert (
        bad_case_pattern.status == "error"
        and "invalid expected.regex" in bad_case_pattern.explanation
    )


def test_json_schema_parses_strings_and_reports_the_first_error_path() -> None:
    schema = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["open", "closed"]}},
    }
    evaluator = build("json_schema")
    assert score(evaluator, json.dumps({"status": "open"}), {"schema": schema}).passed
    wrong = score(evaluator, {"status": "lost"}, {"schema": schema})
    assert wrong.status == "fail" and "/status" in wrong.explanation
    assert "not JSON" in score(evaluator, "{oops", {"schema": schema}).explanation


def test_numeric_reads_standalone_numbers_only() -> None:
    numeric = build("numeric", abs_tol=0.01)
    # "A-1003" is an identifier, not the number -1003.
    assert score(numeric, "Order A-1003 came to $129.99.", 129.99).passed
    assert score(numeric, "Total: 1,234.50 USD", 1234.5).passed
    off = score(numeric, "It was 12.5", 13)
    assert off.status == "fail" and "difference 0.5" in off.explanation
    assert score(build("numeric", rel_tol=0.05), 104, 100).passed
    assert score(numeric, "no digits here", 3).status == "fail"
    assert score(numeric, "7", "seven").status == "skipped"  # the reference is not a number
    assert score(build("numeric", field="total"), {"total": 3.0}, 3).passed


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("", "", 0), ("kitten", "sitting", 3), ("flaw", "lawn", 2), ("abc", "", 3), ("ab", "ba", 2)],
)
def test_levenshtein_distances(a: str, b: str, distance: int) -> None:
    assert levenshtein(a, b) == distance == levenshtein(b, a)


def test_edit_distance_similarity_and_absolute_rule() -> None:
    similar = score(build("edit_distance", threshold=0.5), "kitten", "sitting")
    assert similar.score == pytest.approx(1 - 3 / 7) and similar.passed
    assert not score(build("edit_distance", max_distance=2), "kitten", "sitting").passed


def test_rouge_l_matches_the_rouge_score_library() -> None:
    reference = "You can return any item within 30 days of delivery for a full refund."
    output = "Items can be returned within 30 days of delivery for a full refund."
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, output)
    result = score(build("rouge_l", threshold=0.5), output, reference)
    assert result.score == pytest.approx(expected["rougeL"].fmeasure)
    assert result.passed and 0.5 < result.score < 1.0
    # The best of several references counts.
    assert score(build("rouge_l"), output, ["unrelated words", output]).score == pytest.approx(1.0)


def test_bleu_matches_sacrebleu() -> None:
    reference = "Standard shipping takes 3 to 5 business days."
    output = "Standard shipping takes 3 to 5 days."
    expected = BLEU(effective_order=True).sentence_score(output, [reference]).score / 100
    result = score(build("bleu", threshold=0.2), output, reference)
    assert result.score == pytest.approx(expected) and result.passed
    assert score(build("bleu"), reference, reference).score == pytest.approx(1.0)
