"""What the bulk routes (``POST /v1/schedules:cancel``, ``:pause``, ``:resume`` and ``:retry``)
share: the body fields that narrow which schedules they change, read into the service's
:class:`~cronjob.services.bulk.Selection`, and the answer's echo of them and its refusals."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cronjob.services.bulk import MAX_LIMIT, Selection

from cronjob_adapters.web.instants import Instant, body_instant
from cronjob_adapters.web.schemas import Labels, UserId
from cronjob_adapters.web.task_types import check_task_types

_TaskType = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _instant_field(description: str, example: str) -> Any:
    """A body field that names an instant (read by :func:`body_instant`), described."""
    return Field(default=None, min_length=1, max_length=64, examples=[example],
                 description=description + " An ISO-8601 date-time with an offset (`-03:00`, `Z`).")


class Narrowing(BaseModel):
    """The fields that narrow a bulk change beside the statuses it acts on: task types, a user,
    labels and a last-change window (each given must match)."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[list[_TaskType] | None, Field(
        default=None, min_length=1, max_length=20,
        description="Only these task types (default: every type but the service's own jobs, which are "
                    "selected only when named, e.g. `webhook.delivery`, status webhook deliveries).")] = None
    userId: Annotated[UserId | None, Field(default=None,
                                           description="Only those made with this `userId` (exactly).")] = None
    labels: Annotated[Labels | None, Field(default=None,
                                           description="Only those carrying every one of these labels.")] = None
    updated_after: Annotated[str | None, _instant_field(
        "Only those last changed at or after this instant (`updated_at >= updated_after`; one that "
        "ended: when it ended, or last got a delivery status).", "2026-11-28T14:00:00-03:00")] = None
    updated_before: Annotated[str | None, _instant_field(
        "Only those last changed before this instant (`updated_at < updated_before`: the window is "
        "half-open); later than `updated_after`. With both: what changed during an outage, or a bad "
        "deploy.", "2026-11-28T15:00:00-03:00")] = None
    limit: Annotated[int | None, Field(
        default=None, strict=True, ge=1, le=MAX_LIMIT, examples=[1000],
        description=f"Change at most this many (1 to {MAX_LIMIT:,}; those refused do not count); left out: every "
                    "match, in one request. The answer's `more` says whether more may match: those changed "
                    "match no more, so the same request, repeated until `more` is false, goes on with the "
                    "rest, each request bounded.")] = None

    def selection(self, known_types: Collection[str]) -> Selection:
        """What this body selects, as it acts (:meth:`Selection.checked`: its bounds in UTC);
        :class:`ValidationError` naming the field for a type not in ``known_types``, a bound that
        is no date-time with an offset, an empty window, a bad label."""
        check_task_types(self.type, known_types)
        due_after, due_before = self.due_bounds()
        return Selection(task_types=self.type, user_id=self.userId, labels=self.labels,
                         due_after=due_after, due_before=due_before,
                         updated_after=body_instant(self.updated_after, "updated_after"),
                         updated_before=body_instant(self.updated_before, "updated_before")).checked()

    def due_bounds(self) -> tuple[datetime | None, datetime | None]:
        """The due-time window's bounds this body gives: none here."""
        return None, None


class SelectRequest(Narrowing):
    """Whose schedules: those made with `userId`, those carrying every one of `labels`, or, with
    both, those matching both. At least one is needed (never everyone's); `type`, a due-time
    window (`due_after <= next_run_at < due_before`) and a last-change window
    (`updated_after <= updated_at < updated_before`) narrow them further."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"userId": "abc123"}, {"labels": {"order": "123"}},
                     {"userId": "abc123", "labels": {"campaign": "black-friday"}},
                     {"userId": "abc123", "type": ["whatsapp.template"]},
                     {"userId": "abc123", "due_after": "2026-11-29T00:00:00-03:00",
                      "due_before": "2026-11-30T00:00:00-03:00"},
                     {"labels": {"campaign": "black-friday"}, "updated_after": "2026-11-28T14:00:00-03:00",
                      "updated_before": "2026-11-28T15:00:00-03:00"},
                     {"labels": {"campaign": "black-friday"}, "limit": 1000}],
        # "userId, labels or both", said as "not neither" (each left out or null): a top-level
        # anyOf of two ``required`` lists made generated clients read the body as a union of two
        # models (datamodel-code-generator) or as no model at all (openapi-python-client).
        "not": {"properties": {"userId": {"type": "null"}, "labels": {"type": "null"}}},
    })

    userId: Annotated[UserId | None, Field(default=None,
                                           description="The `userId` the schedules were made with (exactly, case "
                                                       "and all).")] = None
    labels: Annotated[Labels | None, Field(default=None, min_length=1,
                                           description="Labels the schedules carry, each with exactly this value "
                                                       "(all of them).")] = None
    due_after: Annotated[str | None, _instant_field(
        "Only the live schedules due at or after this instant (`next_run_at >= due_after`).",
        "2026-11-29T00:00:00-03:00")] = None
    due_before: Annotated[str | None, _instant_field(
        "Only the live schedules due before this instant (`next_run_at < due_before`: the window is "
        "half-open); later than `due_after`.", "2026-11-30T00:00:00-03:00")] = None

    def due_bounds(self) -> tuple[datetime | None, datetime | None]:
        """``due_after`` and ``due_before`` read as instants (a :class:`ValidationError` naming
        the field for one without an offset)."""
        return body_instant(self.due_after, "due_after"), body_instant(self.due_before, "due_before")


def more_field() -> Any:
    """An answer's ``more``: whether it stopped at the request's ``limit`` with more to do."""
    return Field(description="True when the request's `limit` was reached and more schedules may match: repeat "
                             "the same request to go on with them. False when every match was dealt with "
                             "(always, without a `limit`).")


class RefusedView(BaseModel):
    """A schedule a bulk change left as it was, and why."""

    id: str = Field(description="The schedule's id.")
    reason: str = Field(description="Why it was not changed (the conflict with its state), for a person.")


def refused_views(refused: Mapping[str, str]) -> list[RefusedView]:
    """A bulk change's refusals (id: why) as the answer lists them."""
    return [RefusedView(id=schedule_id, reason=reason) for schedule_id, reason in refused.items()]


def _echoed_bound(bound: str) -> Any:
    """An answer's field that shows the ``bound`` asked for, described."""
    return Field(description=f"The {bound} asked for, in UTC (null: open); a fraction of a millisecond is "
                             "rounded up, as it acts.")


class NarrowingView(BaseModel):
    """What a :class:`Narrowing` asked for, as the change took it."""

    userId: str | None = Field(description="The `userId` asked for (null: anyone's).")
    labels: dict[str, str] | None = Field(description="The labels asked for (null: any).")
    type: list[str] | None = Field(description="The task types asked for (null: every type but the service's own).")
    updated_after: Instant | None = _echoed_bound("last-change window's start")
    updated_before: Instant | None = _echoed_bound("last-change window's end")

    @classmethod
    def echo(cls, selection: Selection) -> dict[str, Any]:
        """This view's fields that show ``selection`` (checked: as it acted)."""
        return {"userId": selection.user_id, "labels": None if selection.labels is None else dict(selection.labels),
                "type": None if selection.task_types is None else list(selection.task_types),
                "updated_after": selection.updated_after, "updated_before": selection.updated_before}


class SelectionView(NarrowingView):
    """What a :class:`SelectRequest` asked for, as the change took it."""

    due_after: Instant | None = _echoed_bound("due-time window's start")
    due_before: Instant | None = _echoed_bound("due-time window's end")

    @classmethod
    def echo(cls, selection: Selection) -> dict[str, Any]:
        """:meth:`NarrowingView.echo` and the due-time window."""
        return {**super().echo(selection), "due_after": selection.due_after, "due_before": selection.due_before}
