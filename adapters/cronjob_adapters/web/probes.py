"""Health and metrics endpoints, shared by the API and the scheduler's own small HTTP server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, Response

import cronjob
from cronjob.services.health import HealthService

from cronjob_adapters.web.head import HeadAsGet
from cronjob_adapters.web.problems import install_problem_handlers, problem_responses
from cronjob_adapters.web.schemas import Health, ProbeView

MetricsRenderer = Callable[[], Awaitable[tuple[bytes, str]]]


def probe_router(health: HealthService, render_metrics: MetricsRenderer | None,
                 auth: Callable[..., Awaitable[None]]) -> APIRouter:
    """``/healthcheck``, ``/livez``, ``/readyz`` (open, for probes) and ``/metrics`` (bearer token)."""
    router = APIRouter(tags=["health"])

    @router.get("/healthcheck", response_model=Health,
                responses={503: {"model": Health, "description": "The store does not answer."}})
    async def healthcheck() -> JSONResponse:
        """Liveness, and whether the schedule store answers (503 when it does not)."""
        report = await health.check()
        body = Health(status="ok" if report.store_ok else "degraded", alive=True,  # it answered
                      store="ok" if report.store_ok else "unavailable", version=cronjob.__version__)
        return JSONResponse(body.model_dump(), status_code=200 if report.store_ok else 503)

    @router.get("/livez", response_model=ProbeView, responses={503: {"model": ProbeView}})
    async def livez() -> JSONResponse:
        """The process answers and its scheduler loop (if any) is not stuck (503 otherwise)."""
        probe = health.live()
        return JSONResponse(ProbeView(ok=probe.ok, checks=probe.checks).model_dump(),
                            status_code=200 if probe.ok else 503)

    @router.get("/readyz", response_model=ProbeView, responses={503: {"model": ProbeView}})
    async def readyz() -> JSONResponse:
        """Ready to work: store reachable, indexes created, scheduler loop alive (503 otherwise)."""
        probe = await health.ready()
        return JSONResponse(ProbeView(ok=probe.ok, checks=probe.checks).model_dump(),
                            status_code=200 if probe.ok else 503)

    if render_metrics is not None:
        @router.get("/metrics", dependencies=[Depends(auth)], response_class=Response,
                    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
                               **problem_responses(401, 503)})
        async def metrics() -> Response:
            """Prometheus metrics (schedules by status and type, lateness, attempts, takeovers, ...)."""
            body, content_type = await render_metrics()
            return Response(body, media_type=content_type)

    return router


def create_probe_app(health: HealthService, render_metrics: MetricsRenderer | None,
                     auth: Callable[..., Awaitable[None]]) -> FastAPI:
    """The scheduler process's own small app: the probe router only."""
    app = FastAPI(title="cronjob scheduler", version=cronjob.__version__, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    app.add_middleware(HeadAsGet)
    app.include_router(probe_router(health, render_metrics, auth))
    return app
