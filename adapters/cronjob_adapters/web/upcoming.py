"""When a schedule, or a rule not yet scheduled, runs next: ``GET /v1/schedules/{id}/upcoming``
and ``GET /v1/rules/preview``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cronjob.services.scheduling import MAX_RULE_LENGTH, SchedulingService

from cronjob_adapters.web.problems import problem_responses
from cronjob_adapters.web.schemas import RulePreviewView, RunView, ScheduleId, UpcomingView

Count = Annotated[int, Query(ge=1, le=100, description="How many runs to show at most (1 to 100).")]


def upcoming_router(scheduling: SchedulingService, default_timezone: str) -> APIRouter:
    """The two routes, for the API's router behind the bearer token (whose checks they take)."""
    router = APIRouter()

    @router.get("/v1/schedules/{schedule_id}/upcoming", response_model=UpcomingView, tags=["schedules"],
                responses=problem_responses(404))
    async def upcoming(schedule_id: ScheduleId, count: Count = 5) -> UpcomingView:
        """When the schedule runs next, if nothing changes: its next run (on its rule, a retry's
        time, marked `retry`, or overdue: it runs at once), then its rule's occurrences, each run
        succeeding. A paused one as if resumed now (a recurring one skips what fell due; none
        once its rule ended meanwhile); a running one from the occurrence after the one that
        runs; none for one that ended. A run overdue beyond its misfire grace or past its
        `send_by` is not shown, as the scheduler would miss it (a one-off then has none).
        Each run's UTC instant and wall time in the schedule's zone."""
        found = await scheduling.upcoming(schedule_id, count)
        schedule = found.schedule
        return UpcomingView(schedule=schedule.trigger.expression, timezone=schedule.timezone,
                            status=schedule.status.value,
                            runs=RunView.list_of(found.runs, schedule.timezone, retry=found.retry))

    @router.get("/v1/rules/preview", response_model=RulePreviewView, tags=["rules"])
    async def preview(
        schedule: Annotated[str, Query(min_length=1, max_length=MAX_RULE_LENGTH, examples=["daily at 02:30"],
                                       description="A rule, as `POST /v1/schedules` takes it.")],
        timezone: Annotated[str | None, Query(min_length=1, max_length=64, examples=["Europe/Berlin"],
                                              description="IANA zone of the rule's wall times; default from "
                                                          "settings.")] = None,
        count: Count = 5,
    ) -> RulePreviewView:
        """When a rule would run, were it scheduled now: checked as `POST /v1/schedules` checks
        it (a 422 naming `schedule` or `timezone`), its first runs with each one's UTC instant
        and wall time in the zone. Nothing is stored."""
        found = scheduling.preview(schedule, timezone or default_timezone, count)
        return RulePreviewView(schedule=found.trigger.expression, timezone=found.timezone,
                               recurring=found.trigger.recurring, runs=RunView.list_of(found.runs, found.timezone))

    return router
