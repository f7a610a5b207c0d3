"""Cancel all of one user's, or some labels', live schedules: ``POST /v1/schedules:cancel``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from cronjob.services.bulk_cancel import cancel_schedules
from cronjob.services.scheduling import SchedulingService

from cronjob_adapters.web.problems import PROBLEM_RESPONSE
from cronjob_adapters.web.schemas import Labels


class CancelRequest(BaseModel):
    """Whose schedules to cancel: those made with `userId`, those carrying every one of `labels`,
    or, with both, those matching both. At least one is needed (never everyone's)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"userId": "abc123"}, {"labels": {"order": "123"}},
                     {"userId": "abc123", "labels": {"campaign": "black-friday"}}],
        "anyOf": [{"required": ["userId"]}, {"required": ["labels"]}],
    })

    userId: Annotated[str | None, Field(default=None, min_length=1, max_length=256,
                                        description="The `userId` the schedules were made with (exactly, case and "
                                                    "all).")] = None
    labels: Annotated[Labels | None, Field(default=None, min_length=1,
                                           description="Labels the schedules carry, each with exactly this value "
                                                       "(all of them).")] = None


class RefusedView(BaseModel):
    id: str
    reason: str


class BulkCancellationView(BaseModel):
    """What was cancelled, and what could not be (a one-off being sent cannot be stopped)."""

    userId: str | None = Field(description="The `userId` asked for (null: anyone's).")
    labels: dict[str, str] | None = Field(default=None, description="The labels asked for (null: any).")
    cancelled: list[str] = Field(description="The ids of the schedules cancelled now.")
    refused: list[RefusedView] = Field(description="Schedules that could not be cancelled, with why.")


def bulk_cancel_router(scheduling: SchedulingService, json_body: Callable[..., Awaitable[None]]) -> APIRouter:
    """The route, for the API's router behind the bearer token; ``json_body`` is the API's
    check that a body is sent as JSON (415 otherwise)."""
    router = APIRouter()

    @router.post("/v1/schedules:cancel", response_model=BulkCancellationView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses={413: PROBLEM_RESPONSE, 415: PROBLEM_RESPONSE})
    async def cancel_matching(request: CancelRequest) -> BulkCancellationView:
        """Cancel every live schedule made with `userId` and/or carrying every one of `labels`
        (both given: those matching both; neither: a 422), as `DELETE /v1/schedules/{id}` cancels
        one (each with its `cancelled` event and webhooks): those that wait or are paused, and
        recurring ones while they run. An opt-out, a closed account, an order's reminders. A
        one-off being sent cannot be stopped: it is listed in `refused`, with why. The service's
        own jobs are left alone. Repeating the request cancels what was made meanwhile, and
        nothing twice."""
        done = await cancel_schedules(scheduling, user_id=request.userId, labels=request.labels)
        return BulkCancellationView(userId=request.userId, labels=request.labels, cancelled=done.cancelled,
                                    refused=[RefusedView(id=i, reason=r) for i, r in done.refused.items()])

    return router
