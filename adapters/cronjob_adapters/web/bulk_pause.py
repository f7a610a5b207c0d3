"""Pause, and resume, all of one user's or some labels' schedules: ``POST /v1/schedules:pause``
and ``POST /v1/schedules:resume``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from cronjob.services.bulk_pause import pause_schedules, resume_schedules
from cronjob.services.scheduling import SchedulingService

from cronjob_adapters.web.bulk_cancel import CancelRequest, RefusedView
from cronjob_adapters.web.problems import PROBLEM_RESPONSE


class SelectRequest(CancelRequest):
    """Whose schedules: those made with `userId`, those carrying every one of `labels`, or, with
    both, those matching both. At least one is needed (never everyone's)."""


class BulkPauseView(BaseModel):
    """What was paused, and what could not be (one that runs is not stopped)."""

    userId: str | None = Field(description="The `userId` asked for (null: anyone's).")
    labels: dict[str, str] | None = Field(description="The labels asked for (null: any).")
    paused: list[str] = Field(description="The ids of the schedules paused now.")
    refused: list[RefusedView] = Field(description="Schedules that could not be paused, with why (one that runs: "
                                                   "pause a recurring one again once its run ended).")


class BulkResumeView(BaseModel):
    """What was resumed, and what could not be."""

    userId: str | None = Field(description="The `userId` asked for (null: anyone's).")
    labels: dict[str, str] | None = Field(description="The labels asked for (null: any).")
    resumed: list[str] = Field(description="The ids of the schedules resumed now.")
    refused: list[RefusedView] = Field(description="Schedules that could not be resumed, with why.")


def bulk_pause_router(scheduling: SchedulingService, json_body: Callable[..., Awaitable[None]]) -> APIRouter:
    """The two routes, for the API's router behind the bearer token; ``json_body`` is the API's
    check that a body is sent as JSON (415 otherwise)."""
    router = APIRouter()
    responses = {413: PROBLEM_RESPONSE, 415: PROBLEM_RESPONSE}

    @router.post("/v1/schedules:pause", response_model=BulkPauseView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses=responses)
    async def pause_matching(request: SelectRequest) -> BulkPauseView:
        """Pause every schedule that waits made with `userId` and/or carrying every one of
        `labels` (both given: those matching both; neither: a 422), as
        `POST /v1/schedules/{id}/pause` pauses one (each with its `paused` event and webhooks):
        a campaign on hold. One that runs is not stopped: it is listed in `refused`, with why
        (pause a recurring one again once its run ended). The service's own jobs are left alone.
        Repeating the request pauses what was made meanwhile, and nothing twice."""
        done = await pause_schedules(scheduling, user_id=request.userId, labels=request.labels)
        return BulkPauseView(userId=request.userId, labels=request.labels, paused=done.changed,
                             refused=[RefusedView(id=i, reason=r) for i, r in done.refused.items()])

    @router.post("/v1/schedules:resume", response_model=BulkResumeView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses=responses)
    async def resume_matching(request: SelectRequest) -> BulkResumeView:
        """Resume every paused schedule made with `userId` and/or carrying every one of `labels`
        (neither: a 422), as `POST /v1/schedules/{id}/resume` resumes one: a one-off keeps its
        time (one that fell due while paused runs at once, or ends `missed` beyond its misfire
        grace or `send_by`), a recurring one skips what fell due meanwhile. Each with its
        `resumed` event and webhooks."""
        done = await resume_schedules(scheduling, user_id=request.userId, labels=request.labels)
        return BulkResumeView(userId=request.userId, labels=request.labels, resumed=done.changed,
                              refused=[RefusedView(id=i, reason=r) for i, r in done.refused.items()])

    return router
