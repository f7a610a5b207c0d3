"""Pause, and resume, all of one user's or some labels' schedules, optionally only those of
some task types, due in a window or last changed in one: ``POST /v1/schedules:pause`` and
``POST /v1/schedules:resume``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from fastapi import APIRouter, Depends
from pydantic import Field

from cronjob.services.bulk_pause import pause_schedules, resume_schedules
from cronjob.services.scheduling import SchedulingService

from cronjob_adapters.web.actors import RequestActor
from cronjob_adapters.web.bulk_select import RefusedView, SelectionView, SelectRequest, more_field, refused_views
from cronjob_adapters.web.problems import problem_responses

class BulkPauseView(SelectionView):
    """What was asked, what was paused, and what could not be (one that runs is not stopped)."""

    paused: list[str] = Field(description="The ids of the schedules paused now.")
    refused: list[RefusedView] = Field(description="Schedules that could not be paused, with why (one that runs: "
                                                   "pause a recurring one again once its run ended).")
    more: bool = more_field()


class BulkResumeView(SelectionView):
    """What was asked, what was resumed, and what could not be."""

    resumed: list[str] = Field(description="The ids of the schedules resumed now.")
    refused: list[RefusedView] = Field(description="Schedules that could not be resumed, with why.")
    more: bool = more_field()


def bulk_pause_router(scheduling: SchedulingService, known_types: Collection[str],
                      json_body: Callable[..., Awaitable[None]]) -> APIRouter:
    """The two routes, for the API's router behind the bearer token; ``known_types`` are the
    task types a request may name (the service's own jobs among them: each is refused, never
    paused by hand), ``json_body`` the API's check that a body is sent as JSON (415 otherwise)."""
    router = APIRouter()
    responses = problem_responses(408, 413, 415)

    @router.post("/v1/schedules:pause", response_model=BulkPauseView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses=responses)
    async def pause_matching(request: SelectRequest, actor: RequestActor) -> BulkPauseView:
        """Pause every schedule that waits made with `userId` and/or carrying every one of
        `labels` (both given: those matching both; neither: a 422), narrowed as
        `POST /v1/schedules:cancel` narrows it: by `type`, a due-time window
        `due_after <= next_run_at < due_before` and a last-change window
        `updated_after <= updated_at < updated_before` (the answer echoes them), as
        `POST /v1/schedules/{id}/pause` pauses one (each with its `paused` event and webhooks): a
        campaign on hold, a user's WhatsApp templates but not their e-mails. One that runs is not
        stopped: it is listed in `refused`, with why (pause a recurring one again once its run
        ended). The service's own jobs are never paused by hand. Repeating the request pauses
        what was made meanwhile, and nothing twice. With `limit`, at most that many are paused
        and `more` says whether more may match: repeat the request until it is false."""
        selection = request.selection(known_types)
        done = await pause_schedules(scheduling, selection, request.limit, actor)
        return BulkPauseView(**BulkPauseView.echo(selection), paused=done.changed, refused=refused_views(done.refused),
                             more=done.more)

    @router.post("/v1/schedules:resume", response_model=BulkResumeView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses=responses)
    async def resume_matching(request: SelectRequest, actor: RequestActor) -> BulkResumeView:
        """Resume every paused schedule made with `userId` and/or carrying every one of `labels`
        (neither: a 422), narrowed as `POST /v1/schedules:pause` narrows it: by `type`, a
        due-time window `due_after <= next_run_at < due_before` (a paused one keeps its time)
        and a last-change window `updated_after <= updated_at < updated_before` (for a paused
        one, when it was paused), as `POST /v1/schedules/{id}/resume` resumes one: a one-off
        keeps its time (one that fell due while paused runs at once, or ends `missed` beyond its
        misfire grace or `send_by`), a recurring one skips what fell due meanwhile. Each with
        its `resumed` event and webhooks. With `limit`, at most that many are resumed and
        `more` says whether more may match: repeat the request until it is false."""
        selection = request.selection(known_types)
        done = await resume_schedules(scheduling, selection, request.limit, actor)
        return BulkResumeView(**BulkResumeView.echo(selection), resumed=done.changed,
                              refused=refused_views(done.refused), more=done.more)

    return router
