"""Schedule <-> plain document, shared by the stores that persist documents (MongoDB, SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import (
    Attempt,
    Lease,
    MisfirePolicy,
    Schedule,
    ScheduleEvent,
    ScheduleStatus,
)
from cronjob.domain.errors import ValidationError
from cronjob.domain.trigger import Trigger, UnreadableTrigger, fire_millisecond, whole_millisecond

#: Builds a trigger from its canonical expression and the schedule's IANA zone.
TriggerParser = Callable[[str, str], Trigger]

#: Statuses that earlier versions stored under another name: ``dead`` (a run that failed for
#: good) was ``failed`` until the dead letters came. The stores rename them when they are opened
#: (``initialize``); :func:`stored_status` reads one written since by a replica of such a
#: version still running beside this one.
RENAMED_STATUSES: dict[str, ScheduleStatus] = {"failed": ScheduleStatus.DEAD}

#: The keys :meth:`ScheduleCodec.to_document` leaves out of a schedule's document when it has
#: no value for them (every other key is always written): a store that updates a document key
#: by key, rather than replacing it whole, removes these when they are left out.
OPTIONAL_KEYS: frozenset[str] = frozenset({"idempotency_key"})


def stored_status(value: str) -> ScheduleStatus:
    """The status stored as ``value``, by this version or an earlier one."""
    renamed = RENAMED_STATUSES.get(value)
    return renamed if renamed is not None else ScheduleStatus(value)


def status_counts(rows: Iterable[tuple[str, str, int]]) -> dict[tuple[ScheduleStatus, str], int]:
    """The counts of a store's ``(status, task type, count)`` groups by status and task type,
    a status stored under an earlier name counted with its name now."""
    counts: dict[tuple[ScheduleStatus, str], int] = {}
    for status, task_type, count in rows:
        key = (stored_status(status), task_type)
        counts[key] = counts.get(key, 0) + count
    return counts


def to_millis(value: datetime) -> datetime:
    """``value`` in UTC, truncated to the millisecond (the precision of BSON dates)."""
    return whole_millisecond(value.astimezone(UTC))


def bound_millis(value: datetime) -> datetime:
    """``value`` in UTC, rounded *up* to the millisecond: a bound on stored times (whole
    milliseconds) that selects what ``value`` itself does, for ``>=`` as for ``<`` (a stored
    time at or after 12:00:00.0005 is one at or after 12:00:00.001; one before it, one before
    12:00:00.001). Cut down, as :func:`to_millis` cuts, it would take in 12:00:00.000."""
    return fire_millisecond(value.astimezone(UTC), "next_run_at")


def _dt(value: datetime | None) -> datetime | None:
    return None if value is None else to_millis(value)


def _aware(value: Any) -> datetime | None:
    """Read a stored date: BSON dates come back naive (UTC), JSON ones as ISO text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _error_doc(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "retryable": error.retryable,
            "details": dict(error.details)}


def _error(doc: dict[str, Any] | None) -> ErrorInfo | None:
    if doc is None:
        return None
    return ErrorInfo(code=doc["code"], message=doc["message"], retryable=doc.get("retryable", False),
                     details=dict(doc.get("details") or {}))


def _retry_doc(policy: RetryPolicy | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    return {
        "max_attempts": policy.max_attempts,
        "initial_delay_seconds": policy.initial_delay.total_seconds(),
        "max_delay_seconds": policy.max_delay.total_seconds(),
        "multiplier": policy.multiplier,
        "max_age_seconds": policy.max_age.total_seconds(),
        "min_delay_seconds": policy.min_delay.total_seconds(),
    }


def _retry(doc: dict[str, Any] | None) -> RetryPolicy | None:
    if doc is None:
        return None
    return RetryPolicy(
        max_attempts=doc["max_attempts"],
        initial_delay=timedelta(seconds=doc["initial_delay_seconds"]),
        max_delay=timedelta(seconds=doc["max_delay_seconds"]),
        multiplier=doc["multiplier"],
        max_age=timedelta(seconds=doc["max_age_seconds"]),
        min_delay=timedelta(seconds=doc["min_delay_seconds"]),
    )


def _timeout(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def _misfire(doc: dict[str, Any] | None) -> MisfirePolicy:
    if not doc:
        return MisfirePolicy()
    grace = doc.get("grace_seconds")
    return MisfirePolicy(grace=None if grace is None else timedelta(seconds=grace),
                         coalesce=bool(doc.get("coalesce", True)))


def lease_document(lease: Lease | None) -> dict[str, Any] | None:
    """The stored form of a lease (also used by the stores' atomic claim updates)."""
    if lease is None:
        return None
    return {"owner": lease.owner, "attempt_id": lease.attempt_id,
            "claimed_at": _dt(lease.claimed_at), "until": _dt(lease.until),
            "taken_over_from": lease.taken_over_from}


class ScheduleCodec:
    """Turns schedules into documents of plain values (datetimes stay ``datetime``, UTC, ms) and back.

    The document's ``_id`` is the schedule id; ``idempotency_key`` is left out when there is none,
    so that a unique index over it can skip those documents (:data:`OPTIONAL_KEYS`).
    """

    def __init__(self, parse_trigger: TriggerParser) -> None:
        self._parse_trigger = parse_trigger

    def to_document(self, schedule: Schedule) -> dict[str, Any]:
        """The stored form of ``schedule``."""
        doc: dict[str, Any] = {
            "_id": schedule.id,
            "task_type": schedule.task_type,
            "payload": schedule.payload,
            "trigger": schedule.trigger.expression,
            "timezone": schedule.timezone,
            "status": schedule.status.value,
            "next_run_at": _dt(schedule.next_run_at),
            "occurrence": _dt(schedule.occurrence),
            "created_at": _dt(schedule.created_at),
            "updated_at": _dt(schedule.updated_at),
            "user_id": schedule.user_id,
            "retry": _retry_doc(schedule.retry),
            "misfire": {
                "grace_seconds": (schedule.misfire.grace.total_seconds()
                                  if schedule.misfire.grace is not None else None),
                "coalesce": schedule.misfire.coalesce,
            },
            "send_by": _dt(schedule.send_by),
            "lease": lease_document(schedule.lease),
            "attempts": [
                {
                    "attempt_id": a.attempt_id,
                    "number": a.number,
                    "owner": a.owner,
                    "scheduled_for": _dt(a.scheduled_for),
                    "started_at": _dt(a.started_at),
                    "finished_at": _dt(a.finished_at),
                    "outcome": a.outcome,
                    "error": _error_doc(a.error),
                    "provider_message_id": a.provider_message_id,
                }
                for a in schedule.attempts
            ],
            "result": dict(schedule.result),
            "last_error": _error_doc(schedule.last_error),
            "metadata": dict(schedule.metadata),
            "callback_url": schedule.callback_url,
            "events": [
                {"id": e.id, "type": e.type, "at": _dt(e.at), "attempt_id": e.attempt_id, "data": dict(e.data)}
                for e in schedule.events
            ],
            "delivery": dict(schedule.delivery),
            "pause_after_failures": schedule.pause_after_failures,
            "failed_in_a_row": schedule.failed_in_a_row,
            "labels": dict(schedule.labels),
            "run_timeout_seconds": schedule.run_timeout.total_seconds() if schedule.run_timeout else None,
        }
        if schedule.idempotency_key:
            doc["idempotency_key"] = schedule.idempotency_key
        return doc

    def _trigger(self, expression: str, timezone: str) -> Trigger:
        """The stored rule; one this version cannot read (a later version's, a zone this machine
        lacks) is an :class:`UnreadableTrigger` keeping its text, rather than an error that would
        fail every read of a page, or every claim of a batch, that holds the schedule."""
        try:
            return self._parse_trigger(expression, timezone)
        except ValidationError as error:
            return UnreadableTrigger(expression, error.message.split("; accepted forms")[0])

    def from_document(self, doc: dict[str, Any]) -> Schedule:
        """The schedule stored as ``doc``."""
        lease_doc = doc.get("lease")
        lease = None
        if lease_doc:
            lease = Lease(owner=lease_doc["owner"], attempt_id=lease_doc["attempt_id"],
                          claimed_at=_aware(lease_doc["claimed_at"]),  # type: ignore[arg-type]
                          until=_aware(lease_doc["until"]),  # type: ignore[arg-type]
                          taken_over_from=lease_doc.get("taken_over_from"))
        return Schedule(
            id=doc["_id"],
            task_type=doc["task_type"],
            payload=doc["payload"],
            trigger=self._trigger(doc["trigger"], doc["timezone"]),
            timezone=doc["timezone"],
            status=stored_status(doc["status"]),
            next_run_at=_aware(doc.get("next_run_at")),
            occurrence=_aware(doc.get("occurrence")),
            created_at=_aware(doc["created_at"]),  # type: ignore[arg-type]
            updated_at=_aware(doc["updated_at"]),  # type: ignore[arg-type]
            user_id=doc.get("user_id"),
            idempotency_key=doc.get("idempotency_key"),
            retry=_retry(doc.get("retry")),
            misfire=_misfire(doc.get("misfire")),
            send_by=_aware(doc.get("send_by")),
            lease=lease,
            attempts=[
                Attempt(
                    attempt_id=a["attempt_id"],
                    number=a["number"],
                    owner=a["owner"],
                    scheduled_for=_aware(a["scheduled_for"]),  # type: ignore[arg-type]
                    started_at=_aware(a["started_at"]),  # type: ignore[arg-type]
                    finished_at=_aware(a["finished_at"]),  # type: ignore[arg-type]
                    outcome=a["outcome"],
                    error=_error(a.get("error")),
                    provider_message_id=a.get("provider_message_id"),
                )
                for a in doc.get("attempts") or []
            ],
            result=dict(doc.get("result") or {}),
            last_error=_error(doc.get("last_error")),
            metadata=dict(doc.get("metadata") or {}),
            callback_url=doc.get("callback_url"),
            events=[
                ScheduleEvent(id=e["id"], type=e["type"], at=_aware(e["at"]),  # type: ignore[arg-type]
                              attempt_id=e.get("attempt_id"), data=dict(e.get("data") or {}))
                for e in doc.get("events") or []
            ],
            delivery=dict(doc.get("delivery") or {}),
            pause_after_failures=doc.get("pause_after_failures"),
            failed_in_a_row=int(doc.get("failed_in_a_row") or 0),
            labels=dict(doc.get("labels") or {}),  # none in documents written before labels existed
            run_timeout=_timeout(doc.get("run_timeout_seconds")),
        )
