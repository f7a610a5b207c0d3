"""Request and response bodies of the HTTP API (Pydantic 2). Validation of shape lives here;
rules that need the domain (templates, time zones, grace) are the services' and come back as 422."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, create_model, field_validator

from cronjob.domain.labels import KEY_PATTERN, MAX_KEY_LENGTH, MAX_LABELS, MAX_VALUE_LENGTH, VALUE_PATTERN
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import (
    MAX_RUN_TIMEOUT, NO_OWN_LIMIT, Attempt, RunTimeoutChange, Schedule, ScheduleEvent, ScheduleStatus,
)
from cronjob.domain.trigger_parser import iso_datetime, not_a_date_time
from cronjob.domain.zones import load_zone
from cronjob.services.scheduling import MAX_RULE_LENGTH

from cronjob_adapters.not_blank import NotBlank
from cronjob_adapters.tasks.ssrf import HttpUrl
from cronjob_adapters.tasks.whatsapp import (
    Buttons,
    CurrencyParam,
    DateTimeParam,
    Header,
    Language,
    MessageBody,
    PhoneNumber,
    TemplateName,
    TemplateParams,
)
from cronjob_adapters.web.instants import Instant, shown_delivery, shown_event_data, wall_time_text
from cronjob_adapters.web.masking import masked_payload, masked_url
from cronjob_adapters.web.not_null import NotNull

CallbackUrl = Annotated[HttpUrl | None, Field(
    default=None, description="Receives this schedule's signed status webhooks (see the README). A host that "
                              "is a loopback, private, link-local or cloud metadata address, or a metadata host "
                              "name, that the service's allow-list (CRONJOB_HTTP_ALLOW_HOSTS) does not open is a "
                              "422: every webhook to it would be refused. A host name is checked when each "
                              "webhook is sent (what it resolves to may change).")]

LabelKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(strict=True, max_length=MAX_VALUE_LENGTH, pattern=VALUE_PATTERN)]
#: A schedule's labels as requests give them (the grammar of :mod:`cronjob.domain.labels`).
Labels = Annotated[dict[LabelKey, LabelValue], Field(
    max_length=MAX_LABELS,
    description=f"Your own `key: value` pairs to find the schedule by (`{{\"order\": \"123\"}}`): at most "
                f"{MAX_LABELS}; a key has 1-{MAX_KEY_LENGTH} characters, an ASCII letter or digit first, then "
                f"ASCII letters, digits, `.`, `_`, `-` or `/`; a value is a string of 0-{MAX_VALUE_LENGTH} "
                "characters without control characters.",
    examples=[{"order": "123", "kind": "reminder"}],
    # The key pattern, which pydantic puts in patternProperties only (where it picks the values'
    # schema, and lets other keys through), also as what every key must match.
    json_schema_extra={"propertyNames": {"minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN}})]

#: A ``userId`` as requests give it: 1-256 characters, not only whitespace (selections match it exactly).
UserId = Annotated[str, StringConstraints(min_length=1, max_length=256), NotBlank()]


def read_deadline(value: object) -> datetime | None:
    """A ``send_by`` read as a ``send_at`` is: ISO-8601 text (naive without an offset), not a
    number, nor a string of digits, that pydantic's own reading takes for Unix time."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        raise ValueError("send_by is an ISO-8601 date-time string (2025-06-21T18:00:00-03:00)"
                         + (", not a number" if number else ""))
    return _iso_text("send_by", value)


def _iso_text(field: str, text: str) -> datetime:
    """``text`` as a datetime (naive when it had no offset); ValueError naming ``field`` else."""
    try:
        return iso_datetime(text)
    except ValueError as error:
        raise ValueError(not_a_date_time(field, text[:64], error)) from None


#: A ``send_by`` as requests give it (its schema: a date-time string, or null).
Deadline = Annotated[datetime | None, BeforeValidator(read_deadline)]


#: How a field's description names a UTC instant, as responses show them (see :data:`Instant`).
UTC_INSTANT = "a UTC instant to the millisecond (`2030-06-21T17:00:00.000Z`)"

#: The ``{schedule_id}`` of a route's path.
ScheduleId = Annotated[str, Path(description="The schedule's `id`, as its creation answered it (an unknown one: 404).")]

class RetryRequest(BaseModel):
    """Overrides the retry policy of this schedule's task type; what is left out keeps the type's
    default (see `GET /v1/task-types`)."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int | None = Field(default=None, strict=True, ge=1, le=50, description="Attempts in all, the first included.")
    initial_delay_seconds: float | None = Field(
        default=None, strict=True, allow_inf_nan=False, ge=0, le=86_400,
        description="The delay before the first retry (the next ones double it), with full jitter; at most the "
                    "task type's max_age_seconds (no retry starts later than that after the first attempt) and, "
                    "without max_delay_seconds, at most the type's max_delay_seconds.")
    max_delay_seconds: float | None = Field(
        default=None, strict=True, allow_inf_nan=False, ge=0, le=7 * 86_400,
        description="The cap of the delays; at least initial_delay_seconds (the type's, when left out).")


class RetryView(BaseModel):
    """A retry policy: attempts in all, and the delays between them (exponential, with full
    jitter, up to the cap); no retry starts later than ``max_age_seconds`` after the first attempt."""

    max_attempts: int = Field(description="Attempts in all, the first included (1: no retry).")
    initial_delay_seconds: float = Field(description="The delay before the first retry, in seconds (each next one "
                                                     "doubles it, with full jitter).")
    max_delay_seconds: float = Field(description="The cap of the delays between attempts, in seconds.")
    max_age_seconds: float = Field(description="No retry starts later than this many seconds after the first "
                                               "attempt.")

    @classmethod
    def of(cls, policy: RetryPolicy) -> RetryView:
        return cls(max_attempts=policy.max_attempts, initial_delay_seconds=policy.initial_delay.total_seconds(),
                   max_delay_seconds=policy.max_delay.total_seconds(), max_age_seconds=policy.max_age.total_seconds())


class ScheduleMessageRequest(BaseModel):
    """The seed's payload, unchanged, plus optional extensions."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{
                "to": "5511999999999",
                "body": "Olá, {{1}}! Seu pedido será entregue em {{2}}.",
                "userId": "abc123",
                "type": "template",
                "templateName": "notificacao_entrega",
                "params": ["Leandro", "2 dias úteis"],
                # The seed's payload, at a time still ahead: "Try it out" in /docs schedules it.
                "send_at": "2030-06-21T14:00:00-03:00",
            }]
        },
    )

    to: PhoneNumber
    body: MessageBody
    type: Literal["template", "text"] = "template"
    templateName: TemplateName | None = None
    params: TemplateParams
    userId: Annotated[UserId | None, Field(
        default=None, description="Your own id of the user the message is for (`POST /v1/schedules:cancel` "
                                  "cancels a user's schedules by it); null or left out: none.")] = None
    send_at: Annotated[str, Field(
        max_length=64,
        description="ISO-8601 date-time with an offset (2025-06-21T14:00:00-03:00), or without one "
                    "when `timezone` is given: a date and a time of day, apart by `T` or a space (a date "
                    "alone is refused, as is `2025-06-21-03:00`, a date with an offset).",
    )]
    timezone: Annotated[str | None, Field(default=None, min_length=1, max_length=64,
                                          description="IANA zone for a send_at without offset.")] = None
    language: Language = None
    retry: RetryRequest | None = None
    misfire_grace_seconds: Annotated[float | None, Field(
        default=None, strict=True, allow_inf_nan=False, ge=0, le=30 * 86_400,
        description="Send late by at most this much (after downtime), else mark `missed`. "
                    "Default CRONJOB_MISFIRE_GRACE_SECONDS.")] = None
    send_by: Annotated[Deadline, Field(
        default=None, description="Hard deadline, ISO-8601 text (with an offset, or a wall time in `timezone`): "
                                  "never sent after it, `missed` instead.")] = None
    callback_url: CallbackUrl = None
    header: Header | None = None
    buttons: Buttons

    def parsed_send_at(self) -> datetime:
        """``send_at`` as a datetime (naive when the text had no offset)."""
        return parse_send_at(self.send_at)


def parse_send_at(text: str) -> datetime:
    """A ``send_at`` text as a datetime (naive when it had no offset); ValueError saying what it is not."""
    return _iso_text("send_at", text)


class RescheduleBase(BaseModel):
    """A change to a schedule that waits: another time (`send_at` for a one-off, or `schedule`, a
    rule, for a one-off, `once @ ...`, or a recurring schedule, of the same kind; not both), another
    `task` (of its own type), other `labels`, another `run_timeout_seconds`, or several of them.
    What is left out stays as it is. A null `run_timeout_seconds` takes the schedule's own run
    time limit away; no other field may be null (a 422 naming it: null would mean nothing there,
    or something else than left out). ``task`` is added per deployment (see
    :func:`reschedule_request_model`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"send_at": "2030-06-21T15:30:00-03:00"},
            {"schedule": "every monday at 10:00", "timezone": "America/Sao_Paulo"},
            {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Boa tarde, {{1}}!",
                      "params": ["Leandro"]}},
            {"labels": {"order": "123", "kind": "reminder"}},
        ]},
    )

    send_at: Annotated[str | None, Field(
        default=None, max_length=64,
        description="A one-off's new time: ISO-8601 with an offset, or without one in `timezone` (else "
                    "in the schedule's own zone). Left out, the time stays; null is refused."),
        NotNull("leave it out to keep the schedule's time")] = None
    schedule: Annotated[str | None, Field(
        default=None, min_length=1, max_length=MAX_RULE_LENGTH,
        description="The new rule, as `POST /v1/schedules` takes it; a recurring schedule stays recurring "
                    "and a one-off a one-off. Left out, the rule stays; null is refused."),
        NotNull("leave it out to keep the schedule's rule")] = None
    timezone: Annotated[str | None, Field(
        default=None, min_length=1, max_length=64,
        description="IANA zone of the new time or rule (it becomes the schedule's zone). Left out: the "
                    "schedule's own zone; null is refused (`POST /v1/schedules` reads it as the service's "
                    "default zone, which this is not)."),
        NotNull("leave it out to read the new time in the schedule's own zone")] = None
    labels: Annotated[Labels | None, Field(
        default=None,
        description="Its new labels: the whole map, replacing the old one (`{}` clears them); alone or with "
                    "another change. Left out, they stay; null is refused (it neither keeps nor clears them)."),
        NotNull("leave it out to keep the labels; {} clears them")] = None
    run_timeout_seconds: Annotated[float | None, Field(
        default=None, strict=True, allow_inf_nan=False, gt=0, le=MAX_RUN_TIMEOUT.total_seconds(),
        description="Its new run time limit (as `POST /v1/schedules` takes it); alone or with another change. "
                    "Left out, it stays; null: no limit of its own any more, so that its routine's own limit "
                    "applies for a `python` task, else the service's (`CRONJOB_RUN_TIMEOUT_SECONDS`).")] = None

    def run_timeout_change(self) -> RunTimeoutChange:
        """What ``run_timeout_seconds`` asks: a new limit, none of its own (sent as null), or
        None (left out: it stays)."""
        if self.run_timeout_seconds is None:
            return NO_OWN_LIMIT if "run_timeout_seconds" in self.model_fields_set else None
        return timedelta(seconds=self.run_timeout_seconds)


class CreateScheduleBase(BaseModel):
    """A task and when to run it: one-off or recurring. ``task`` is added per deployment: a
    union of the registered task types, discriminated by ``task.type`` (see :func:`create_request_model`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Bom dia, {{1}}!",
                     "params": ["Leandro"]},
            "schedule": "every monday at 09:00",
            "timezone": "America/Sao_Paulo",
            "labels": {"order": "123", "kind": "reminder"},
        }]},
    )

    schedule: Annotated[str, Field(
        min_length=1, max_length=MAX_RULE_LENGTH,
        description="When to run: `once @ 2025-06-21 14:00`, `every 10 minutes`, `every 2 weeks`, `daily at 14:00`, "
                    "`weekly on mon-fri at 09:00`, `monthly on 1,15,last at 09:00`, "
                    "`every 15 minutes between 08:00 and 18:00 on mon-fri` (a window of the day), "
                    "`cron 0 9 * * 1-5`, ...; Rocketry's time conditions run as the rule that means them "
                    "(`daily between 10:00 and 12:00` as `daily at 10:00`, `every 15 minutes & time of day between "
                    "08:00 and 18:00` as a window), and the response's `schedule` shows that rule; "
                    "a recurring rule may start and end, and skip dates of its zone (holidays): "
                    "`daily at 14:00 from 2027-01-04 until 2027-12-31`, "
                    "`weekly on mon-fri at 09:00 except 2026-12-25,2027-01-01` (see the README).")]
    timezone: Annotated[str | None, Field(default=None, min_length=1, max_length=64,
                                          description="IANA zone of the rule's wall times; null or left out: "
                                                      "the service's default (CRONJOB_DEFAULT_TIMEZONE).")] = None
    userId: Annotated[UserId | None, Field(
        default=None, description="Your own id of the user the schedule is for (`POST /v1/schedules:cancel` "
                                  "cancels a user's schedules by it); null or left out: none.")] = None
    retry: Annotated[RetryRequest | None, Field(
        default=None, description="This schedule's own retry policy; null or left out: its task type's default "
                                  "(`GET /v1/task-types/{type}`).")] = None
    misfire_grace_seconds: Annotated[float | None, Field(
        default=None, strict=True, allow_inf_nan=False, ge=0, le=30 * 86_400,
        description="Run an occurrence late by at most this much, else it is missed (0: however late). Null "
                    "or left out: a one-off's is CRONJOB_MISFIRE_GRACE_SECONDS, a recurring one has none.")] = None
    coalesce: bool = Field(default=True, strict=True, description="Recurring: one run for all occurrences missed while down, as the latest of them; false: each one still within the misfire grace runs.")
    send_by: Annotated[Deadline, Field(
        default=None, description="One-off: hard deadline, ISO-8601 text (with an offset, or a wall time in "
                                  "`timezone`); null or left out: none.")] = None
    callback_url: CallbackUrl = None
    pause_after_failures: Annotated[int | None, Field(
        default=None, strict=True, ge=1, le=10_000,
        description="Recurring: pause the schedule once this many occurrences in a row ended `dead` "
                    "(retries exhausted, or a permanent error); resume it when the cause is fixed. "
                    "Null or left out: never.")] = None
    run_timeout_seconds: Annotated[float | None, Field(
        default=None, strict=True, allow_inf_nan=False, gt=0, le=MAX_RUN_TIMEOUT.total_seconds(),
        description="How long one run may take: past it the run is stopped and fails with `run_timeout`, "
                    "retried under the retry policy. Null or left out: its routine's own limit for a `python` "
                    "task, else the service's (`CRONJOB_RUN_TIMEOUT_SECONDS`, an hour).")] = None
    # null is accepted as none (as for the other optional fields) and read as {}: an empty map, null
    # and no labels at all are the same request, for its Idempotency-Key.
    labels: Annotated[Labels | None, Field(default_factory=dict,
                                           description="Its labels (see the map's schema); `{}`, null or left "
                                                       "out: none.")]

    @field_validator("labels")
    @classmethod
    def _null_is_no_labels(cls, labels: dict[str, str] | None) -> dict[str, str]:
        return {} if labels is None else labels


def reschedule_request_model(task_union: Any) -> type[RescheduleBase]:
    """``RescheduleRequest``: the base plus an optional ``task``, one of the registered task types."""
    return create_model("RescheduleRequest", __base__=RescheduleBase,  # type: ignore[call-overload,no-any-return]
                        task=(Annotated[task_union | None, NotNull("leave it out to keep the schedule's task")],
                              Field(default=None, description="Another task, of the schedule's own type: what its "
                                                              "next run sends (the whole task, as `POST /v1/schedules` "
                                                              "takes it). Left out, the task stays; null is refused.")))


def create_request_model(task_union: Any) -> type[CreateScheduleBase]:
    """``CreateScheduleRequest``: the base plus ``task``, one of the registered task types."""
    return create_model("CreateScheduleRequest", __base__=CreateScheduleBase,  # type: ignore[call-overload,no-any-return]
                        task=(task_union, Field(description="What to run; `type` picks the task type.")))


class TaskTypeView(BaseModel):
    """A task type a schedule's `task` can have."""

    type: str = Field(description="Its name, as a task's `type` gives it: `whatsapp.template`, `http`, ...")
    version: int = Field(description="The version of its payload's schema.")
    description: str = Field(description="What a task of this type does.")
    default_retry: RetryView = Field(description="The retry policy of its schedules that have none of their own.")
    schema_url: str = Field(description="Where the JSON Schema of its payload is: `/v1/task-types/{type}`.")


class TaskTypeDetail(TaskTypeView):
    """A task type, with the JSON Schema of its payload."""

    payload_schema: dict[str, Any] = Field(alias="schema", description="JSON Schema of the payload.")

    model_config = ConfigDict(populate_by_name=True)


class MisfireView(BaseModel):
    """What the schedule does with an occurrence found late (after downtime)."""

    grace_seconds: float | None = Field(description="Run it late by at most this many seconds, else it is "
                                                    "`missed` (0: however late); null: no limit.")
    coalesce: bool = Field(description="Recurring: one run for all occurrences missed while down, as the latest "
                                       "of them; false: each one still within the grace runs.")


class ErrorView(BaseModel):
    """An error a run ended with, as the task type or its provider reported it."""

    code: str = Field(description="A short machine-readable code: the provider's error code, `run_timeout`, "
                                  "`http_503`, ...")
    message: str = Field(description="What went wrong, for a person.")
    retryable: bool = Field(default=False, description="Whether a retry may succeed (false: a permanent error, "
                                                        "not retried).")
    details: dict[str, str] = Field(default_factory=dict, description="More about it, as text (empty when "
                                                                      "there is nothing more).")


class LeaseView(BaseModel):
    """Who runs it now: the replica (``CRONJOB_INSTANCE_ID``) that claimed it, when, until when
    its lease holds (renewed while the run lasts), and the replica it took over from, if any."""

    owner: str = Field(description="The replica that runs it (its `CRONJOB_INSTANCE_ID`).")
    claimed_at: Instant = Field(description=f"When that replica claimed it: {UTC_INSTANT}.")
    until: Instant = Field(description=f"Until when its lease holds (renewed while the run lasts): {UTC_INSTANT}.")
    taken_over_from: str | None = Field(default=None, description="The replica whose lapsed lease it took over; "
                                                                  "null: none.")


class AttemptView(BaseModel):
    """One finished run of an occurrence (the newest 100 are kept)."""

    attempt_id: str = Field(description="The run's id (its events carry it as `attempt_id`).")
    number: int = Field(description="Which attempt of its occurrence it was, from 1 (retries count on).")
    owner: str = Field(description="The replica that ran it (its `CRONJOB_INSTANCE_ID`).")
    scheduled_for: Instant = Field(description=f"The occurrence it ran: {UTC_INSTANT}.")
    started_at: Instant = Field(description=f"When the run started: {UTC_INSTANT}.")
    finished_at: Instant = Field(description=f"When the run ended: {UTC_INSTANT}.")
    outcome: str = Field(description="How it ended: `succeeded`, `failed`, `retrying` (failed, to be retried), "
                                     "`unknown` (the provider may or may not have acted) or `missed`.")
    error: ErrorView | None = Field(default=None, description="Why it failed; null when it succeeded.")
    provider_message_id: str | None = Field(default=None, description="The provider's id of what it sent "
                                                                      "(WhatsApp's `wamid`); null: none.")

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptView:
        error = ErrorView(**asdict(attempt.error)) if attempt.error else None
        return cls(attempt_id=attempt.attempt_id, number=attempt.number, owner=attempt.owner,
                   scheduled_for=attempt.scheduled_for, started_at=attempt.started_at,
                   finished_at=attempt.finished_at, outcome=attempt.outcome, error=error,
                   provider_message_id=attempt.provider_message_id)


def header_text(value: str | None) -> str | None:
    """A header value as the client wrote it: the server reads header bytes as Latin-1, so the
    UTF-8 of ``pedido-ção`` arrives as ``pedido-Ã§Ã£o``, which this decodes (a value whose bytes
    are no UTF-8 is Latin-1 text, as it came). A creation's key is stored so; a run-now's key, and
    creation keys stored by earlier versions, as they arrived: shown through this."""
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


class ScheduleView(BaseModel):
    """A schedule as the API shows it."""

    id: str = Field(description="The schedule's id, as `/v1/schedules/{schedule_id}` takes it.")
    status: ScheduleStatus = Field(description="Where it is in its life.")
    type: str = Field(description="Task type, e.g. whatsapp.template.")
    schedule: str = Field(description="The trigger's canonical expression.")
    timezone: str = Field(description="The IANA zone its rule's and send_at's wall times are read in.")
    send_at: Instant | None = Field(description="When the current occurrence is due, in UTC.")
    send_at_original: str | None = Field(
        description="The send_at text as the client sent it, on creation or in the PATCH that last moved it; "
                    "null for a rule. A run now leaves it as sent: `send_at` then says when it was made due, "
                    "and its `scheduled` event's `data.run_now_from` when it was due before.")
    next_run_at: Instant | None = Field(
        description=f"When it runs next (its occurrence, or a retry's time; kept while paused): {UTC_INSTANT}; "
                    "null once it ended.")
    to: str | None = Field(default=None, description="WhatsApp: the recipient's phone number (E.164 digits, "
                                                     "without `+`); null for other task types.")
    body: str | None = Field(default=None, description="The body as sent by the client, with placeholders.")
    rendered_body: str | None = Field(default=None, description="WhatsApp: the body with its placeholders "
                                                                "filled in; null for other task types.")
    templateName: str | None = Field(default=None, description="WhatsApp template: the template's name; null "
                                                               "otherwise.")
    language: str | None = Field(default=None, description="WhatsApp template: the template's language code "
                                                           "(`pt_BR`); null otherwise.")
    params: list[str | CurrencyParam | DateTimeParam] = Field(
        default_factory=list, description="The values of the body's {{1}}..: texts, and a template's currency "
                                          "and date_time objects.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="The stored task payload (the values of secret-looking headers and "
                                          "query parameters, and of credential keys in a request body or a "
                                          "routine's args, such as password or client_secret, masked as ***).")
    userId: str | None = Field(default=None, description="The `userId` it was created with; null: none.")
    idempotency_key: str | None = Field(default=None, description="The `Idempotency-Key` it was created with; "
                                                                  "null: none.")
    misfire: MisfireView = Field(description="Its misfire policy: what it does with an occurrence found late.")
    retry: RetryView | None = Field(
        default=None, description="This schedule's own retry policy; null: its task type's default "
                                  "(`GET /v1/task-types/{type}`).")
    send_by: Instant | None = Field(default=None, description=f"One-off: its hard deadline, {UTC_INSTANT}: "
                                                              "never run after it (`missed` instead); null: none.")
    created_at: Instant = Field(description=f"When it was created: {UTC_INSTANT}.")
    updated_at: Instant = Field(description=f"When it last changed: {UTC_INSTANT}.")
    attempts: list[AttemptView] = Field(default_factory=list, description="Its finished runs, oldest first "
                                                                          "(the newest 100 are kept).")
    result: dict[str, str] = Field(default_factory=dict, description="What its latest successful run returned, "
                                                                     "as text (a WhatsApp message's `wamid`); "
                                                                     "empty until one succeeds.")
    delivery: dict[str, str] = Field(
        default_factory=dict,
        description="What WhatsApp reported about the latest sent message (status webhooks): `status` "
                    "(sent, delivered, read, failed), `<status>_at` (Meta's time, a UTC instant to the millisecond), "
                    "and `error_code`/`error_message` on failure.")
    last_error: ErrorView | None = Field(default=None, description="The error of its latest failed run; "
                                                                   "null: none.")
    callback_url: str | None = Field(default=None, description="Where its status webhooks go (secret-looking "
                                                               "query values masked as ***); null: none.")
    running: LeaseView | None = Field(
        default=None, description="While it runs: its lease (its attempt and `started` event are "
                                  "written with the outcome; also once cancelled while it ran, the "
                                  "outcome marked `data.after_cancel`).")
    pause_after_failures: int | None = Field(
        default=None, description="Recurring: paused once this many occurrences in a row ended `dead`.")
    failed_in_a_row: int = Field(
        default=0, description="Occurrences in a row that ended `dead` (a success, or a resume, starts "
                               "the count afresh).")
    labels: dict[str, str] = Field(default_factory=dict, description="Your own `key: value` pairs (`?label=key=value` "
                                                                     "finds the schedules with them).")
    run_timeout_seconds: float | None = Field(
        default=None, description="Its own time limit for a run; null: the service's (`CRONJOB_RUN_TIMEOUT_SECONDS`).")

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleView:
        payload = schedule.payload
        message = payload if schedule.task_type.startswith("whatsapp.") else {}
        return cls(
            id=schedule.id,
            status=schedule.status.value,
            type=schedule.task_type,
            schedule=schedule.trigger.expression,
            timezone=schedule.timezone,
            send_at=schedule.occurrence,
            send_at_original=schedule.metadata.get("send_at"),
            next_run_at=schedule.next_run_at,
            to=message.get("to"),
            body=message.get("body"),
            rendered_body=message.get("rendered_body"),
            templateName=message.get("template_name"),
            language=message.get("language"),
            params=list(message.get("params") or []),
            payload=masked_payload(payload, schedule.task_type),
            userId=schedule.user_id,
            idempotency_key=header_text(schedule.idempotency_key),
            misfire=MisfireView(
                grace_seconds=schedule.misfire.grace.total_seconds() if schedule.misfire.grace else None,
                coalesce=schedule.misfire.coalesce),
            retry=RetryView.of(schedule.retry) if schedule.retry is not None else None,
            send_by=schedule.send_by,
            created_at=schedule.created_at,
            updated_at=schedule.updated_at,
            attempts=[AttemptView.of(a) for a in schedule.attempts],
            result=dict(schedule.result),
            delivery=shown_delivery(schedule.delivery),
            last_error=ErrorView(**asdict(schedule.last_error)) if schedule.last_error else None,
            callback_url=masked_url(schedule.callback_url) if schedule.callback_url else None,
            running=LeaseView.model_validate(schedule.lease, from_attributes=True) if schedule.lease else None,
            pause_after_failures=schedule.pause_after_failures,
            failed_in_a_row=schedule.failed_in_a_row,
            labels=dict(schedule.labels),
            run_timeout_seconds=schedule.run_timeout.total_seconds() if schedule.run_timeout else None,
        )


class DeliveryView(BaseModel):
    """One status webhook delivery of an event: to which URL (query left out), the delivery job's
    status (``scheduled``: waiting for an attempt or a retry; ``succeeded``: delivered; ``dead``:
    given up), attempts made and the error code of the latest failed one."""

    model_config = ConfigDict(from_attributes=True)

    url: str = Field(description="Where it is delivered, its query left out.")
    delivery_id: str = Field(description="The delivery job's id.")
    status: ScheduleStatus = Field(description="The delivery job's status.")
    attempts: int = Field(description="Attempts made to deliver it.")
    last_error_code: str | None = Field(default=None, description="The error code of the latest failed attempt; "
                                                                  "null: none failed.")
    next_attempt_at: Instant | None = Field(default=None, description=f"When it is tried next, {UTC_INSTANT}; "
                                                                      "null once it succeeded or was given up.")


class EventView(BaseModel):
    """Something that happened to a schedule (the newest 100 are kept)."""

    id: str = Field(description="The event's id, unique (webhook receivers deduplicate on it).")
    type: str = Field(description="What happened: `scheduled`, `started`, `succeeded`, `retrying`, `failed`, "
                                  "`dead`, `unknown`, `missed`, `cancelled`, `paused`, `resumed`, or "
                                  "`delivery.<status>` for what WhatsApp reported about the sent message.")
    at: Instant = Field(description=f"When it happened: {UTC_INSTANT}.")
    attempt_id: str | None = Field(default=None, description="The run it belongs to; null for an event of no "
                                                             "run.")
    data: dict[str, str] = Field(
        default_factory=dict,
        description="Its details, as text; the instants among them (`next_run_at`, `rescheduled_from`, "
                    "`run_now_from`, `skipped_from`, `occurrence`, `retry_at`, a delivery event's `at`) as UTC "
                    "instants to the millisecond. An event a request caused (a creation, cancel, pause, resume, "
                    "move or other change, run now, retry, one by one or in bulk) names who made it: `by`, the "
                    "request's token as `token:` and its fingerprint (the first 12 hex digits of its SHA-256, "
                    "never the token), and `request_id`, the request's `X-Request-ID`; the scheduler's own "
                    "events (a run and its outcome) name no one.",
        examples=[{"next_run_at": "2030-06-21T17:00:00.000Z", "by": "token:3f2a9c1b7e4d",
                   "request_id": "5b0c1e7a9d2f4e8a8c3b6a1d0e9f7c2b"}])
    deliveries: list[DeliveryView] = Field(default_factory=list,
                                           description="Its status webhook deliveries, when webhooks are configured.")

    @classmethod
    def of(cls, event: ScheduleEvent, deliveries: Sequence[Any] = ()) -> EventView:
        """The view of ``event`` with its webhook ``deliveries`` (objects with the fields of
        :class:`DeliveryView`); the instants in its data as the API shows instants."""
        return cls(id=event.id, type=event.type, at=event.at, attempt_id=event.attempt_id,
                   data=shown_event_data(event.type, event.data),
                   deliveries=[DeliveryView.model_validate(d) for d in deliveries])


class EventList(BaseModel):
    """A schedule's events."""

    schedule_id: str = Field(description="The schedule's id.")
    items: list[EventView] = Field(description="Its events, oldest first (the newest 100 are kept).")


class ScheduleList(BaseModel):
    """A page of schedules."""

    items: list[ScheduleView] = Field(description="The schedules of this page, in the list's order.")
    limit: int = Field(description="The page size asked for (`limit`).")
    offset: int = Field(description="The `offset` asked for (0 with a `cursor`).")
    has_more: bool = Field(description="Whether at least one more schedule matches after this page "
                                       "(ask for it with `cursor` = `next_cursor`, or `offset` + `limit`).")
    next_cursor: str | None = Field(
        description="The `cursor` of the next page (opaque; ask again with `cursor` set to it and the same "
                    "filters), or null when `has_more` is false. It holds this page's last schedule's position "
                    "in the list's order, so schedules created or changed meanwhile shift no page (soonest first, "
                    "one whose due time moved past it is listed again, one that moved before it is not).")


class StatsView(BaseModel):
    """Schedules counted by status and by task type, as the dashboard shows them."""

    total: int = Field(description="Schedules in `by_status` (the service's own task types left out).")
    by_status: dict[str, int] = Field(
        description="Every status, with how many schedules are in it; the service's own jobs "
                    "(`webhook.delivery`, `whatsapp.status`, `cronjob.retention`) are left out, as `GET /v1/schedules` "
                    "leaves them out.")
    by_type: dict[str, dict[str, int]] = Field(
        description="Per task type (the service's own included), how many schedules are in each "
                    "status it has.")
    as_of: Instant = Field(description="When the counts were read: an API process answers from its last "
                                       "read and reads them again in the background, at most every 2 "
                                       "seconds, less often the longer a read takes (a read of 3 s: every "
                                       "30 s), so they can be that old and a little more.")

    @classmethod
    def of(cls, counts: Mapping[tuple[ScheduleStatus, str], int], internal: Collection[str],
           as_of: datetime) -> StatsView:
        """The view of ``counts`` per (status, task type) read at ``as_of``, the ``internal``
        task types left out of ``by_status`` and ``total``."""
        by_status = {status.value: 0 for status in ScheduleStatus}
        by_type: dict[str, dict[str, int]] = {}
        for (status, task_type), count in sorted(counts.items(), key=lambda item: (item[0][1], item[0][0].value)):
            if not count:
                continue
            by_type.setdefault(task_type, {})[status.value] = count
            if task_type not in internal:
                by_status[status.value] += count
        return cls(total=sum(by_status.values()), by_status=by_status, by_type=by_type, as_of=as_of)


class RunView(BaseModel):
    """One run to come."""

    at: Instant
    local: str = Field(description="The same instant as the wall time in the zone of the rule, with its offset "
                                   "(ISO 8601, `2026-11-30T09:00:00-03:00`; milliseconds only when not zero).",
                       examples=["2026-11-30T09:00:00-03:00"])
    retry: bool = Field(default=False, description="It retries an occurrence that failed, so its time need not "
                                                   "be one of the rule's (only the first run can).")

    @classmethod
    def list_of(cls, times: Sequence[datetime], zone: str, *, retry: bool = False) -> list[RunView]:
        """The views of ``times`` in ``zone`` (the first a retry when ``retry``); those whose wall
        time falls past the calendar there (year 9999 ends earlier east of UTC) are left out."""
        tz, runs = load_zone(zone), []
        for index, at in enumerate(times):
            try:
                local = wall_time_text(at, tz)
            except OverflowError:
                break
            runs.append(cls(at=at, local=local, retry=retry and index == 0))
        return runs


class UpcomingView(BaseModel):
    """When a schedule runs next, if nothing changes: as its rule and its state say, every run
    succeeding (a paused one as if resumed now; none once it ended)."""

    schedule: str = Field(description="The rule's canonical expression.")
    timezone: str = Field(description="The IANA zone of the rule's wall times.")
    status: ScheduleStatus = Field(description="The schedule's status now.")
    runs: list[RunView] = Field(description="At most `count`, in the order they run; fewer once the rule ends.")


class RulePreviewView(BaseModel):
    """When a rule not yet scheduled would run, were it scheduled now (`POST /v1/schedules`)."""

    schedule: str = Field(description="The rule's canonical expression (an interval's anchor spelt out).")
    timezone: str = Field(description="The IANA zone of the rule's wall times.")
    recurring: bool = Field(description="Whether the rule recurs (false: a one-off).")
    runs: list[RunView] = Field(description="At most `count`; fewer once the rule ends (a one-off runs once).")


class ProbeView(BaseModel):
    """A probe's verdict and the checks behind it."""

    ok: bool = Field(description="Whether every check is `ok` (false: answered with 503).")
    checks: dict[str, str] = Field(description="Each check by name (`process`, `scheduler_loop`, `store`, "
                                               "`indexes`): `ok`, or why not.")


class Health(BaseModel):
    """Liveness, and whether the schedule store answers."""

    status: Literal["ok", "degraded"] = Field(description="`ok`, or `degraded` when the store does not answer "
                                                          "(answered with 503).")
    alive: bool = Field(description="Always true: the process answered.")
    store: Literal["ok", "unavailable"] = Field(description="Whether the schedule store answers.")
    version: str = Field(description="The service's version.")
