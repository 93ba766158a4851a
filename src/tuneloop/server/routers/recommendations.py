"""Recommendations over HTTP, and the background job that refreshes them (admin keys).

``POST …/recommendations/refresh`` analyzes an agent's recent traffic now and stores the
findings; ``GET …/recommendations`` lists them; ``…/{id}/accept`` turns one into a bundle
and a candidate version; ``…/{id}/dismiss`` sets it aside with a reason. The job runs
the same refresh for every agent with traffic every ``recommend_interval_s`` seconds
(0: off), on the app's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tuneloop.analysis.metrics import parse_duration_ms
from tuneloop.analysis.recommend import Optimizer, Options, Report, TraceWindow, analyze_all
from tuneloop.clock import Clock
from tuneloop.config.model import AgentConfig
from tuneloop.config.versions import validate_agent
from tuneloop.errors import ConfigError, InvalidInputError, NotFoundError
from tuneloop.server.auth import AdminPrincipal
from tuneloop.settings import Settings
from tuneloop.store import Store
from tuneloop.store.recommend_reads import busiest_version, read_window
from tuneloop.store.schema import run_rollups

router = APIRouter(prefix="/api/v1", tags=["recommendations"])
log = logging.getLogger("tuneloop.server.recommendations")
MAX_WINDOW_MS = 90 * 86_400_000


class RefreshIn(BaseModel):
    """Analyze the agent's runs over ``window`` (one ``version``, default: the busiest)."""

    model_config = ConfigDict(extra="forbid")

    window: str = Field(default="24h", max_length=16)
    version: str | None = Field(default=None, max_length=128)


class AcceptIn(BaseModel):
    """Accept into a candidate version on ``base`` (default: the analyzed version)."""

    model_config = ConfigDict(extra="forbid")

    base: str | None = Field(default=None, max_length=128)


class DismissIn(BaseModel):
    """Why the recommendation is set aside (required, shown to the team)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4096)


# --- the refresh, shared by the endpoint and the job ------------------------------------


def provider_optimizer(provider: Any, model: str) -> Optimizer:
    """Adapt a `Provider` (anything with ``async chat(ChatRequest)``) to an `Optimizer`."""
    from tuneloop.runtime.providers.base import ChatRequest, Message

    async def complete(system: str, user: str) -> str:
        request = ChatRequest(
            model=model, messages=(Message.system(system), Message.user(user)), temperature=0.2
        )
        response = await provider.chat(request)
        return str(response.message.text)

    return complete


def optimizer_from_settings(settings: Settings) -> Optimizer | None:
    """The prompt optimizer the settings name, or None when none is configured.

    Raises:
        ConfigError: the provider is unknown, its SDK is missing, or no model is named.
    """
    spec = settings.recommend_optimizer
    if not spec:
        return None
    model = settings.recommend_optimizer_model
    if not model:
        raise ConfigError(
            "TUNELOOP_RECOMMEND_OPTIMIZER is set but TUNELOOP_RECOMMEND_OPTIMIZER_MODEL is not; "
            "name the model that rewrites prompts"
        )
    builtin = {
        "openai": ("tuneloop.runtime.providers.openai", "OpenAIChatProvider"),
        "anthropic": ("tuneloop.runtime.providers.anthropic", "AnthropicProvider"),
    }
    module_name, _, attribute = spec.partition(":")
    if spec in builtin:
        module_name, attribute = builtin[spec]
    elif not attribute:
        raise ConfigError(
            f"unknown optimizer provider {spec!r}: use openai, anthropic or "
            "'package.module:factory'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load optimizer provider {spec!r}: {exc}") from exc
    provider = factory()
    return provider_optimizer(provider, model)


def _options(settings: Settings) -> Options:
    return Options(prices=settings.prices())


def _config_of(
    store: Store, project_id: str, agent: str, version: str | None
) -> AgentConfig | None:
    if not version:
        return None
    try:
        found = store.configs.get_version(project_id, agent, version)
    except (NotFoundError, InvalidInputError):
        return None
    return AgentConfig.model_validate(found.config)


async def refresh(
    app: FastAPI, project_id: str, agent: str, *, window_ms: int, version: str | None = None
) -> dict[str, Any]:
    """Analyze ``agent``'s last ``window_ms`` of runs, store the findings; the report and counts."""
    store: Store = app.state.store
    settings: Settings = app.state.settings
    now = app.state.clock.now_ms()
    since = now - window_ms

    def read() -> tuple[TraceWindow, AgentConfig | None, dict[str, float], str | None]:
        chosen = version or busiest_version(
            store.engine, project_id, agent, since_ms=since, until_ms=now + 1
        )
        window = read_window(
            store.engine, project_id, agent, version=chosen, since_ms=since, until_ms=now + 1
        )
        rubric_path = settings.recommend_rubric_file
        rubric = rubric_path.read_text(encoding="utf-8") if rubric_path is not None else None
        return (
            window,
            _config_of(store, project_id, agent, chosen),
            store.recommendations.suppressed(project_id, agent),
            rubric,
        )

    window, config, suppressed, rubric = await run_in_threadpool(read)
    optimizer: Optimizer | None = getattr(app.state, "recommend_optimizer", None)
    options = _options(settings)
    report: Report = await analyze_all(
        window, config, options=options, optimizer=optimizer, rubric=rubric, skip=suppressed
    )
    analyzed = len(window.runs) >= options.min_runs
    saved = await run_in_threadpool(
        store.recommendations.save_report, project_id, report, now_ms=now, expire=analyzed
    )
    return {**report.to_data(), "saved": saved.to_data()}


def _agents_with_traffic(store: Store, since_ms: int) -> list[tuple[str, str]]:
    query = (
        sa.select(run_rollups.c.project_id, run_rollups.c.agent)
        .where(run_rollups.c.hour_ms >= since_ms - 3_600_000)
        .distinct()
        .order_by(run_rollups.c.project_id, run_rollups.c.agent)
    )
    with store.engine.connect() as conn:
        return [(p, a) for p, a in conn.execute(query) if a]


class RecommendationJob:
    """Refreshes every agent's recommendations periodically (see the module docstring)."""

    def __init__(self, app: FastAPI, *, interval_s: float, window_ms: int, clock: Clock) -> None:
        self._app = app
        self.interval_s = interval_s
        self.window_ms = window_ms
        self._clock = clock
        self.ticks = 0

    async def tick(self) -> list[dict[str, Any]]:
        """One refresh of every agent with traffic in the window; failures are logged."""
        store: Store = self._app.state.store
        since = self._clock.now_ms() - self.window_ms
        agents = await run_in_threadpool(_agents_with_traffic, store, since)
        results = []
        for project_id, agent in agents:
            try:
                result = await refresh(self._app, project_id, agent, window_ms=self.window_ms)
            except Exception:  # one agent's failure must not stop the others' refresh
                log.exception("recommendation refresh failed for %s/%s", project_id, agent)
                continue
            results.append({"project_id": project_id, "agent": agent, "saved": result["saved"]})
        self.ticks += 1
        return results

    async def run(self) -> None:
        """Tick every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.tick()


def start_job(app: FastAPI) -> asyncio.Task[None] | None:
    """Start the refresh job (lifespan); None when ``recommend_interval_s`` is 0."""
    settings: Settings = app.state.settings
    if not hasattr(app.state, "recommend_optimizer"):
        app.state.recommend_optimizer = optimizer_from_settings(settings)
    job = RecommendationJob(
        app,
        interval_s=settings.recommend_interval_s,
        window_ms=parse_duration_ms(settings.recommend_window),
        clock=app.state.clock,
    )
    app.state.recommend_job = job
    if settings.recommend_interval_s <= 0:
        return None
    return asyncio.get_running_loop().create_task(job.run(), name="tuneloop-recommendations")


async def stop_job(task: asyncio.Task[None] | None) -> None:
    """Cancel the refresh job started by `start_job`."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --- endpoints ----------------------------------------------------------------------------


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _window_ms(text: str) -> int:
    window = parse_duration_ms(text)
    if window > MAX_WINDOW_MS:
        raise InvalidInputError(f"window {text!r} is longer than 90 days; analyze a shorter one")
    return window


@router.get("/agents/{agent}/recommendations")
def list_recommendations(
    request: Request,
    principal: AdminPrincipal,
    agent: str,
    status: str = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """An agent's recommendations, most confident first.

    ``status``: open (the default), accepted, dismissed, discarded, expired or all.
    """
    items = _store(request).recommendations.list_for(
        principal.project_id,
        validate_agent(agent),
        status=None if status == "all" else status,  # type: ignore[arg-type]
        limit=limit,
    )
    return {"agent": agent, "items": items}


@router.post("/agents/{agent}/recommendations/refresh")
async def refresh_recommendations(
    request: Request, principal: AdminPrincipal, agent: str, body: RefreshIn | None = None
) -> dict[str, Any]:
    """Analyze the agent's recent runs now; the report (findings, notes) and what changed."""
    body = body or RefreshIn()
    return await refresh(
        request.app,
        principal.project_id,
        validate_agent(agent),
        window_ms=_window_ms(body.window),
        version=body.version,
    )


@router.get("/agents/{agent}/recommendations/{rec_id}")
def get_recommendation(
    request: Request, principal: AdminPrincipal, agent: str, rec_id: str
) -> dict[str, Any]:
    """One recommendation with its evidence, patch and status."""
    return _store(request).recommendations.get(principal.project_id, agent, rec_id)


@router.post(
    "/agents/{agent}/recommendations/{rec_id}/accept", status_code=201, response_model=None
)
def accept_recommendation(
    request: Request,
    principal: AdminPrincipal,
    agent: str,
    rec_id: str,
    body: AcceptIn | None = None,
) -> dict[str, Any] | JSONResponse:
    """Create a bundle and a candidate version from the recommendation (409 if not open)."""
    return _store(request).recommendations.accept(
        principal.project_id,
        agent,
        rec_id,
        author=principal.key_id,
        now_ms=request.app.state.clock.now_ms(),
        base=(body or AcceptIn()).base,
    )


@router.post("/agents/{agent}/recommendations/{rec_id}/dismiss", response_model=None)
def dismiss_recommendation(
    request: Request, principal: AdminPrincipal, agent: str, rec_id: str, body: DismissIn
) -> dict[str, Any] | JSONResponse:
    """Set the recommendation aside with a reason; not proposed again unless it worsens."""
    return _store(request).recommendations.dismiss(
        principal.project_id,
        agent,
        rec_id,
        reason=body.reason,
        author=principal.key_id,
        now_ms=request.app.state.clock.now_ms(),
    )
