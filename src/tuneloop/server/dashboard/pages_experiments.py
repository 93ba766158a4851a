"""Experiments: the list; one experiment's lifts, sequential estimate, SRM, guardrails, decisions.

Every figure comes from `ExperimentService.results`, the document
``GET /api/v1/experiments/{id}/results`` serves, and every button calls the same
service method the JSON API does, so the lifecycle events and audit rows are the same.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from markupsafe import Markup, escape
from pydantic import ValidationError
from starlette.datastructures import URL

from tuneloop.errors import InvalidInputError, TuneloopError
from tuneloop.experiments.lifecycle import Status
from tuneloop.experiments.metrics import metric_def
from tuneloop.experiments.service import ConcludeIn, ExperimentService
from tuneloop.server.dashboard.format import (
    MISSING,
    fmt_bucket,
    fmt_duration,
    fmt_number,
    fmt_pct,
    fmt_usd,
)
from tuneloop.server.dashboard.routing import DashboardRoute, form_of, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.server.http_errors import status_of

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Experiments", "/ui/experiments", ("/ui/experiments",))
LIST_ROWS = 100
STATUSES: tuple[Status, ...] = ("draft", "running", "stopped", "concluded")


Unit = Literal["rate", "ms", "usd", "number"]


def unit_of(metric: str) -> Unit:
    """How an experiment metric's values read: a rate, a duration, money or a plain number."""
    try:
        found = metric_def(metric)
    except TuneloopError:
        return "number"
    if found.quantile is not None or found.numerator == "duration_ms":
        return "ms"
    if found.numerator == "cost_usd":
        return "usd"
    if found.denominator in ("runs", "tool_calls") and found.numerator in (
        "successes", "errors", "escalations", "tool_errors",
    ):  # fmt: skip
        return "rate"
    return "number"


def metric_value(value: float | None, metric: str) -> str:
    """A metric's value: ``50.0 %``, ``850 ms``, ``$0.0123`` or ``1.25``."""
    match unit_of(metric):
        case "rate":
            return fmt_pct(value)
        case "ms":
            return fmt_duration(value)
        case "usd":
            return fmt_usd(value)
        case _:
            return fmt_number(value, 3)


def signed_pct(ratio: float | None, digits: int = 1) -> str:
    """A signed ratio as a percentage: 0.667 → ``+66.7 %``."""
    text = fmt_pct(ratio, digits)
    return text if text == MISSING or text.startswith("-") else "+" + text


def p_value(value: float | None) -> str:
    """A p-value: three decimals, or scientific under 0.001."""
    if value is None:
        return MISSING
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def guard_figure(value: float | None, kind: str, metric: str = "") -> str:
    """A guardrail margin or difference: relative in percent, absolute in the metric's units."""
    if value is None:
        return MISSING
    if kind == "relative":
        return signed_pct(value)
    match unit_of(metric):
        case "rate":
            return f"{value * 100:+.2f} pp"
        case "ms":
            return f"{value:+,.0f} ms"
        case "usd":
            return f"{value:+.4f} $"
        case _:
            return f"{value:+.4g}"


TEMPLATE_FILTERS = {"signedpct": signed_pct, "pvalue": p_value, "guardfigure": guard_figure}


def _service(request: Request) -> ExperimentService:
    return ExperimentService(request.app.state.store, clock=request.app.state.clock)


def lift_bar(estimate: float | None, lower: float | None, upper: float | None, *,
             scale: float, label: str) -> Markup:  # fmt: skip
    """A confidence interval on a common axis from -scale to +scale, zero in the middle."""
    head = (
        f'<svg class="ci" viewBox="0 0 200 18" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
        '<line class="ci-zero" x1="100" x2="100" y1="0" y2="18"/>'
    )
    if estimate is None or lower is None or upper is None or scale <= 0:
        return Markup(head + "</svg>")

    def x(value: float) -> float:
        return round(100 + max(-1.0, min(1.0, value / scale)) * 96, 2)

    css = "ci-up" if lower > 0 else "ci-down" if upper < 0 else "ci-flat"
    return Markup(
        f'{head}<line class="ci-range {css}" x1="{x(lower)}" x2="{x(upper)}" y1="9" y2="9"/>'
        f'<circle class="ci-point {css}" cx="{x(estimate)}" cy="9" r="3.5"/></svg>'
    )


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric and variant: value, lift interval, p-value and what it means."""
    sequential = results["method"] == "sequential"
    prefix = "sequential_" if sequential else ""
    rows = []
    for metric in results["metrics"]:
        comparisons = {c["variant"]: c for c in metric["comparisons"]}
        for value in metric["values"]:
            comparison = comparisons.get(value["variant"])
            row: dict[str, Any] = {
                "metric": metric,
                "value": value,
                "comparison": comparison,
                "shown": metric_value(value["value"], metric["name"]),
            }
            if comparison is not None:
                row["relative"] = comparison[f"{prefix}relative"]
                row["absolute"] = comparison[f"{prefix}absolute"]
                row["p"] = comparison[
                    "adjusted_always_valid_p_value" if sequential else "adjusted_p_value"
                ]
                row["verdict"] = verdict_of(comparison)
            rows.append(row)
    return rows


def verdict_of(comparison: dict[str, Any]) -> tuple[str, str]:
    """What a comparison says, and its badge colour."""
    if comparison["status"] != "ok":
        return comparison["reason"] or "not enough data", "idle"
    guardrail = comparison.get("guardrail")
    if guardrail is not None and guardrail["verdict"] is not None:
        verdict = guardrail["verdict"]
        css = {"non_inferior": "good", "breached": "bad"}.get(verdict, "warn")
        return verdict.replace("_", "-"), css
    effect = comparison["effect"]
    if not comparison["significant"] or effect == "none":
        return "no significant difference", "idle"
    return f"significantly {effect}", "good" if effect == "better" else "bad"


def _scale(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per metric, the largest bound of its relative lifts: its bars share one axis."""
    scales: dict[str, float] = {}
    for row in rows:
        name = row["metric"]["name"]
        bounds = [
            abs(v) for v in (row.get("relative") or {}).values() if isinstance(v, int | float)
        ]
        scales[name] = max([scales.get(name, 0.0), *bounds])
    return {name: scale or 1.0 for name, scale in scales.items()}


def event_detail(action: str, detail: dict[str, Any]) -> str:
    """A lifecycle event's detail in one line."""
    if action == "create":
        variants = detail.get("variants") or {}
        text = ", ".join(f"{name} = {label}" for name, label in variants.items())
        return text + (f"; eval gate overridden: {detail['gate_override']}"
                       if detail.get("gate_override") else "")  # fmt: skip
    if action == "start":
        allocation = detail.get("allocation") or {}
        split = " / ".join(
            f"{v['name']} {fmt_pct(v['weight'], 0)}" for v in allocation.get("variants", [])
        )
        return f"split published: {split}" if split else ""
    if action == "conclude":
        promotion = detail.get("promotion")
        moved = f"; production moved to {promotion['label']}" if promotion else ""
        winner = f" {detail['winner']}" if detail.get("winner") else ""
        reason = f": {detail['reason']}" if detail.get("reason") else ""
        return f"{detail.get('decision', '')}{winner}{reason}{moved}"
    return str(detail.get("reason") or "")


def _series(results: dict[str, Any]) -> dict[str, Any]:
    """The primary metric's relative lift of the first treatment at every look, with bounds."""
    looks = results["timeseries"]["looks"]
    key = "sequential_relative" if results["method"] == "sequential" else "relative"
    estimate, lower, upper = [], [], []
    for look in looks:
        interval = look["comparisons"][0][key] if look["comparisons"] else {}
        estimate.append(interval.get("estimate"))
        lower.append(interval.get("lower"))
        upper.append(interval.get("upper"))
    return {
        "x": [fmt_bucket(look["at_ms"]) for look in looks],
        "estimate": estimate,
        "lower": lower,
        "upper": upper,
        "units": [sum(look["units"]) for look in looks],
        "treatment": looks[0]["comparisons"][0]["variant"] if looks and looks[0]["comparisons"]
        else None,
    }  # fmt: skip


@router.get("/ui/experiments")
def experiments_page(request: Request, status: str = "", agent: str = "") -> Response:
    """Every experiment, newest first, filtered by status and agent."""
    session = session_of(request)
    if status and status not in STATUSES:
        raise InvalidInputError(f"unknown status {status[:20]!r}; use one of {', '.join(STATUSES)}")
    records = _service(request).list_experiments(
        session.project_id,
        agent=agent.strip() or None,
        status=status or None,
        limit=LIST_ROWS,
    )
    return dashboard_of(request).render(
        request,
        "experiments.html",
        {"records": records, "status": status, "agent": agent, "statuses": STATUSES},
    )


def _experiment_context(
    request: Request, key: str, interval: str, *, error: str = ""
) -> dict[str, Any]:
    session = session_of(request)
    if interval not in ("hour", "day"):
        raise InvalidInputError(f"unknown interval {interval[:20]!r}; use hour or day")
    service = _service(request)
    described = service.describe(session.project_id, key)
    results = None
    if described["status"] != "draft":
        results = service.results(session.project_id, key, interval=interval)  # type: ignore[arg-type]
    rows = _rows(results) if results else []
    return {
        "exp": described,
        "results": results,
        "rows": rows,
        "scale": _scale(rows),
        "series": _series(results) if results else None,
        "interval": interval,
        "treatments": [v["name"] for v in described["variants"][1:]],
        "lift_bar": lift_bar,
        "event_detail": event_detail,
        "error": error,
        "notice": request.query_params.get("done", ""),
    }


@router.get("/ui/experiments/{key}")
def experiment_page(request: Request, key: str, interval: str = "day") -> Response:
    """Lifts with intervals per metric, the estimate over time, SRM, guardrails, decisions."""
    context = _experiment_context(request, key, interval)
    return dashboard_of(request).render(request, "experiment.html", context)


def _act(request: Request, key: str, action: str) -> Response:
    session = session_of(request)
    form = form_of(request)
    service = _service(request)
    try:
        if action == "start":
            service.start(session.project_id, key, author=session.key_id)
        elif action == "stop":
            service.stop(
                session.project_id, key, author=session.key_id, reason=form.get("reason").strip()
            )
        else:
            try:
                body = ConcludeIn(
                    decision=form.get("decision"),
                    variant=form.get("variant") or None,
                    reason=form.get("reason").strip(),
                    promote=form.get("promote") == "on",
                )
            except ValidationError as exc:
                raise InvalidInputError(
                    "choose a decision: ship, keep_control or inconclusive"
                ) from exc
            service.conclude(session.project_id, key, body, author=session.key_id)
    except TuneloopError as exc:
        context = _experiment_context(request, key, "day", error=str(exc))
        return dashboard_of(request).render(
            request, "experiment.html", context, status_code=status_of(exc)
        )
    done = {"start": "started", "stop": "stopped", "conclude": "concluded"}[action]
    return RedirectResponse(
        str(URL(f"/ui/experiments/{key}").include_query_params(done=done)), status_code=303
    )


@router.post("/ui/experiments/{key}/start")
def start(request: Request, key: str) -> Response:
    """Start a draft: its allocation reaches the SDKs."""
    return _act(request, key, "start")


@router.post("/ui/experiments/{key}/stop")
def stop(request: Request, key: str) -> Response:
    """Stop a running experiment: its units get production again."""
    return _act(request, key, "stop")


@router.post("/ui/experiments/{key}/conclude")
def conclude(request: Request, key: str) -> Response:
    """Record the decision on a stopped experiment (and, with promote, move production)."""
    return _act(request, key, "conclude")
