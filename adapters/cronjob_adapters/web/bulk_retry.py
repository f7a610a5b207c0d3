"""Retry all dead letters, or some of them, at once: ``POST /v1/schedules:retry``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field

from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.bulk_retry import retry_schedules
from cronjob.services.scheduling import SchedulingService

from cronjob_adapters.web.actors import RequestActor
from cronjob_adapters.web.bulk_select import Narrowing, NarrowingView, RefusedView, more_field, refused_views
from cronjob_adapters.web.cursors import decode_cursor, encode_cursor
from cronjob_adapters.web.problems import problem_responses


class BulkRetryRequest(Narrowing):
    """Which schedules to retry: those in `status`, optionally only of some task types, made
    with `userId`, carrying every one of `labels` and last changed (for these: ended) in the
    window `updated_after <= updated_at < updated_before`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"status": "dead"}, {"status": "dead", "type": ["whatsapp.template"]},
                     {"status": "missed", "labels": {"campaign": "black-friday"}},
                     {"status": "dead", "updated_after": "2026-11-28T14:00:00-03:00",
                      "updated_before": "2026-11-28T15:00:00-03:00"},
                     {"status": "dead", "limit": 1000}],
    })

    status: Literal["dead", "unknown", "missed"] = Field(
        description="The status to retry from. `unknown` ones may have been sent already (the send got no "
                    "answer): retrying them may send them twice.")
    cursor: str | None = Field(default=None, max_length=1024, description=(
        "The `next_cursor` of the previous answer (with `more`), as it came: go on after the last schedule "
        "that request listed. Without it a repeat starts again from the newest, so what the previous "
        "request retried and failed again meanwhile (the failure not fixed) would be retried again before "
        "the rest."))


class BulkRetryView(NarrowingView):
    """What was asked, what was retried, and what could not be."""

    status: str = Field(description="The status asked for.")
    retried: list[str] = Field(description="The ids of the schedules retried now: each is due at once.")
    refused: list[RefusedView] = Field(description="Schedules that could not be retried, with why (one that "
                                                   "left the status meanwhile, one that kept changing).")
    more: bool = more_field()
    next_cursor: str | None = Field(description=(
        "With `more`: where this request stopped. Repeat it with `cursor` set to this to go on with the "
        "schedules after the last one it listed (null when `more` is false)."))


def bulk_retry_router(scheduling: SchedulingService, known_types: Collection[str],
                      json_body: Callable[..., Awaitable[None]]) -> APIRouter:
    """The route, for the API's router behind the bearer token; ``known_types`` are the task
    types a request may name (the service's own jobs among them), ``json_body`` the API's check that a body is
    sent as JSON (415 otherwise)."""
    router = APIRouter()

    @router.post("/v1/schedules:retry", response_model=BulkRetryView, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses=problem_responses(408, 413, 415))
    async def retry_matching(request: BulkRetryRequest, actor: RequestActor) -> BulkRetryView:
        """Retry every schedule in `status` (`dead`, `unknown` or `missed`), of the task types in
        `type`, made with `userId`, carrying every one of `labels` and last changed in the window
        `updated_after <= updated_at < updated_before` (each given selector must match; none:
        every such schedule; an ended schedule last changed when it ended, or last got a delivery
        status: a window picks those that died during an outage), as
        `POST /v1/schedules/{id}/retry` retries one: due
        now, with a fresh attempt count, each with its `scheduled` event (`data.retried_from`) and webhooks. The
        redrive of the dead letters, once what failed them (an outage, an expired token) is
        fixed. Each is retried at most once per request, even if it fails again meanwhile; a
        repeat retries what is in `status` then (one that failed again included). With `limit`,
        at most that many are retried and `more` says whether more may match: repeat the
        request until it is false, each time with `cursor` = the previous answer's
        `next_cursor` (without it, what failed again at once would be retried again before the
        rest). A `cursor` that is not such a `next_cursor` is a 422 naming it, as are a `status`
        that cannot be retried, an unknown task type, an instant without an offset, an
        `updated_before` not later than `updated_after` and a `limit` outside 1 to 10,000."""
        selection = request.selection(known_types)
        after = None if request.cursor is None else decode_cursor(request.cursor)
        done = await retry_schedules(scheduling, status=ScheduleStatus(request.status), selection=selection,
                                     limit=request.limit, after=after, actor=actor)
        return BulkRetryView(**BulkRetryView.echo(selection), status=request.status, retried=done.retried,
                             refused=refused_views(done.refused), more=done.more,
                             next_cursor=None if done.next is None else encode_cursor(done.next))

    return router
