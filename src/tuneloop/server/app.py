"""The FastAPI application factory and its error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tuneloop._version import __version__
from tuneloop.clock import Clock, SystemClock
from tuneloop.errors import StoreBusyError, TuneloopError
from tuneloop.server.auth import Authenticator
from tuneloop.server.controller import start_controller, stop_controller
from tuneloop.server.dashboard import mount_dashboard
from tuneloop.server.http_errors import error_body, status_of
from tuneloop.server.ingest_pool import IngestPreparer
from tuneloop.server.routers import alerts as alert_routes
from tuneloop.server.routers import configs as config_routes
from tuneloop.server.routers import evals as eval_routes
from tuneloop.server.routers import experiments as experiment_routes
from tuneloop.server.routers import feedback, health, metrics, otlp, prom, traces
from tuneloop.server.routers import recommendations as recommendation_routes
from tuneloop.server.routers import review as review_routes
from tuneloop.server.routers import rollouts as rollout_routes
from tuneloop.settings import Settings, load_settings
from tuneloop.store import Store
from tuneloop.telemetry.prepare import NormalizerSpec

log = logging.getLogger("tuneloop.server")


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, clock: Clock | None = None
) -> FastAPI:
    """Build the server. A store passed in is used as is (and not closed on shutdown)."""
    settings = settings or load_settings()
    owns_store = store is None
    spec = NormalizerSpec(
        prices=settings.prices(),
        max_attribute_chars=settings.max_attribute_chars,
        max_attributes_per_span=settings.max_attributes_per_span,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = store or Store.open(
            settings.resolved_database_url(),
            max_pending_writes=settings.write_queue_max_requests,
        )
        active.writer.start()
        preparer = IngestPreparer(spec, workers=settings.resolved_ingest_workers())
        await run_in_threadpool(preparer.start)
        app.state.preparer = preparer
        app.state.store = active
        app.state.authenticator = Authenticator(active.keys.authenticate)
        recommend_job = recommendation_routes.start_job(app)
        controller_task = start_controller(app)
        try:
            yield
        finally:
            await stop_controller(controller_task)
            await recommendation_routes.stop_job(recommend_job)
            preparer.close()
            if owns_store:
                active.close()
            else:
                active.writer.stop()

    app = FastAPI(
        title="tuneloop",
        version=__version__,
        summary="Traces in, better agents out.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()

    @app.exception_handler(TuneloopError)
    async def _tuneloop_error(_request: Request, exc: TuneloopError) -> JSONResponse:
        status = status_of(exc)
        headers = {"Retry-After": "1"} if isinstance(exc, StoreBusyError) else None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(error_body(exc), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        ]
        return JSONResponse(
            {"error": {"type": "InvalidInputError", "message": "; ".join(problems)}},
            status_code=422,
        )

    for router in (health.router, otlp.router, traces.router, metrics.router, feedback.router):
        app.include_router(router)
    app.include_router(config_routes.router)
    app.include_router(eval_routes.router)
    app.include_router(experiment_routes.router)
    app.include_router(review_routes.router)
    app.include_router(recommendation_routes.router)
    app.include_router(rollout_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(prom.router)
    mount_dashboard(app, settings)
    return app
