"""Reference-based text similarity: ROUGE-L (``rouge-score``) and BLEU (``sacrebleu``).

Both libraries are optional (the ``evals`` extra) and imported on first use.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneloop.evals.evaluators.base import (
    BaseEvaluator,
    BuildContext,
    EvalContext,
    Score,
    ThresholdParams,
    output_text,
)

_EXTRA = "pip install 'tuneloop[evals]'"


def _reference_texts(ctx: EvalContext) -> list[str] | None:
    if not ctx.case.expected.has("output"):
        return None
    reference = ctx.case.expected.get("output")
    if isinstance(reference, list) and reference and all(isinstance(r, str) for r in reference):
        return list(reference)
    return [output_text(reference)]


class RougeLParams(ThresholdParams):
    """Parameters of `rouge_l`: pass when the best F-measure over the references >= threshold."""

    use_stemmer: bool = True


class RougeL(BaseEvaluator[RougeLParams]):
    """ROUGE-L F-measure (longest common subsequence) against the expected output(s)."""

    params_model = RougeLParams
    description = "ROUGE-L F-measure against expected.output"

    def __init__(
        self, name: str, params: RougeLParams, context: BuildContext | None = None
    ) -> None:
        super().__init__(name, params, context)
        try:
            from rouge_score import rouge_scorer
        except ImportError as exc:
            raise ImportError(f"the rouge_l evaluator needs rouge-score: {_EXTRA}") from exc
        self._scorer: Any = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=params.use_stemmer)

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        references = _reference_texts(ctx)
        if references is None:
            return self.skip("the case has no expected output")
        text = output_text(ctx.result.output)
        best = max(self._scorer.score(ref, text)["rougeL"].fmeasure for ref in references)
        return self.verdict(
            best >= params.threshold, best, f"ROUGE-L F {best:.3f} (threshold {params.threshold})"
        )


class BleuParams(ThresholdParams):
    """Parameters of `bleu`: sentence BLEU / 100, pass when >= threshold."""

    threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    lowercase: bool = False
    tokenize: str = Field(default="13a", description="a sacrebleu tokenizer name")


class Bleu(BaseEvaluator[BleuParams]):
    """Sentence-level BLEU (sacrebleu, smoothed) against the expected output(s)."""

    params_model = BleuParams
    description = "sentence BLEU against expected.output"

    def __init__(self, name: str, params: BleuParams, context: BuildContext | None = None) -> None:
        super().__init__(name, params, context)
        try:
            from sacrebleu.metrics.bleu import BLEU
        except ImportError as exc:
            raise ImportError(f"the bleu evaluator needs sacrebleu: {_EXTRA}") from exc
        try:
            self._bleu: Any = BLEU(
                lowercase=params.lowercase, tokenize=params.tokenize, effective_order=True
            )
        except Exception as exc:  # sacrebleu raises for unknown tokenizers
            raise ValueError(f"sacrebleu rejected the parameters: {exc}") from exc

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        references = _reference_texts(ctx)
        if references is None:
            return self.skip("the case has no expected output")
        text = output_text(ctx.result.output)
        value = self._bleu.sentence_score(text, references).score / 100.0
        return self.verdict(
            value >= params.threshold, value, f"BLEU {value:.3f} (threshold {params.threshold})"
        )
