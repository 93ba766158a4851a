"""The experiment analysis: SRM, every metric against control, and a recommendation.

`analyze` is what the experiments service calls with the variants' sufficient
statistics. The first variant is the control; every other variant is compared with it
on every metric, p-values are corrected across those comparisons (Holm or Bonferroni,
as stated in the result) and intervals are widened to ``1 - alpha / comparisons``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.stats._numeric import finite_or_none
from tuneloop.stats.compare import (
    compare_estimates,
    compare_quantile_summaries,
    describe_test,
    estimates,
    finish,
    quantile_seed,
)
from tuneloop.stats.frequentist import adjust_p_values
from tuneloop.stats.power import PlanContext
from tuneloop.stats.recommend import recommend
from tuneloop.stats.results import Comparison, ExperimentResult, MetricResult, VariantValue
from tuneloop.stats.specs import AnalysisSettings, MetricSpec, Variant
from tuneloop.stats.srm import check_srm, check_weights
from tuneloop.stats.summaries import AdjustedSummary, QuantileSummary


def _validate(variants: Sequence[Variant], metrics: Sequence[MetricSpec]) -> None:
    if len(variants) < 2:
        raise ConfigError(
            f"an experiment needs a control and at least one treatment, got {len(variants)} variant"
        )
    names = [variant.name for variant in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names must be unique, got {names}")
    check_weights([variant.weight for variant in variants])
    metric_names = [metric.name for metric in metrics]
    if len(set(metric_names)) != len(metric_names):
        raise ConfigError(f"metric names must be unique, got {metric_names}")
    primaries = [metric.name for metric in metrics if metric.role == "primary"]
    if len(primaries) != 1:
        raise ConfigError(
            f"exactly one metric must have role='primary', got {len(primaries)}: {primaries}"
        )
    for variant in variants:
        missing = [name for name in metric_names if name not in variant.summaries]
        if missing:
            raise InvalidInputError(
                f"variant {variant.name!r} has no summary for metric(s) {missing}; "
                "give every variant a summary of every metric (empty when it has no data)"
            )


def _adjusted(
    metric: MetricSpec, comparisons: list[Comparison], settings: AnalysisSettings
) -> tuple[Comparison, ...]:
    fixed = adjust_p_values([c.p_value for c in comparisons], settings.correction)
    valid = adjust_p_values([c.always_valid_p_value for c in comparisons], settings.correction)
    out = []
    for comparison, p, p_valid in zip(comparisons, fixed, valid, strict=True):
        adjusted = replace(comparison, adjusted_p_value=p, adjusted_always_valid_p_value=p_valid)
        out.append(finish(metric, adjusted, settings=settings))
    return tuple(out)


def _metric_result(
    metric: MetricSpec, variants: Sequence[Variant], settings: AnalysisSettings
) -> MetricResult:
    names = [variant.name for variant in variants]
    summaries = [variant.summaries[metric.name] for variant in variants]
    comparisons = len(variants) - 1
    interval_alpha = settings.alpha / comparisons
    control = variants[0]
    results: list[Comparison] = []
    reduction = None
    if metric.kind == "quantile":
        assert metric.quantile is not None
        quantiles: list[QuantileSummary] = []
        for summary, name in zip(summaries, names, strict=True):
            if not isinstance(summary, QuantileSummary):
                raise InvalidInputError(
                    f"metric {metric.name!r} is a quantile metric: variant {name!r} must give a "
                    f"QuantileSummary, got {type(summary).__name__}"
                )
            quantiles.append(summary)
        values = [
            VariantValue(name, s.n, s.quantile(metric.quantile))
            for name, s in zip(names, quantiles, strict=True)
        ]
        units = sum(s.n for s in quantiles)
        for index, variant in enumerate(variants[1:], start=1):
            results.append(
                compare_quantile_summaries(
                    metric,
                    quantiles[0],
                    quantiles[index],
                    names=(control.name, variant.name),
                    settings=settings,
                    interval_alpha=interval_alpha,
                    seed=quantile_seed(settings, metric, index),
                    plan=PlanContext(units, control.weight + variant.weight),
                )
            )
    else:
        found, reduction = estimates(metric, summaries, names)
        values = []
        for name, summary, estimate in zip(names, summaries, found, strict=True):
            raw = summary.metric.estimate() if isinstance(summary, AdjustedSummary) else estimate
            value = finite_or_none(raw.mean) if raw.n else None
            values.append(VariantValue(name, raw.n, value))
        units = sum(estimate.n for estimate in found)
        for index, variant in enumerate(variants[1:], start=1):
            results.append(
                compare_estimates(
                    metric,
                    found[0],
                    found[index],
                    names=(control.name, variant.name),
                    settings=settings,
                    interval_alpha=interval_alpha,
                    plan=PlanContext(units, control.weight + variant.weight),
                )
            )
    adjusted = _adjusted(metric, results, settings)
    return MetricResult(
        name=metric.name,
        kind=metric.kind,
        role=metric.role,
        direction=metric.direction,
        test=describe_test(metric, cuped_used=reduction is not None),
        correction=settings.correction,
        interval_level=1.0 - interval_alpha,
        values=tuple(values),
        comparisons=adjusted,
        cuped_variance_reduction=finite_or_none(reduction),
        status="ok" if any(c.status == "ok" for c in adjusted) else "not_enough_data",
    )


def analyze(
    variants: Sequence[Variant],
    metrics: Sequence[MetricSpec],
    settings: AnalysisSettings | None = None,
) -> ExperimentResult:
    """Analyse an experiment from its variants' sufficient statistics.

    Args:
        variants: control first, then the treatments; weights sum to 1.
        metrics: exactly one primary metric, any secondary and guardrail metrics.
        settings: alpha, fixed-horizon or sequential, correction, power, seed.

    Returns:
        Per metric and variant: units, value, absolute and relative lift with intervals,
        p-values (fixed-horizon and always-valid, raw and corrected), significance and
        guardrail verdicts; the SRM verdict; and a recommendation.

    Raises:
        ConfigError: fewer than 2 variants, weights not summing to 1, duplicate names, not
            exactly one primary metric.
        InvalidInputError: a variant without a summary of a metric, or a summary of the
            wrong type for the metric's kind.
    """
    settings = settings or AnalysisSettings()
    _validate(variants, metrics)
    srm = check_srm(
        [variant.units for variant in variants],
        [variant.weight for variant in variants],
        threshold=settings.srm_threshold,
    )
    results = tuple(_metric_result(metric, variants, settings) for metric in metrics)
    return ExperimentResult(
        control=variants[0].name,
        method=settings.method,
        alpha=settings.alpha,
        correction=settings.correction,
        trustworthy=not srm.flagged,
        srm=srm,
        metrics=results,
        recommendation=recommend(results, srm=srm, variants=variants, settings=settings),
    )
