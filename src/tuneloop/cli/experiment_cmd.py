"""``tuneloop experiment``: A/B experiments from the command line.

``create``, ``start``, ``stop``, ``conclude`` and ``status`` talk to the server with an
admin key; ``plan`` computes a sample size locally (no server needed).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tuneloop.cli.common import friendly
from tuneloop.errors import ConfigError

if TYPE_CHECKING:
    from tuneloop.cli.api import Api

experiment_app = typer.Typer(
    help="A/B experiments: create, start, status, stop, conclude, plan.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option("--url", help="Server URL [env: TUNELOOP_URL]")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="Admin API key [env: TUNELOOP_API_KEY]")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer")]
Key = Annotated[str, typer.Argument(help="Experiment id")]
_TRAFFIC = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*(?:/\s*(hour|h|day|d|week|w))?\s*$")
_PER_DAY = {"hour": 24.0, "h": 24.0, "day": 1.0, "d": 1.0, "week": 1 / 7, "w": 1 / 7}


def _api(url: str | None, api_key: str | None) -> Api:
    from tuneloop.cli.api import Api
    from tuneloop.settings import load_settings

    return Api(load_settings(url=url, api_key=api_key))


def _call(
    url: str | None,
    api_key: str | None,
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> Any:
    """One request; errors become tuneloop exceptions carrying the server's message."""
    api = _api(url, api_key)
    try:
        return api.request(method, path, json=body, params=params)
    finally:
        api.close()


def _variant(text: str, default: str) -> dict[str, Any]:
    name, sep, version = text.partition("=")
    return {"name": name, "version": version} if sep else {"name": default, "version": text}


def _guardrail(text: str) -> dict[str, Any]:
    metric, sep, margin = text.rpartition(":")
    if not sep or not metric or not margin:
        raise ConfigError(
            f"invalid guardrail {text!r}: use METRIC:MARGIN, e.g. error_rate:0.01 (absolute) "
            "or latency_p95:10% (relative)"
        )
    relative = margin.endswith("%")
    try:
        value = float(margin.rstrip("%")) / (100 if relative else 1)
    except ValueError:
        raise ConfigError(f"invalid guardrail margin {margin!r} in {text!r}") from None
    return {
        "metric": metric,
        "margin": value,
        "margin_kind": "relative" if relative else "absolute",
    }


def _weights(text: str | None, count: int) -> list[float] | None:
    if text is None:
        return None
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"invalid --weights {text!r}: use numbers like 0.5,0.5") from None
    if len(weights) != count:
        raise ConfigError(f"--weights has {len(weights)} numbers for {count} variants")
    return weights


@experiment_app.command("create")
@friendly
def create(
    agent: Annotated[str, typer.Option("--agent", "-a", help="Agent name")],
    treatment: Annotated[list[str], typer.Option(help="[NAME=]VERSION of a treatment; repeatable")],
    control: Annotated[
        str | None, typer.Option(help="Control version [default: production]")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Experiment id [default: generated]")
    ] = None,
    weights: Annotated[str | None, typer.Option(help="e.g. 0.5,0.5 [default: even]")] = None,
    unit: Annotated[str, typer.Option(help="Assignment unit: user or session")] = "user",
    salt: Annotated[str | None, typer.Option(help="Hash salt [default: the id]")] = None,
    primary: Annotated[str, typer.Option(help="Primary metric")] = "task_success",
    metric: Annotated[list[str] | None, typer.Option(help="Secondary metric; repeatable")] = None,
    guardrail: Annotated[
        list[str] | None, typer.Option(help="METRIC:MARGIN (0.01 absolute, 10% relative)")
    ] = None,
    method: Annotated[str, typer.Option(help="fixed or sequential")] = "fixed",
    alpha: Annotated[float, typer.Option(help="Significance level")] = 0.05,
    power: Annotated[float, typer.Option(help="Planned power")] = 0.8,
    mde: Annotated[float | None, typer.Option(help="Minimum detectable effect (primary)")] = None,
    absolute: Annotated[bool, typer.Option(help="The mde is absolute, not relative")] = False,
    planned_units: Annotated[int | None, typer.Option(help="Planned sample (units)")] = None,
    description: Annotated[str, typer.Option("--description", "-m")] = "",
    force_reason: Annotated[
        str | None, typer.Option(help="Go on despite a failed eval gate (recorded)")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Create a draft experiment: a control (production by default) against treatments."""
    names = (
        ["treatment"]
        if len(treatment) == 1
        else [f"treatment-{i + 1}" for i in range(len(treatment))]
    )
    variants: list[dict[str, Any]] = [{"name": "control", "version": control}]
    variants += [_variant(text, name) for text, name in zip(treatment, names, strict=True)]
    split = _weights(weights, len(variants))
    for variant, weight in zip(variants, split or [], strict=False):
        variant["weight"] = weight
    body = {
        "agent": agent,
        "key": key,
        "variants": variants,
        "unit_type": unit,
        "salt": salt,
        "primary_metric": primary,
        "metrics": metric or [],
        "guardrails": [_guardrail(g) for g in guardrail or []],
        "method": method,
        "alpha": alpha,
        "power": power,
        "mde": mde,
        "mde_kind": "absolute" if absolute else "relative",
        "planned_units": planned_units,
        "description": description,
        "force_reason": force_reason,
    }
    answer = _call(url, api_key, "POST", "/api/v1/experiments", body)
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    from tuneloop.experiments.report import describe

    console.print(describe(answer))
    err.print(f"created {answer['id']} (draft); start it: tuneloop experiment start {answer['id']}")


@experiment_app.command("start")
@friendly
def start(key: Key, url: Url = None, api_key: ApiKey = None, as_json: AsJson = False) -> None:
    """Start: the agent's SDKs assign units to the variants from their next state refresh."""
    answer = _call(url, api_key, "POST", f"/api/v1/experiments/{key}/start")
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    split = " / ".join(f"{v['name']} {v['weight'] * 100:.0f}%" for v in answer["variants"])
    console.print(
        f"started {answer['id']}: {answer['agent']}'s {answer['unit_type']} units split {split}",
        highlight=False,
    )


@experiment_app.command("stop")
@friendly
def stop(
    key: Key,
    reason: Annotated[str, typer.Option(help="Why, for the record")] = "",
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Stop: the allocation leaves the agent state; its units get production again."""
    answer = _call(url, api_key, "POST", f"/api/v1/experiments/{key}/stop", {"reason": reason})
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    console.print(
        f"stopped {answer['id']}; conclude it: tuneloop experiment conclude "
        f"{answer['id']} --decision ship|keep_control|inconclusive",
        highlight=False,
    )


@experiment_app.command("conclude")
@friendly
def conclude(
    key: Key,
    decision: Annotated[str, typer.Option(help="ship, keep_control or inconclusive")],
    variant: Annotated[str | None, typer.Option(help="The variant shipped")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the record")] = "",
    promote: Annotated[
        bool, typer.Option(help="Move production to the shipped version (audited)")
    ] = False,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Record the decision on a stopped experiment (and, with --promote, ship it)."""
    body = {"decision": decision, "variant": variant, "reason": reason, "promote": promote}
    answer = _call(url, api_key, "POST", f"/api/v1/experiments/{key}/conclude", body)
    if as_json:
        print(json.dumps(answer, indent=2))
        return
    line = f"concluded {answer['id']}: {answer['decision']}"
    if answer["winner"]:
        line += f" {answer['winner']}"
    promotion = answer["events"][-1]["detail"].get("promotion")
    if promotion:
        line += f"; production now {promotion['label']} ({promotion['to'][:12]})"
    console.print(line, highlight=False)


@experiment_app.command("status")
@friendly
def status(
    key: Annotated[str | None, typer.Argument(help="Experiment id (default: list them)")] = None,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent")] = None,
    interval: Annotated[str, typer.Option(help="Looks of the JSON time series: day or hour")] = (
        "day"
    ),
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """An experiment's results (a Rich table), or the list of experiments."""
    from tuneloop.experiments.report import describe, experiments_table, results_view

    if key is None:
        params = {"agent": agent} if agent else {}
        answer = _call(url, api_key, "GET", "/api/v1/experiments", params=params)
        if as_json:
            print(json.dumps(answer, indent=2))
        else:
            console.print(experiments_table(answer["items"]))
        return
    experiment = _call(url, api_key, "GET", f"/api/v1/experiments/{key}")
    results = None
    if experiment["status"] != "draft":
        results = _call(
            url,
            api_key,
            "GET",
            f"/api/v1/experiments/{key}/results",
            params={"interval": interval},
        )
    if as_json:
        print(json.dumps({"experiment": experiment, "results": results}, indent=2))
        return
    console.print(describe(experiment))
    if results is None:
        console.print(
            f"draft: no results until it starts (tuneloop experiment start {key})", highlight=False
        )
        return
    console.print(results_view(results))


def _daily(traffic: str | None) -> float | None:
    if traffic is None:
        return None
    match = _TRAFFIC.match(traffic)
    if not match:
        raise ConfigError(
            f"invalid --traffic {traffic!r}: units per day, hour or week, e.g. 5000/day, "
            "200/hour, 30000/week"
        )
    count = float(match[1].replace(",", "").replace("_", ""))
    return count * _PER_DAY[match[2] or "day"]


@experiment_app.command("plan")
@friendly
def plan(
    baseline: Annotated[float, typer.Option(help="The control's current value (e.g. 0.85)")],
    mde: Annotated[float, typer.Option(help="Smallest effect worth detecting")],
    absolute: Annotated[
        bool, typer.Option(help="The mde is in the metric's units, not a fraction of baseline")
    ] = False,
    traffic: Annotated[str | None, typer.Option(help="Units entering, e.g. 5000/day")] = None,
    kind: Annotated[str, typer.Option(help="binary (a rate) or continuous")] = "binary",
    variance: Annotated[float | None, typer.Option(help="Per-unit variance (continuous)")] = None,
    weights: Annotated[str, typer.Option(help="Traffic split, control first")] = "0.5,0.5",
    alpha: Annotated[float, typer.Option(help="Significance level")] = 0.05,
    power: Annotated[float, typer.Option(help="Probability of detecting the effect")] = 0.8,
    method: Annotated[str, typer.Option(help="fixed or sequential")] = "fixed",
    as_json: AsJson = False,
) -> None:
    """How many units (and days) an experiment needs to detect an effect."""
    try:
        from tuneloop.stats import plan_sample_size
    except ImportError as exc:
        raise ConfigError(
            "tuneloop experiment plan needs the server extra: pip install 'tuneloop[server]'"
        ) from exc
    from tuneloop.experiments.report import plan_table

    split = _weights(weights, len(weights.split(","))) or [0.5, 0.5]
    if kind not in ("binary", "continuous") or method not in ("fixed", "sequential"):
        raise ConfigError(
            f"--kind is binary or continuous and --method fixed or sequential; got {kind!r}, "
            f"{method!r}"
        )
    found = plan_sample_size(
        kind="binary" if kind == "binary" else "continuous",
        baseline=baseline,
        mde=mde,
        mde_kind="absolute" if absolute else "relative",
        variance=variance,
        weights=split,
        alpha=alpha,
        power=power,
        method="fixed" if method == "fixed" else "sequential",
        daily_units=_daily(traffic),
    )
    if as_json:
        print(json.dumps(found.to_dict(), indent=2))
        return
    names = ["control"] + (
        ["treatment"] if len(split) == 2 else [f"treatment-{i}" for i in range(1, len(split))]
    )
    console.print(plan_table(found.to_dict(), names))
    relative = "" if absolute else f" ({mde * 100:g}% of {baseline:g})"
    line = (
        f"to detect {found.effect:.4g}{relative} with {power:.0%} power at alpha "
        f"{alpha:g} ({method}): {found.total_units:,} units"
    )
    if found.days is not None:
        line += f", about {found.days:,} day{'s' if found.days != 1 else ''} at {traffic}"
    console.print(line, highlight=False)
