"""The FastAPI application factory. Services come in as arguments: only bootstrap names adapters."""

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Response
from pydantic import BaseModel, StringConstraints

import cronjob
from cronjob.domain.actor import Actor
from cronjob.domain.errors import ValidationError
from cronjob.domain.labels import MAX_KEY_LENGTH, MAX_LABELS, MAX_VALUE_LENGTH, parse_selector
from cronjob.domain.message import MessageKind
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.zones import DEFAULT_TIMEZONE, localize
from cronjob.ports.metrics import IN_FLIGHT_LIMIT, Metrics, NullMetrics
from cronjob.services.delivery_status import DeliveryStatusService
from cronjob.services.health import HealthService
from cronjob.services.commands import (
    CreateScheduleCommand,
    RescheduleCommand,
    ScheduleMessageCommand,
    message_task_type,
)
from cronjob.services.scheduling import SchedulingService

from cronjob_adapters.tasks.python import RoutineRegistry
from cronjob_adapters.tasks.registry import TaskRegistry, TaskType
from cronjob_adapters.tasks.ssrf import parse_url
from cronjob_adapters.web.actors import RequestActor
from cronjob_adapters.web.auth import bearer_tokens, document_read_only_refusal
from cronjob_adapters.web.batch_create import BATCH_PATH, batch_create_router, batch_request_model
from cronjob_adapters.web.batch_create import KEY_FIELD as BATCH_KEY_FIELD
from cronjob_adapters.web.bulk_cancel import bulk_cancel_router
from cronjob_adapters.web.bulk_pause import bulk_pause_router
from cronjob_adapters.web.bulk_retry import bulk_retry_router
from cronjob_adapters.web.counts_cache import CountsCache
from cronjob_adapters.web.cursors import MAX_LENGTH as CURSOR_LENGTH
from cronjob_adapters.web.cursors import PATTERN as CURSOR_PATTERN
from cronjob_adapters.web.cursors import decode_cursor, encode_cursor
from cronjob_adapters.web.cut_requests import CutRequestAnswer
from cronjob_adapters.web.dashboard import dashboard_router
from cronjob_adapters.web.head import HeadAsGet
from cronjob_adapters.web.instants import query_instant
from cronjob_adapters.web.in_flight import DEFAULT_MAX_REQUESTS_IN_FLIGHT, InFlightLimit
from cronjob_adapters.web.limits import BodySizeLimit, BodyTimeLimit, BodyWaits
from cronjob_adapters.web.probes import MetricsRenderer, probe_router
from cronjob_adapters.web.openapi_document import extend_openapi, keep_examples
from cronjob_adapters.web.problems import StoreNotReady, install_problem_handlers, problem_responses
from cronjob_adapters.web.request_id import RequestId
from cronjob_adapters.web.request_metrics import RequestMetrics
from cronjob_adapters.web.retry_policies import schedule_retry_policy
from cronjob_adapters.web.routines import RoutineDetail, RoutineView, routines_router
from cronjob_adapters.web.schemas import (
    CreateScheduleBase,
    TaskTypeDetail,
    TaskTypeView,
    create_request_model,
    EventList,
    EventView,
    reschedule_request_model,
    RetryView,
    ScheduleId,
    ScheduleList,
    ScheduleMessageRequest,
    ScheduleView,
    StatsView,
    header_text,
    parse_send_at,
)
from cronjob_adapters.web.strict_query import refuse_unknown_query_parameters
from cronjob_adapters.web.task_types import check_task_types
from cronjob_adapters.web.upcoming import upcoming_router
from cronjob_adapters.web.whatsapp_webhook import document_notification, whatsapp_webhook_router

#: The status webhook deliveries of a schedule's events, by event id (objects with the fields of
#: :class:`DeliveryView`).
DeliveryLookup = Callable[[Schedule], Awaitable[Mapping[str, Sequence[Any]]]]

@dataclass(frozen=True, slots=True)
class ApiServices:
    """What the HTTP API needs: application services and its own settings."""

    scheduling: SchedulingService
    health: HealthService
    tokens: Sequence[str]
    #: Read-only tokens: admitted to the GET routes behind the token check, a 403 on the others.
    read_tokens: Sequence[str] = ()
    default_timezone: str = DEFAULT_TIMEZONE
    max_body_bytes: int = 64 * 1024
    #: The body limit of ``POST /v1/schedules:batch`` (up to 1,000 schedules).
    max_batch_body_bytes: int = 2 * 1024 * 1024
    #: How long a client may take to send a request's body once its headers are in (then a 408).
    body_timeout_seconds: float = 30.0
    #: The requests waiting for their bodies, which the runtime cuts (503) when the process stops.
    body_waits: BodyWaits | None = None
    #: The requests (probes and ``/metrics`` aside) this process serves at once; one more is a
    #: 503 at once. 0: no bound.
    max_requests_in_flight: int = DEFAULT_MAX_REQUESTS_IN_FLIGHT
    render_metrics: MetricsRenderer | None = None
    task_types: TaskRegistry | None = None
    #: The routines the ``python`` task type runs (``GET /v1/routines``); None: none.
    routines: RoutineRegistry | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    delivery_status: DeliveryStatusService | None = None
    webhook_deliveries: DeliveryLookup | None = None
    #: Task types the service creates for itself (status webhook deliveries): left out of
    #: ``GET /v1/schedules`` unless asked for by ``type``.
    internal_task_types: Sequence[str] = ()
    #: Told of every request (method, route, status, duration); None: not measured.
    metrics: Metrics | None = None
    #: The counts behind ``GET /v1/stats`` (None: read through ``scheduling``, again at most every 2 s).
    counts: CountsCache | None = None
    #: Why status webhooks to a ``callback_url`` would be refused whatever DNS answers (its host
    #: is a private, loopback, link-local or metadata address not on the allow-list), or None;
    #: such a URL is a 422. None: not checked.
    callback_refusal: Callable[[str], str | None] | None = None


async def json_content_type(content_type: Annotated[str | None, Header(include_in_schema=False)] = None) -> None:
    """A body sent as something else than JSON, or without a Content-Type, is a 415 naming what
    came, not a 422 about a body that "should be a valid dictionary" (FastAPI reads only bodies
    sent as JSON as objects)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise HTTPException(415, "the body must be JSON (Content-Type: application/json), not "
                                 + (media or "sent without a Content-Type"))


def request_digest(path: str, request: BaseModel, exclude: set[str] | None = None) -> str:
    """What identifies a request for its Idempotency-Key: the route and the body as understood
    (key order, spacing and defaults spelt out or left out make no difference), but for the
    fields in ``exclude``. Defaults are left
    out of what is hashed, so that a field added to the API later (with a default) does not
    change the digest of a request made before: its retry during an upgrade is still a replay."""
    fields = request.model_dump(mode="json", exclude_defaults=True, exclude=exclude)
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a lone surrogate in a task's free-form JSON (a routine's args) gets this far;
    # the service then refuses it, naming its place, rather than the digest failing (a 500).
    return "v1:" + hashlib.sha256(f"{path}\n{body}".encode("utf-8", "surrogatepass")).hexdigest()


#: The ``Location`` header of a creation's answer, and its 201.
_LOCATION = {"Location": {"description": "The schedule's path: `/v1/schedules/{id}`.", "required": True,
                          "schema": {"type": "string"}}}
_CREATED = {"description": "Created.", "headers": _LOCATION}

#: The ``Idempotency-Key`` header of a creation.
CreationKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=256,
    description="Your key for this request: sent again with the same request, it returns the schedule "
                "created first (200) instead of creating another; with another request, a 422. Shared by every "
                "token and with the batch items' `idempotency_key`; non-ASCII text is the same key sent as UTF-8 "
                "or as Latin-1 bytes.")]


def creation_key(received: str | None) -> tuple[str | None, str | None]:
    """An ``Idempotency-Key`` header's key as the client wrote it, and what arrived when that
    differs. The server reads header bytes as Latin-1, so the UTF-8 of ``pedido-ção`` arrives as
    ``pedido-Ã§Ã£o``: the key is ``pedido-ção`` (:func:`header_text`), the one a batch item's
    ``idempotency_key`` names and a client sending Latin-1 bytes sends. Earlier versions stored
    what arrived: it is returned second (None when the same), for the replay of their schedules."""
    key = header_text(received)
    return key, (received if received != key else None)


_MICROSECOND = timedelta(microseconds=1)
#: The longest ``key=value`` label selector.
_SELECTOR_LENGTH = MAX_KEY_LENGTH + 1 + MAX_VALUE_LENGTH


def _instant_query(description: str, example: str) -> Any:
    """A query parameter that names an instant (read by :func:`query_instant`), described."""
    return Query(min_length=1, max_length=64, examples=[example],
                 description=description + " An ISO-8601 date-time with an offset (`-03:00`, `Z`).")


def _seconds(value: float | None) -> timedelta | None:
    """``value`` seconds; a positive value too small for a timedelta is its smallest step, not
    zero (a misfire grace of zero means "no limit": 1e-9 s must not mean that)."""
    if value is None:
        return None
    return max(timedelta(seconds=value), _MICROSECOND) if value > 0 else timedelta(seconds=value)


def _deadline(value: datetime | None, timezone: str | None) -> datetime | None:
    """``send_by`` as an instant: with its offset, or a wall time in ``timezone`` (the one a
    ``send_at`` or the rule's wall times are read in), which it then needs."""
    if value is None or value.tzinfo is not None:
        return value
    if timezone is None:
        raise ValidationError("send_by needs an offset (e.g. 2025-06-21T18:00:00-03:00) or a 'timezone' field",
                              field="send_by")
    return localize(value, timezone, field="send_by")


def checked_callback_url(url: str | None, refusal: Callable[[str], str | None] | None) -> str | None:
    """``url``, unless every status webhook to it would be refused (``refusal``, see
    :attr:`ApiServices.callback_refusal`): a :class:`ValidationError` naming ``callback_url``
    then, its message naming the host, never the whole URL (its query may hold a token)."""
    if url is not None and refusal is not None and (reason := refusal(url)) is not None:
        raise ValidationError(
            f"status webhooks to {parse_url(url).authority} would be refused: {reason}; CRONJOB_HTTP_ALLOW_HOSTS "
            "names the private destinations that may be reached", field="callback_url")
    return url


def _command(request: ScheduleMessageRequest, default_timezone: str, idempotency_key: str | None,
             registry: TaskRegistry, callback_refusal: Callable[[str], str | None] | None,
             actor: Actor) -> ScheduleMessageCommand:
    try:
        send_at = request.parsed_send_at()
    except ValueError as exc:
        raise ValidationError(str(exc), field="send_at") from exc
    timezone = request.timezone or default_timezone  # checked by the scheduling service
    if send_at.tzinfo is None:
        if request.timezone is None:
            raise ValidationError(
                "send_at needs an offset (e.g. 2025-06-21T14:00:00-03:00) or a 'timezone' field",
                field="send_at",
            )
        send_at = localize(send_at, request.timezone)
    kind = MessageKind(request.type)
    key, earlier_key = creation_key(idempotency_key)
    return ScheduleMessageCommand(
        to=request.to,
        body=request.body,
        kind=kind,
        send_at=send_at,
        send_at_text=request.send_at,
        timezone=timezone,
        params=tuple(p if isinstance(p, str) else p.model_dump() for p in request.params),
        template_name=request.templateName,
        language=request.language,
        user_id=request.userId,
        idempotency_key=key,
        request_digest=request_digest("/schedule-message", request),
        earlier_key=earlier_key,
        retry=schedule_retry_policy(request.retry, registry, message_task_type(kind)),
        misfire_grace=_seconds(request.misfire_grace_seconds),
        send_by=_deadline(request.send_by, request.timezone),
        callback_url=checked_callback_url(request.callback_url, callback_refusal),
        header=request.header.model_dump(exclude_none=True) if request.header else None,
        buttons=tuple(button.model_dump() for button in request.buttons),
        actor=actor,
    )


def create_app(services: ApiServices) -> FastAPI:
    """Build the API over ``services``."""
    app = FastAPI(
        title="cronjob",
        version=cronjob.__version__,
        description=(
            "Schedules time-based work (WhatsApp messages first) and runs each due job once. "
            "Every endpoint needs `Authorization: Bearer <token>` except the probes (`/healthcheck`, "
            "`/livez`, `/readyz`), this description, the dashboard's page (`/dashboard`) and "
            "`/v1/whatsapp/webhook` (signed by Meta). "
            "A read-only token (`CRONJOB_API_READ_TOKENS`) may use every `GET` (and `HEAD`) behind the token: "
            "lists, schedules, events, upcoming runs, stats, task types, routines, rule previews and "
            "`/metrics`; any other method is a 403 for it, nothing done. "
            "Errors are `application/problem+json` (RFC 9457) with an `errors` list naming fields (the "
            "first 100; when there were more, `errors_total` counts them all). A process already serving "
            "`CRONJOB_MAX_REQUESTS_IN_FLIGHT` requests answers any other request but the probes and `/metrics` "
            "at once with a 503 and `Retry-After`, having done nothing."
        ),
    )
    install_problem_handlers(app)
    app.add_middleware(BodyTimeLimit, seconds=services.body_timeout_seconds, waits=services.body_waits)
    app.add_middleware(BodySizeLimit, max_bytes=services.max_body_bytes,
                       larger={BATCH_PATH: services.max_batch_body_bytes})
    if services.metrics is not None:
        # Outside the body limit, so that its 413s are counted; inside HeadAsGet, whose HEAD is
        # routed as a GET in a scope of its own.
        app.add_middleware(RequestMetrics, metrics=services.metrics)
    if services.max_requests_in_flight:
        # Outside everything that reads a request (its token, its body) or measures it: a refusal
        # costs the least, and is counted by the metric of its own.
        told = services.metrics or NullMetrics()
        app.add_middleware(InFlightLimit, max_requests=services.max_requests_in_flight,
                           refused=lambda: told.request_refused(IN_FLIGHT_LIMIT))
    # Outside all but the request id (which its answer carries): a request cut by the stop is
    # answered whatever it was doing.
    app.add_middleware(CutRequestAnswer)
    app.add_middleware(RequestId)
    app.add_middleware(HeadAsGet)
    auth = bearer_tokens(services.tokens, services.read_tokens)
    scheduling = services.scheduling
    #: The task types a request may name (``type``): those the service schedules and its own jobs.
    known_types = frozenset({*scheduling.task_types, *services.internal_task_types})
    registry = services.task_types or TaskRegistry([])
    if not registry.names():
        raise ValueError("the API needs at least one task type")
    CreateScheduleRequest = create_request_model(registry.task_union())  # noqa: N806 - a class

    def create_command(request: CreateScheduleBase, idempotency_key: str | None,
                       earlier_key: str | None, actor: Actor) -> CreateScheduleCommand:
        """The command of a ``POST /v1/schedules`` body (or of an item of a batch, whose own
        ``idempotency_key`` is not part of the request it identifies); ``earlier_key``: see
        :func:`creation_key`; ``actor``: who made the request (:func:`request_actor`)."""
        task: Any = request.task  # type: ignore[attr-defined]
        timezone = request.timezone or services.default_timezone  # checked by the scheduling service
        return CreateScheduleCommand(
            task_type=task.type,
            payload=task.model_dump(mode="json", exclude={"type"}),
            schedule=request.schedule,
            timezone=timezone,
            user_id=request.userId,
            idempotency_key=idempotency_key,
            request_digest=request_digest("/v1/schedules", request, exclude={BATCH_KEY_FIELD}),
            earlier_key=earlier_key,
            retry=schedule_retry_policy(request.retry, registry, task.type),
            misfire_grace=_seconds(request.misfire_grace_seconds),
            coalesce=request.coalesce,
            send_by=_deadline(request.send_by, timezone),  # a wall time: in the rule's zone
            callback_url=checked_callback_url(request.callback_url, services.callback_refusal),
            pause_after_failures=request.pause_after_failures,
            labels=request.labels or {},
            run_timeout=_seconds(request.run_timeout_seconds),
            actor=actor,
        )
    RescheduleRequest = reschedule_request_model(registry.task_union())  # noqa: N806 - a class

    app.include_router(probe_router(services.health, services.render_metrics, auth))

    health = services.health

    async def store_initialised() -> None:
        if not health.initialized:  # start-up: the store is unreachable or its indexes are being made
            raise StoreNotReady("the service is starting: its schedule store is being set up; try again shortly")

    # The token first: a request without one learns nothing, not even which parameters exist.
    protected = APIRouter(dependencies=[Depends(auth), Depends(refuse_unknown_query_parameters),
                                        Depends(store_initialised)],
                          responses=problem_responses(400, 401, 422, 503))

    @protected.post("/schedule-message", status_code=201, response_model=ScheduleView, tags=["messages"],
                    dependencies=[Depends(json_content_type)],
                    responses={201: _CREATED, 200: {"model": ScheduleView, "description": "Replay of an Idempotency-Key.",
                                                    "headers": _LOCATION},
                               **problem_responses(408, 413, 415)})
    async def schedule_message(
        request: ScheduleMessageRequest,
        response: Response,
        actor: RequestActor,
        idempotency_key: CreationKey = None,
    ) -> ScheduleView:
        """Schedule one WhatsApp message (template or text) for `send_at`.

        The body's `{{1}}`.. placeholders must match `params` exactly. With an `Idempotency-Key`
        header, repeating the request returns the schedule created first (200) instead of a new one;
        the key with a different request is refused (422).
        """
        outcome = await scheduling.schedule_message(
            _command(request, services.default_timezone, idempotency_key, registry, services.callback_refusal, actor))
        if not outcome.created:
            response.status_code = 200
        response.headers["Location"] = f"/v1/schedules/{outcome.schedule.id}"
        return ScheduleView.of(outcome.schedule)

    @protected.post("/v1/schedules", status_code=201, response_model=ScheduleView, tags=["schedules"],
                    dependencies=[Depends(json_content_type)],
                    responses={201: _CREATED, 200: {"model": ScheduleView, "description": "Replay of an Idempotency-Key.",
                                                    "headers": _LOCATION},
                               **problem_responses(408, 413, 415)})
    async def create_schedule(
        request: CreateScheduleRequest,
        response: Response,
        actor: RequestActor,
        idempotency_key: CreationKey = None,
    ) -> ScheduleView:
        """Schedule a task, once or on a recurring rule (`schedule`), in an IANA `timezone`.

        Recurring occurrences are computed from the scheduled time, not the run time; each runs once.
        With an `Idempotency-Key` header, repeating the request returns the schedule created first
        (200); the key with a different request (other `labels` included) is refused (422).
        `labels` are your own `key: value` pairs to find it by (`GET /v1/schedules?label=key=value`)
        and act on it (`POST /v1/schedules:cancel`); its status webhooks carry them.
        """
        outcome = await scheduling.create(create_command(request, *creation_key(idempotency_key), actor))
        if not outcome.created:
            response.status_code = 200
        response.headers["Location"] = f"/v1/schedules/{outcome.schedule.id}"
        return ScheduleView.of(outcome.schedule)

    def _type_view(task: TaskType) -> dict[str, Any]:
        retry = task.default_retry
        return {"type": task.name, "version": task.version, "description": task.description,
                "default_retry": RetryView.of(retry),
                "schema_url": f"/v1/task-types/{task.name}"}

    @protected.get("/v1/task-types", response_model=list[TaskTypeView], tags=["task types"])
    async def task_types() -> list[dict[str, Any]]:
        """The task types this deployment runs, with their payload schema version and retry defaults."""
        return [_type_view(t) for t in registry]

    @protected.get("/v1/task-types/{task_type}", response_model=TaskTypeDetail, response_model_by_alias=True,
                   tags=["task types"], responses=problem_responses(404))
    async def task_type(task_type: Annotated[str, Path(description="The task type's name, as `GET /v1/task-types` "
                                                                   "lists it: `whatsapp.template`.")]) -> dict[str, Any]:
        """One task type with the JSON Schema of its payload."""
        found = registry.get(task_type)
        if found is None:
            raise HTTPException(404, f"unknown task type {task_type!r}; known: {', '.join(registry.names())}")
        return {**_type_view(found), "schema": found.payload_model.model_json_schema()}

    @protected.get("/v1/schedules/{schedule_id}", response_model=ScheduleView, tags=["schedules"],
                   responses=problem_responses(404))
    async def get_schedule(schedule_id: ScheduleId) -> ScheduleView:
        """One schedule with its status, attempts and result."""
        return ScheduleView.of(await scheduling.get(schedule_id))

    @protected.get("/v1/schedules", response_model=ScheduleList, tags=["schedules"])
    async def list_schedules(
        status: Annotated[ScheduleStatus | None, Query(description="Only the schedules in this status.")] = None,
        task_type: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None,
                             Query(alias="type", max_length=20,
                                   description="Only these task types (repeat the parameter for several).")] = None,
        user_id: Annotated[str | None, Query(alias="userId", max_length=256,
                                             description="Only the schedules made with this `userId` "
                                                         "(exactly, case and all; empty: those made with "
                                                         "an empty one).")] = None,
        label: Annotated[list[Annotated[str, StringConstraints(max_length=_SELECTOR_LENGTH)]] | None,
                         Query(max_length=MAX_LABELS,
                               description="Only the schedules carrying this label: `key=value` (exactly; the value "
                                           "may be empty, `kind=`). Repeat it for several: each must match.")] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="The most schedules in a page (1 to 500).")] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000,
                                     description="Skip this many schedules (paging by position; not with "
                                                 "`cursor`, which pages faster and steadier).")] = 0,
        cursor: Annotated[str | None, Query(
            min_length=1, max_length=CURSOR_LENGTH, pattern=CURSOR_PATTERN,
            description="The page after the one that answered with this `next_cursor` (opaque: pass it as it "
                        "came), with the same filters: the schedules that follow that page's last one in the "
                        "list's order. Schedules created or changed meanwhile do not shift the pages (soonest first, "
                        "one whose due time moved past the cursor is listed again, one that moved before it "
                        "is not: page newest first to list each once). A cursor "
                        "is bound to the order it was made in: one from a list with a due-time window "
                        "(`due_after`/`due_before`) pages only such a list, one without, only a list "
                        "without. Not with `offset`.")] = None,
        due_after: Annotated[str | None, _instant_query(
            "Only the live schedules due at or after this instant (`next_run_at >= due_after`), "
            "soonest first.", "2026-11-28T14:00:00-03:00")] = None,
        due_before: Annotated[str | None, _instant_query(
            "Only the live schedules due before this instant (`next_run_at < due_before`: the window "
            "is half-open), soonest first; later than `due_after`.", "2026-11-28T15:00:00-03:00")] = None,
        updated_after: Annotated[str | None, _instant_query(
            "Only the schedules last changed at or after this instant (`updated_at >= updated_after`; "
            "one that ended: when it ended, or last got a delivery status), in any status.",
            "2026-11-28T14:00:00-03:00")] = None,
        updated_before: Annotated[str | None, _instant_query(
            "Only the schedules last changed before this instant (`updated_at < updated_before`: the "
            "window is half-open); later than `updated_after`.", "2026-11-28T15:00:00-03:00")] = None,
    ) -> ScheduleList:
        """Schedules, newest first, optionally of one status, of some task types, of one user and
        carrying some labels (`label=order=123&label=kind=reminder`: all of them).

        With `due_after` and/or `due_before`, only the schedules due in that window
        (`due_after <= next_run_at < due_before`; either side may be left open), soonest
        `next_run_at` first (ties by id) instead of newest first. Only live schedules have a due
        time: `scheduled`, `running` (the occurrence it runs) and `paused` (the time it keeps); a
        `status` combines with the window, so one that has ended (`succeeded`, ...) lists none.
        With `updated_after` and/or `updated_before`, only the schedules last changed in that
        window (`updated_after <= updated_at < updated_before`; either side may be left open), in
        the order the list has without it: `status=dead&updated_after=...&updated_before=...`
        lists the dead letters of an outage. `has_more` says whether more schedules match after
        this page.

        Paging: `next_cursor` (while `has_more`) asks for the next page as `cursor=...` with the
        same filters. Page by cursor rather than `offset`: a page after a cursor is found
        through an index from that position, costing the same however far down it is, and a
        schedule created or changed meanwhile shifts no page. Newest first, a new schedule comes
        before the cursor and none is listed twice or skipped (`created_at` never changes): page
        newest first to export each schedule once. Soonest first, a schedule is listed at the due
        time it has when its page is read, and that time moves (a recurring one that runs goes on
        to its next occurrence, a failed run to its retry, a move or run now to its new time):
        one listed already that moved past the cursor meanwhile is listed again, one not listed
        yet that moved before it is not, and a window without `due_before` over recurring
        schedules that run sooner than it is paged through may not end. `offset` counts from the
        start of the list at each request.

        Without `type`, the service's own jobs (`webhook.delivery`, one per event and subscriber;
        `whatsapp.status`, a provider status parked until its message is recorded;
        `cronjob.retention`, the schedule that deletes those two once they ended more than
        `CRONJOB_INTERNAL_RETENTION_HOURS` ago) are left out; `type=webhook.delivery` lists them.
        An unknown type is refused (422), as a parameter of one value given twice is, a `label`
        that is not `key=value` or names a key twice, an instant without an offset, a `due_before` not later than `due_after`,
        an `updated_before` not later than `updated_after`, a `cursor` this API did not give or
        made for the other order (with a due-time window, or without one), and a `cursor` with
        an `offset` other than 0.
        """
        check_task_types(task_type, known_types)
        found = await scheduling.page(status=status, task_types=task_type or None,
                                      exclude_types=() if task_type else services.internal_task_types,
                                      user_id=user_id, labels=parse_selector(label or ()), limit=limit,
                                      offset=offset, due_after=query_instant(due_after, "due_after"),
                                      due_before=query_instant(due_before, "due_before"),
                                      updated_after=query_instant(updated_after, "updated_after"),
                                      updated_before=query_instant(updated_before, "updated_before"),
                                      after=None if cursor is None else decode_cursor(cursor))
        return ScheduleList(items=[ScheduleView.of(s) for s in found.items], limit=limit, offset=offset,
                            has_more=found.has_more,
                            next_cursor=None if found.next_cursor is None else encode_cursor(found.next_cursor))

    counts = services.counts or CountsCache(scheduling.counts, 2.0)

    @protected.get("/v1/stats", response_model=StatsView, tags=["schedules"])
    async def stats() -> StatsView:
        """How many schedules are in each status, overall and per task type (the dashboard's counts).

        Each API process answers from its last read of the counts (`as_of` says when) and reads
        them again in the background, at most every 2 seconds, less often the longer a read
        takes (on MongoDB it grows with the store). Only a first read, or the one after a read
        that failed, is waited for: 503 with `Retry-After` when it gives no answer within 2 s. A
        read that ran into its time limit (60 s) is made again no sooner than 10 times its
        duration after it, 5 minutes at most (503 at once meanwhile).
        """
        found, as_of = await counts.get()
        return StatsView.of(found, services.internal_task_types, as_of)

    @protected.delete("/v1/schedules/{schedule_id}", response_model=ScheduleView, tags=["schedules"],
                      responses=problem_responses(404, 409))
    async def cancel_schedule(schedule_id: ScheduleId, actor: RequestActor) -> ScheduleView:
        """Cancel a schedule that waits, or a recurring one even while it runs (that run goes on
        and, once it ends, its attempt, `started` event and outcome events are added to the
        cancelled schedule, the outcome marked `data.after_cancel`; no later occurrence starts;
        the `cancelled` event's `data.while_running` names the run's attempt); 409 for a one-off that
        started or ended, and for the service's retention of its own jobs (`cronjob.retention`,
        switched off with `CRONJOB_INTERNAL_RETENTION_HOURS=0`)."""
        return ScheduleView.of(await scheduling.cancel(schedule_id, actor))

    @protected.patch("/v1/schedules/{schedule_id}", response_model=ScheduleView, tags=["schedules"],
                     dependencies=[Depends(json_content_type)],
                     responses=problem_responses(404, 408, 409, 413, 415))
    async def reschedule(schedule_id: ScheduleId, request: RescheduleRequest,  # type: ignore[valid-type]
                         actor: RequestActor) -> ScheduleView:
        """Change a schedule that waits (`scheduled`, or `paused`, which it stays): move it to
        another time (a one-off to `send_at`, or a schedule to another rule, `schedule`), give it
        another `task` (of its own type: what its next run sends), other `labels` (the whole map;
        `{}` clears them), another `run_timeout_seconds` (`null`: none of its own, so that its
        routine's or the service's applies), or several at once; what is left out stays as it is,
        and any other field sent as `null` is refused (422 naming it). 409 once it runs or ended,
        for a one-off waiting
        to retry (cancel and create instead), for a task change alone of one waiting to retry
        (its retry goes out under the key of the failed attempt), for the service's own jobs, and
        when it kept changing under other writes (try again).

        A new time is a new occurrence (a fresh attempt count and delivery key); the schedule's
        `scheduled` event says where it moved from (`data.rescheduled_from`) and whether its task
        changed (`data.task_changed`) and its labels (`data.labels_changed`). Its task type stays:
        to run another, cancel it and create another. Labels alone change nothing about when or
        what it runs (also while it waits to retry); the same labels, task or time (the same rule
        in the same zone, due when it is due: a retry of the request) again return it as it is.
        """
        send_at = None
        if request.send_at is not None:
            try:
                send_at = parse_send_at(request.send_at)
            except ValueError as exc:
                raise ValidationError(str(exc), field="send_at") from exc
        task = request.task
        return ScheduleView.of(await scheduling.reschedule(RescheduleCommand(
            schedule_id=schedule_id, send_at=send_at, send_at_text=request.send_at,
            schedule=request.schedule, timezone=request.timezone,
            task_type=task.type if task is not None else None,
            payload=task.model_dump(mode="json", exclude={"type"}) if task is not None else None,
            labels=request.labels, run_timeout=request.run_timeout_change(), actor=actor)))

    @protected.post("/v1/schedules/{schedule_id}/retry", response_model=ScheduleView, tags=["schedules"],
                    responses=problem_responses(404, 409))
    async def retry_schedule(schedule_id: ScheduleId, actor: RequestActor) -> ScheduleView:
        """Re-run a `dead`, `unknown` or `missed` schedule now, with a fresh attempt count (409 otherwise)."""
        return ScheduleView.of(await scheduling.retry(schedule_id, actor))

    @protected.post("/v1/schedules/{schedule_id}/run", response_model=ScheduleView, tags=["schedules"],
                    responses=problem_responses(404, 409))
    async def run_schedule_now(
        schedule_id: ScheduleId,
        actor: RequestActor,
        idempotency_key: Annotated[str | None, Header(
            alias="Idempotency-Key", min_length=1, max_length=256,
            description="Makes a repeat of this run-now (a client's retry, a second click) return the schedule as "
                        "it is instead of running it again: the key of its last run-now.")] = None,
    ) -> ScheduleView:
        """Run a schedule that waits (`scheduled`) now instead of at its next run. A recurring one
        runs once more, now, and then on as its rule says (the occurrence it waited for stays
        next); a one-off is sent now instead of at its time; one waiting to retry retries now
        (same idempotency key). The `scheduled` event says when it was due (`data.run_now_from`).
        One due already is returned as it is, unless it is too late to run (beyond its misfire
        grace, the scheduler having been down): it is due now then, and runs. 409 for one that is
        not `scheduled` (paused: resume it first), for a one-off past its `send_by` and for the
        service's own jobs. With an `Idempotency-Key` header, a repeat of
        the request (the key of this schedule's last run-now) returns the schedule as it is,
        whatever happened since (its run ended, a one-off succeeded): it runs once, not twice."""
        return ScheduleView.of(await scheduling.run_now(schedule_id, idempotency_key, actor))

    @protected.post("/v1/schedules/{schedule_id}/pause", response_model=ScheduleView, tags=["schedules"],
                    responses=problem_responses(404, 409))
    async def pause_schedule(schedule_id: ScheduleId, actor: RequestActor) -> ScheduleView:
        """Hold a schedule that waits (`scheduled`): no replica runs it until it is resumed. It
        keeps its time (`next_run_at`) and can still be moved or cancelled. Pausing a paused one
        returns it as it is; 409 for one that runs (pause a recurring one once its run ended) or
        ended, and for the service's own jobs."""
        return ScheduleView.of(await scheduling.pause(schedule_id, actor))

    @protected.post("/v1/schedules/{schedule_id}/resume", response_model=ScheduleView, tags=["schedules"],
                    responses=problem_responses(404, 409))
    async def resume_schedule(schedule_id: ScheduleId, actor: RequestActor) -> ScheduleView:
        """Let a paused schedule run again. A one-off keeps its time: one that fell due while paused
        runs at once if its misfire grace and `send_by` still allow, else it is `missed`. A
        recurring schedule does not make up for the pause: what fell due meanwhile is skipped, and
        it runs next at its first occurrence after now (the `resumed` event's `data.skipped_from`).
        One that is not paused but waits or runs is returned as it is; 409 for one that ended."""
        return ScheduleView.of(await scheduling.resume(schedule_id, actor))

    @protected.get("/v1/schedules/{schedule_id}/events", response_model=EventList, tags=["schedules"],
                   responses=problem_responses(404))
    async def schedule_events(schedule_id: ScheduleId) -> EventList:
        """The schedule's event log (scheduled, started, succeeded, retrying, failed, dead, ...), oldest first.

        An event a request caused names the token that made it by its fingerprint (`data.by`:
        `token:` and the first 12 hex digits of the token's SHA-256, `printf %s "$TOKEN" | sha256sum
        | cut -c1-12`) and the request (`data.request_id`, its `X-Request-ID`); a bulk change gives
        every schedule it changes the same ones. The scheduler's own events name no one."""
        schedule = await scheduling.get(schedule_id)
        deliveries = await services.webhook_deliveries(schedule) if services.webhook_deliveries else {}
        return EventList(schedule_id=schedule.id,
                         items=[EventView.of(e, deliveries.get(e.id, ())) for e in schedule.events])

    protected.include_router(routines_router(services.routines, registry))
    protected.include_router(upcoming_router(scheduling, services.default_timezone))
    protected.include_router(bulk_cancel_router(scheduling, known_types, json_content_type))
    protected.include_router(bulk_pause_router(scheduling, known_types, json_content_type))
    protected.include_router(bulk_retry_router(scheduling, known_types, json_content_type))
    protected.include_router(batch_create_router(scheduling, batch_request_model(CreateScheduleRequest),
                                                 create_command, json_content_type))
    app.include_router(protected)
    extend_openapi(app, document_read_only_refusal)
    extend_openapi(app, keep_examples([RoutineView, RoutineDetail]))  # their timeout_seconds: null
    app.include_router(dashboard_router())
    if services.whatsapp_app_secret and services.whatsapp_verify_token and services.delivery_status:
        # Authenticated by Meta's signature, not the bearer token (Meta cannot send one).
        app.include_router(whatsapp_webhook_router(
            app_secret=services.whatsapp_app_secret, verify_token=services.whatsapp_verify_token,
            delivery_status=services.delivery_status))
        extend_openapi(app, document_notification)
    elif bool(services.whatsapp_app_secret) != bool(services.whatsapp_verify_token):
        logging.getLogger("cronjob").warning(
            "only one of CRONJOB_WHATSAPP_APP_SECRET and CRONJOB_WHATSAPP_VERIFY_TOKEN is set: WhatsApp's "
            "status webhook (/v1/whatsapp/webhook) needs both and is not served")
    return app

