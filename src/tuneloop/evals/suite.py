"""Eval suites: the YAML file naming a dataset, a target, evaluators, gates and stages.

```yaml
name: support
dataset: cases.jsonl                 # JSONL or YAML, relative to this file
target:
  callable: support_agent:answer     # async (input, config) -> output, by import path
  # agent: support_agent:build       # or: (config) -> an Agent; its run(input) answers
  timeout_s: 10                      # per case
config: config.yaml                  # the AgentConfig passed to the target (--config overrides)
evaluators:
  - {name: contains}
  - {name: trajectory, params: {order: in_order}}
  - {name: safety, categories: [adversarial], params: {default_refuse: true}}
gates:
  overall: {latency_p95_ms: 1500, mean_cost_usd: 0.01}
  categories:
    orders: {pass_rate: 0.9}
    adversarial: {pass_rate: 1.0}
  regression: {alpha: 0.05}
stages:
  pre-merge: {tags: [smoke], sample: 0.2}
attribution: {provider: openai, model: gpt-4o-mini}   # optional: label failed cases
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuneloop.errors import ConfigError
from tuneloop.evals.attribution import AttributionSpec
from tuneloop.evals.dataset import Case, load_dataset
from tuneloop.evals.evaluators.registry import EvaluatorSpec

DEFAULT_ADVERSARIAL = ("adversarial",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Strict):
    """What answers the cases: a callable, or an agent built per config by a factory."""

    callable: str | None = Field(
        default=None, description="'package.module:function', async (input, config) -> output"
    )
    agent: str | None = Field(
        default=None,
        description="'package.module:factory', (config) -> an agent whose run(input) answers",
    )
    timeout_s: float = Field(default=30.0, gt=0, description="per case and trial")

    @model_validator(mode="after")
    def _one_kind(self) -> TargetSpec:
        if (self.callable is None) == (self.agent is None):
            raise ValueError(
                "name exactly one of 'callable' (a function answering each case) or 'agent' "
                "(a factory building an agent from the config)"
            )
        return self


class Thresholds(_Strict):
    """Gate thresholds for one category (or every case pooled)."""

    pass_rate: float | None = Field(default=None, ge=0, le=1, description="min pass^1")
    pass_k: float | None = Field(default=None, ge=0, le=1, description="min pass^k")
    evaluators: dict[str, float] = Field(
        default_factory=dict, description="min pass rate per evaluator id"
    )
    latency_p95_ms: float | None = Field(default=None, gt=0, description="max p95 latency")
    mean_cost_usd: float | None = Field(default=None, ge=0, description="max mean cost per run")
    max_target_errors: int | None = Field(
        default=None, ge=0, description="max trials where the target raised or timed out"
    )

    @model_validator(mode="after")
    def _rates(self) -> Thresholds:
        bad = {name: value for name, value in self.evaluators.items() if not 0 <= value <= 1}
        if bad:
            raise ValueError(f"evaluator pass rates must be within [0, 1]: {bad}")
        return self


class RegressionRule(_Strict):
    """No case that passed in the baseline fails now, beyond repeated-trial noise."""

    enabled: bool = True
    alpha: float = Field(default=0.05, gt=0, lt=1, description="one-sided Fisher exact test level")


class GatesSpec(_Strict):
    """Every gate of a suite."""

    overall: Thresholds = Field(default_factory=Thresholds)
    categories: dict[str, Thresholds] = Field(default_factory=dict)
    regression: RegressionRule = Field(default_factory=RegressionRule)


class StageSpec(_Strict):
    """Which cases a stage runs.

    With ``tags``, the cases carrying any of them; when no case carries one (or without
    ``tags``) and ``sample`` is set, a deterministic sample of that fraction of each
    category (at least one case each, the same cases run after run); otherwise every case.
    Adversarial cases run only when ``adversarial`` is true.
    """

    tags: list[str] | None = None
    sample: float | None = Field(default=None, gt=0, le=1)
    seed: str = "tuneloop"
    adversarial: bool = False
    categories: list[str] | None = None


DEFAULT_STAGES: Mapping[str, StageSpec] = MappingProxyType(
    {
        "pre-merge": StageSpec(tags=["pre-merge", "smoke"], sample=0.2),
        "post-merge": StageSpec(),
        "production": StageSpec(adversarial=True),
    }
)


class SuiteSpec(_Strict):
    """A suite file as written."""

    name: str = Field(min_length=1)
    description: str = ""
    dataset: str
    target: TargetSpec
    config: str | None = None
    agent: str | None = Field(default=None, description="agent name on traced runs")
    evaluators: list[EvaluatorSpec] = Field(min_length=1)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    stages: dict[str, StageSpec] = Field(default_factory=dict)
    adversarial_categories: list[str] = Field(default_factory=lambda: list(DEFAULT_ADVERSARIAL))
    attribution: AttributionSpec | None = Field(
        default=None, description="an LLM judge labels who caused each failed case"
    )


@dataclass(frozen=True, slots=True)
class Suite:
    """A loaded suite: its spec, where it lives, and its cases."""

    spec: SuiteSpec
    path: Path
    cases: tuple[Case, ...]
    stages: Mapping[str, StageSpec] = field(default_factory=lambda: DEFAULT_STAGES)

    @property
    def name(self) -> str:
        """The suite's name."""
        return self.spec.name

    @property
    def base_dir(self) -> Path:
        """The directory the suite's relative paths start from."""
        return self.path.parent

    @property
    def config_path(self) -> Path | None:
        """The suite's own AgentConfig file, if it names one."""
        return None if self.spec.config is None else self.base_dir / self.spec.config

    @property
    def agent(self) -> str:
        """The agent name traced runs carry."""
        return self.spec.agent or self.spec.name

    def is_adversarial(self, case: Case) -> bool:
        """Whether ``case`` is adversarial: its category is listed, or it is tagged so."""
        return case.category in self.spec.adversarial_categories or "adversarial" in case.tags

    def categories(self) -> list[str]:
        """Every category in the dataset, sorted."""
        return sorted({case.category for case in self.cases})


def load_suite(path: Path) -> Suite:
    """Read and check a suite file and its dataset.

    Raises:
        ConfigError: the suite file is unreadable or invalid, or its gates name a
            category or evaluator that does not exist (the message names the file).
        InvalidInputError: the dataset is malformed (line and field named).
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read suite {source}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"suite {source}{where}: invalid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"suite {source}: expected a mapping with name, dataset, target, ...")
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"suite {source}: {_describe(exc)}") from None
    cases = load_dataset(path.parent / spec.dataset)
    suite = Suite(spec, path, cases, MappingProxyType({**DEFAULT_STAGES, **spec.stages}))
    _check_references(suite)
    return suite


def _check_references(suite: Suite) -> None:
    source = str(suite.path)
    categories = set(suite.categories())
    keys = [spec.key for spec in suite.spec.evaluators]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ConfigError(
            f"suite {source}: evaluator ids {duplicates} appear twice; give each an 'id:'"
        )
    problems = []
    for spec in suite.spec.evaluators:
        for category in spec.categories or ():
            if category not in categories:
                problems.append(f"evaluator {spec.key!r} names unknown category {category!r}")
    scoped = {"overall": suite.spec.gates.overall, **suite.spec.gates.categories}
    for scope, thresholds in scoped.items():
        if scope != "overall" and scope not in categories:
            problems.append(f"gates.categories names unknown category {scope!r}")
        problems += [
            f"gates for {scope!r} name unknown evaluator {key!r}"
            for key in thresholds.evaluators
            if key not in keys
        ]
    for name, stage in suite.stages.items():
        problems += [
            f"stage {name!r} names unknown category {category!r}"
            for category in stage.categories or ()
            if category not in categories
        ]
    if problems:
        known = f"categories in the dataset: {sorted(categories)}; evaluator ids: {keys}"
        raise ConfigError(f"suite {source}: {'; '.join(problems)} ({known})")


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            parts.append(f"{location!r} is required")
        elif error["type"] == "extra_forbidden":
            parts.append(f"unknown key {location!r}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            parts.append(f"{location or 'suite'}: {message}")
    return "; ".join(parts)
