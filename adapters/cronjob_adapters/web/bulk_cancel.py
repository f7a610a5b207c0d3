"""Cancel all of one user's, or some labels', live schedules, optionally only those of some task
types, due in a window or last changed in one: ``POST /v1/schedules:cancel``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from fastapi import APIRouter, Depends
from pydantic import Field

from cronjob.services.bulk_cancel import cancel_schedules
from cronjob.services.scheduling import SchedulingService

from cronjob_adapters.web.actors import RequestActor
from cronjob_adapters.web.bulk_select import RefusedView, SelectionView, SelectRequest, more_field, refused_views
from cronjob_adapters.web.problems import problem_responses


class BulkCancellationView(SelectionView):
    """What was asked, what was cancelled, and what could not be (a one-off being sent cannot be
    stopped)."""

    cancelled: list[str] = Field(description="The ids of the schedules cancelled now.")
    refused: list[RefusedView] = Field(description="Schedules that could not be cancelled, with why.")
    more: bool = more_field()


def bulk_cancel_router(scheduling: SchedulingService, known_types: Collection[str],
                       json_body: Callable[..., Awaitable[None]]) -> APIRouter:
    """The route, for the API's router behind the bearer token; ``known_types`` are the task
    types a request may name (the service's own jobs among them), ``json_body`` the API's check that a body is
    sent as JSON (415 otherwise)."""
    router = APIRouter()

    @router.post("/v1/schedules:cancel", response_model=BulkCancellationView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses=problem_responses(408, 413, 415))
    async def cancel_matching(request: SelectRequest, actor: RequestActor) -> BulkCancellationView:
        """Cancel every live schedule made with `userId` and/or carrying every one of `labels`
        (both given: those matching both; neither: a 422, whatever else is given), optionally
        only those of the task types in `type`, due in the window
        `due_after <= next_run_at < due_before` and last changed in the window
        `updated_after <= updated_at < updated_before` (either side of a window may stay open),
        as `DELETE /v1/schedules/{id}` cancels one (each with its `cancelled` event and
        webhooks): those that wait or are paused, and recurring ones while they run. An opt-out,
        a closed account, an order's reminders, a user's reminders due tomorrow, what a campaign
        made during a bad deploy. A one-off being sent cannot be stopped: it is listed in
        `refused`, with why. Without `type`, the service's own jobs are left alone. The answer
        echoes what was asked (the windows' bounds in UTC). Repeating the request cancels what
        was made meanwhile, and nothing twice. With `limit`, at most that many are cancelled
        and `more` says whether more may match: repeat the request until it is false, each
        request bounded. An unknown task type is a 422, as an instant without an offset is, a
        window whose end is not later than its start and a `limit` outside 1 to 10,000."""
        selection = request.selection(known_types)
        done = await cancel_schedules(scheduling, selection, request.limit, actor)
        return BulkCancellationView(**BulkCancellationView.echo(selection), cancelled=done.cancelled,
                                    refused=refused_views(done.refused), more=done.more)

    return router
