"""Many schedules in one request: ``POST /v1/schedules:batch`` (a campaign of messages).

No ``from __future__ import annotations``: the route's body type is a class made at run time,
which FastAPI must see as itself, not as a name to look up."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field, create_model

from cronjob.domain.actor import Actor
from cronjob.domain.errors import ValidationError
from cronjob.services.batch_create import MAX_BATCH, create_each
from cronjob.services.commands import CreateScheduleCommand
from cronjob.services.scheduling import Scheduled, SchedulingService

from cronjob_adapters.web.actors import RequestActor
from cronjob_adapters.web.instants import Instant
from cronjob_adapters.web.problems import problem_responses
from cronjob_adapters.web.schemas import CreateScheduleBase

#: The path, for the body limit of its own (a batch is larger than one request).
BATCH_PATH = "/v1/schedules:batch"

#: The item field that carries what the ``Idempotency-Key`` header carries for one request.
KEY_FIELD = "idempotency_key"

#: How the service names the field of an idempotency key (the header of a single request).
_HEADER_FIELD = "Idempotency-Key"

#: The ``Idempotency-Key`` header of a batch: taken only when every item has a key of its own.
BatchKey = Annotated[str | None, Header(
    alias=_HEADER_FIELD, min_length=1, max_length=256,
    description="Not what makes a batch safe to send again: each item's `idempotency_key` does. Taken (and "
                "not used) when every item has one, so that a client adding it to every request still works; "
                "with an item without one, a 422 naming them.")]


class FieldError(BaseModel):
    field: str = Field(description="The field, from the batch's body: `schedules.3.schedule`.")
    message: str = Field(description="What is wrong with it.")


class BatchItemView(BaseModel):
    """What became of one item: created (201), already created by an earlier request with its
    idempotency key (200), or refused (422, with `errors`)."""

    index: int = Field(description="The item's position in `schedules`, from 0.")
    status: int = Field(description="201 created, 200 the replay of its `idempotency_key`, 422 refused.")
    id: str | None = Field(default=None, description="The schedule's id (201, 200).")
    next_run_at: Instant | None = Field(default=None, description="When it runs first (201, 200).")
    errors: list[FieldError] | None = Field(default=None, description="Why it was refused (422).")


class BatchView(BaseModel):
    """Each item's outcome, in the order of `schedules`, and how many of each."""

    created: int = Field(description="Items created (201).")
    replayed: int = Field(description="Items already created by an earlier request with their `idempotency_key` "
                                      "(200).")
    refused: int = Field(description="Items refused (422).")
    results: list[BatchItemView] = Field(description="Each item's outcome, in the order of `schedules`.")


def batch_request_model(create_request: type[CreateScheduleBase]) -> type[BaseModel]:
    """``BatchCreateRequest``: ``schedules``, each a ``POST /v1/schedules`` body (``create_request``)
    with an ``idempotency_key`` of its own."""
    item = create_model(  # type: ignore[call-overload]
        "BatchScheduleItem", __base__=create_request,
        idempotency_key=(Annotated[str | None, Field(
            default=None, min_length=1, max_length=256,
            description="What the `Idempotency-Key` header is to `POST /v1/schedules`: the batch sent "
                        "again answers this item with the schedule it created first (200).")], None))
    return create_model(  # type: ignore[call-overload,no-any-return]
        "BatchCreateRequest", __config__=ConfigDict(extra="forbid"),
        schedules=(Annotated[list[item], Field(  # type: ignore[valid-type]
            min_length=1, max_length=MAX_BATCH,
            description=f"1 to {MAX_BATCH} schedules, each as `POST /v1/schedules` takes it.")], ...))


def batch_create_router(scheduling: SchedulingService, request_model: type[BaseModel],
                        to_command: Callable[[Any, str | None, str | None, Actor], CreateScheduleCommand],
                        json_body: Callable[..., Awaitable[None]]) -> APIRouter:
    """The route, for the API's router behind the bearer token. ``request_model`` is
    :func:`batch_request_model`'s; ``to_command`` builds the command of one item (as
    ``POST /v1/schedules`` builds it, given the item's idempotency key, None for the form earlier
    versions stored keys in, and who made the request); ``json_body`` is the
    API's check that a body is sent as JSON (415 otherwise)."""
    router = APIRouter()
    BatchCreateRequest = request_model  # noqa: N806 - a class

    @router.post(BATCH_PATH, response_model=BatchView, response_model_exclude_none=True, tags=["schedules"],
                 dependencies=[Depends(json_body)], responses=problem_responses(408, 413, 415))
    async def create_batch(request: BatchCreateRequest,  # type: ignore[valid-type]
                           actor: RequestActor, idempotency_key: BatchKey = None) -> BatchView:
        """Create up to 1,000 schedules at once (a campaign), each as `POST /v1/schedules` creates
        one; an item's `idempotency_key` is what that request's `Idempotency-Key` header is.

        A body that does not fit the document (a missing field, a malformed phone number) is
        refused as a whole, 422, naming each wrong field (`schedules.3.task.to`), and nothing is
        created; of more than 100 errors, `errors` lists the first 100 (in item order) and
        `errors_total` counts them all, as the detail says. Then each item is created on its own: one the service refuses (a rule or zone
        it cannot read, a `send_at` too far in the past, an idempotency key used for another
        request) is answered 422 in its result, and the others are still created. Give each item
        an `idempotency_key` and the batch can be sent again safely (after a timeout, or a 503
        midway: what was created before stays): those created already are answered 200. An
        `Idempotency-Key` header does not make it so (it would not tell which items were created):
        sent with an item that has no `idempotency_key`, the batch is refused (422) and nothing is
        created."""
        if idempotency_key is not None:
            _check_items_keyed(request.schedules)  # type: ignore[attr-defined]
        commands: list[CreateScheduleCommand | ValidationError] = []
        for item in request.schedules:  # type: ignore[attr-defined]
            try:
                commands.append(to_command(item, getattr(item, KEY_FIELD), None, actor))
            except ValidationError as refused:
                commands.append(refused)
        outcomes = await create_each(scheduling, commands)
        results = [_result(index, outcome) for index, outcome in enumerate(outcomes)]
        return BatchView(created=sum(r.status == 201 for r in results), replayed=sum(r.status == 200 for r in results),
                         refused=sum(r.status == 422 for r in results), results=results)

    return router


def _check_items_keyed(items: list[Any]) -> None:
    """A batch sent with an ``Idempotency-Key`` header is meant to be safe to send again, which
    only the items' own keys make it: a :class:`ValidationError` naming the header, and the
    items without a key, when some have none (sent again, those would be created twice)."""
    unkeyed = [index for index, item in enumerate(items) if getattr(item, KEY_FIELD) is None]
    if unkeyed:
        shown = ", ".join(map(str, unkeyed[:10])) + (", ..." if len(unkeyed) > 10 else "")
        raise ValidationError(
            f"a batch is made safe to send again by each item's {KEY_FIELD}, not by this header (it does not "
            f"tell which items were created): {len(unkeyed)} of {len(items)} items have no {KEY_FIELD} "
            f"(schedules {shown}); give each item its own", field=_HEADER_FIELD)


def _result(index: int, outcome: Scheduled | ValidationError) -> "BatchItemView":
    if isinstance(outcome, ValidationError):
        field = KEY_FIELD if outcome.field == _HEADER_FIELD else (outcome.field or "")
        path = f"schedules.{index}" + (f".{field}" if field else "")
        return BatchItemView(index=index, status=422, errors=[FieldError(field=path, message=outcome.message)])
    schedule = outcome.schedule
    return BatchItemView(index=index, status=201 if outcome.created else 200, id=schedule.id,
                         next_run_at=schedule.next_run_at)
