"""Retry all dead letters, or some of them, at once: ``POST /v1/schedules:retry``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cronjob.domain.errors import ValidationError
from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.bulk_retry import retry_schedules
from cronjob.services.scheduling import SchedulingService, updated_window

from cronjob_adapters.web.bulk_cancel import RefusedView
from cronjob_adapters.web.instants import Instant, body_instant
from cronjob_adapters.web.problems import PROBLEM_RESPONSE
from cronjob_adapters.web.schemas import Labels

_TaskType = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _instant_field(description: str, example: str) -> Any:
    """A body field that names an instant (read by :func:`body_instant`), described."""
    return Field(default=None, min_length=1, max_length=64, examples=[example],
                 description=description + " An ISO-8601 date-time with an offset (`-03:00`, `Z`).")


class BulkRetryRequest(BaseModel):
    """Which schedules to retry: those in `status`, optionally only of some task types, made
    with `userId`, carrying every one of `labels` and last changed (for these: ended) in the
    window `updated_after <= updated_at < updated_before`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"status": "dead"}, {"status": "dead", "type": ["whatsapp.template"]},
                     {"status": "missed", "labels": {"campaign": "black-friday"}},
                     {"status": "dead", "updated_after": "2026-11-28T14:00:00-03:00",
                      "updated_before": "2026-11-28T15:00:00-03:00"}],
    })

    status: Literal["dead", "unknown", "missed"] = Field(
        description="The status to retry from. `unknown` ones may have been sent already (the send got no "
                    "answer): retrying them may send them twice.")
    type: Annotated[list[_TaskType] | None, Field(
        default=None, min_length=1, max_length=20,
        description="Only these task types (default: every type but the service's own jobs; name "
                    "`webhook.delivery` to retry status webhook deliveries).")] = None
    userId: Annotated[str | None, Field(default=None, max_length=256,
                                        description="Only those made with this `userId` (exactly).")] = None
    labels: Annotated[Labels | None, Field(default=None,
                                           description="Only those carrying every one of these labels.")] = None
    updated_after: Annotated[str | None, _instant_field(
        "Only those last changed at or after this instant (`updated_at >= updated_after`): for a "
        "schedule in `status`, when it ended there (or last got a delivery status).",
        "2026-11-28T14:00:00-03:00")] = None
    updated_before: Annotated[str | None, _instant_field(
        "Only those last changed before this instant (`updated_at < updated_before`: the window is "
        "half-open); later than `updated_after`. With both: those that died during an outage.",
        "2026-11-28T15:00:00-03:00")] = None


class BulkRetryView(BaseModel):
    """What was retried, and what could not be."""

    status: str = Field(description="The status asked for.")
    type: list[str] | None = Field(description="The task types asked for (null: every type but the service's own).")
    userId: str | None = Field(description="The `userId` asked for (null: anyone's).")
    labels: dict[str, str] | None = Field(description="The labels asked for (null: any).")
    updated_after: Instant | None = Field(description="The window's start asked for, in UTC (null: open); "
                                                      "a fraction of a millisecond is rounded up, as it acts.")
    updated_before: Instant | None = Field(description="The window's end asked for, in UTC (null: open); "
                                                       "a fraction of a millisecond is rounded up, as it acts.")
    retried: list[str] = Field(description="The ids of the schedules retried now: each is due at once.")
    refused: list[RefusedView] = Field(description="Schedules that could not be retried, with why (one that "
                                                   "left the status meanwhile, one that kept changing).")


def bulk_retry_router(scheduling: SchedulingService, internal_task_types: Sequence[str],
                      json_body: Callable[..., Awaitable[None]]) -> APIRouter:
    """The route, for the API's router behind the bearer token; ``internal_task_types`` are the
    service's own jobs (retried only when named), ``json_body`` the API's check that a body is
    sent as JSON (415 otherwise)."""
    router = APIRouter()

    @router.post("/v1/schedules:retry", response_model=BulkRetryView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses={413: PROBLEM_RESPONSE, 415: PROBLEM_RESPONSE})
    async def retry_matching(request: BulkRetryRequest) -> BulkRetryView:
        """Retry every schedule in `status` (`dead`, `unknown` or `missed`), of the task types in
        `type`, made with `userId`, carrying every one of `labels` and last changed in the window
        `updated_after <= updated_at < updated_before` (each given selector must match; none:
        every such schedule; an ended schedule last changed when it ended, or last got a delivery
        status: a window picks those that died during an outage), as
        `POST /v1/schedules/{id}/retry` retries one: due
        now, with a fresh attempt count, each with its `scheduled` event (`data.retried_from`) and webhooks. The
        redrive of the dead letters, once what failed them (an outage, an expired token) is
        fixed. Each is retried at most once per request, even if it fails again meanwhile; a
        repeat retries what is in `status` then. An unknown task type is a 422, as an instant
        without an offset is, and an `updated_before` not later than `updated_after`."""
        known = {*scheduling.task_types, *internal_task_types}
        if unknown := sorted(set(request.type or ()) - known):
            raise ValidationError(f"unknown task type {unknown[0]!r}; known: {', '.join(sorted(known))}",
                                  field="type")
        after, before = updated_window(body_instant(request.updated_after, "updated_after"),
                                       body_instant(request.updated_before, "updated_before"))
        done = await retry_schedules(scheduling, status=ScheduleStatus(request.status), task_types=request.type,
                                     user_id=request.userId, labels=request.labels,
                                     updated_after=after, updated_before=before)
        return BulkRetryView(status=request.status, type=request.type, userId=request.userId,
                             labels=request.labels, updated_after=after, updated_before=before,
                             retried=done.retried,
                             refused=[RefusedView(id=i, reason=r) for i, r in done.refused.items()])

    return router
