"""The internal ``webhook.delivery`` task type: one schedule event POSTed to one subscriber URL.

A delivery is a one-off schedule created by :class:`~cronjob_adapters.webhooks.publisher.WebhookPublisher`
(never through the API), so the engine stores, claims, leases, fences and retries it like any
other job. Each attempt:

- serialises the event once to bytes (stable JSON: sorted keys, no spaces, UTF-8), signs exactly
  those bytes with a fresh timestamp (``Cronjob-Signature``, see :mod:`.signing`) and sends them;
- goes through the SSRF-guarded sender of :mod:`cronjob_adapters.tasks.http_request`
  (:meth:`HttpRequestHandler.send`): destination checks, IP pinning, no redirects followed;
- succeeds on 2xx; 408, 429, 5xx, timeouts and connection errors are retried (the sender's
  classification, ``Retry-After`` honoured); any other status (3xx, 4xx) and a refused
  destination fail at once.

Without a configured secret every delivery fails permanently with ``webhook_secret_missing``:
an unsigned webhook is never sent.

Deliveries are stored *before* the write that records their event (see
:class:`~cronjob.ports.events.EventPublisher`), so before sending, a delivery looks its event up
in the stored schedule: found (or already trimmed from a full history), it is sent; not found
yet, it waits without spending an attempt; when its write can no longer come (a run's lease
lost to another replica without its attempt recorded; for other events, and those of a run whose
schedule was cancelled while it ran, ``settle_seconds`` after the event), the
event never happened and the delivery ends without sending (``result.skipped``). ``started``
events, stored only with the run's outcome, are sent at once; a retried delivery does not look
again.

At most so many deliveries to one destination (the URL's scheme, host and port) are in flight
at once per replica (:mod:`.destinations`): the others are held back before they start, so that
a receiver that hangs holds a few of the replica's webhook slots, not all of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cronjob import __version__
from cronjob.domain.message import DeliveryDeferred, DeliveryError
from cronjob.domain.schedule import HISTORY_LIMIT, Schedule
from cronjob.ports.clock import Clock
from cronjob.ports.metrics import Metrics, NullMetrics
from cronjob.ports.repository import ScheduleRepository
from cronjob.ports.tasks import TaskHandler, TaskOutcome

from cronjob_adapters.tasks.http_request import HttpRequestHandler, status_error
from cronjob_adapters.tasks.ssrf import HttpUrl, parse_url
from cronjob_adapters.tasks.validation import validate_stored
from cronjob_adapters.webhooks.destinations import DestinationLimit, Origin
from cronjob_adapters.webhooks.signing import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

TASK_TYPE = "webhook.delivery"
#: Events a run's outcome write stores (fenced by its lease), ``paused`` by ``pause_after_failures``
#: among them (a user's pause carries no attempt id).
_RUN_OUTCOMES = frozenset({"succeeded", "failed", "retrying", "dead", "unknown", "missed", "paused"})
EVENT_ID_HEADER = "Cronjob-Event-Id"
EVENT_TYPE_HEADER = "Cronjob-Event-Type"
DEFAULT_TIMEOUT_SECONDS = 10.0
SECRET_MISSING = "webhook_secret_missing"


class WebhookEvent(BaseModel):
    """The body of a delivery: one event of one schedule.

    ``status`` is the schedule's status once the event happened; ``data`` the event's details
    (error code and message, retry time, result fields...), all text, its instants written as
    ``at`` is; ``labels`` the schedule's labels then (none in a delivery stored before labels).
    Extra fields are kept, so a delivery stored by a newer version is still sent whole by an
    older one.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1, max_length=128, description="Unique per event: deduplicate on it.")
    type: str = Field(min_length=1, max_length=64)
    at: str = Field(description="When the event happened, a UTC instant to the millisecond "
                                "(2025-06-21T17:00:00.412Z).")
    schedule_id: str
    task_type: str
    attempt_id: str | None = None
    status: str
    data: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict, description="The schedule's labels when the event "
                                                                     "happened, to route it by.")


class WebhookDeliveryPayload(BaseModel):
    """The payload of a ``webhook.delivery`` schedule (version 1)."""

    VERSION: ClassVar[int] = 1

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    schedule_id: str = Field(description="The schedule the event is about.")
    event: WebhookEvent


def event_body(event: WebhookEvent) -> bytes:
    """The exact bytes sent (and signed) for ``event``: stable JSON, the same on every attempt."""
    return json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


class WebhookDeliveryHandler(TaskHandler):
    """Sends one ``webhook.delivery`` (see the module's docstring).

    ``secrets``: every configured secret signs (rotation); empty: deliveries fail with
    ``webhook_secret_missing``. ``sender``: the SSRF-guarded HTTP sender (its allow-list decides
    which non-public destinations may be reached). ``clock``: the signature's timestamp.
    ``metrics`` counts the ``delivered`` and ``skipped`` ones (the dispatcher reports the attempts
    that fail, with its own retry decision).
    ``repository``: where the event is looked up before sending (see the module's docstring;
    None: sent without looking); ``settle_seconds``: how long after the event its write may
    still come; ``recheck_seconds``: how long a delivery waits before it looks again.
    ``destinations``: how many deliveries to one destination may be in flight (see
    :mod:`.destinations`; default: 4).
    """

    task_type = TASK_TYPE

    def __init__(
        self,
        *,
        secrets: Sequence[str],
        sender: HttpRequestHandler,
        clock: Clock,
        metrics: Metrics | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        user_agent: str = f"cronjob-webhooks/{__version__}",
        repository: ScheduleRepository | None = None,
        settle_seconds: float = 60.0,
        recheck_seconds: float = 0.2,
        destinations: DestinationLimit | None = None,
    ) -> None:
        self._secrets = [s for s in secrets if s]
        self._destinations = destinations or DestinationLimit()
        self._repository = repository
        self._settle = timedelta(seconds=settle_seconds)
        self._recheck = recheck_seconds
        self._sender = sender
        self._clock = clock
        self._metrics = metrics or NullMetrics()
        self._timeout = timeout_seconds
        self._user_agent = user_agent

    def __repr__(self) -> str:  # never the secrets
        return f"{type(self).__name__}(secrets={len(self._secrets)}, sender={self._sender!r})"

    def hold_back(self, schedule: Schedule) -> timedelta | None:
        """Hold the delivery back while its destination is slow (or not heard from yet) and has
        as many in flight as it may: see :mod:`.destinations`."""
        origin = _origin(schedule.payload)
        if origin is None:
            return None  # a payload that does not read: the run says why
        wait = self._destinations.admit(origin, schedule.id)
        return None if wait is None else timedelta(seconds=wait)

    async def run(self, schedule: Schedule) -> TaskOutcome:
        payload = validate_stored(WebhookDeliveryPayload, schedule.payload)
        origin = parse_url(payload.url).origin
        if not self._destinations.enter(origin, schedule.id):  # not admitted by hold_back, and no slot
            raise DeliveryDeferred(self._destinations.pause,
                                   f"{self._destinations.limit} deliveries to {origin[1]} are in flight")
        try:
            return await self._deliver(schedule, payload)
        finally:
            self._destinations.leave(origin, schedule.id)

    async def _deliver(self, schedule: Schedule, payload: WebhookDeliveryPayload) -> TaskOutcome:
        event = payload.event
        stored = await self._event_stored(schedule, payload)
        if stored is None:
            # Look again soon, then less and less often (half the event's age, 10 s at most).
            age = (self._clock.now() - datetime.fromisoformat(event.at)).total_seconds()
            raise DeliveryDeferred(min(max(age / 2, self._recheck), 10.0),
                                   f"event {event.id} is not stored with its schedule yet")
        if not stored:
            self._metrics.webhook_delivered("skipped")
            log.info("webhook %s %s of schedule %s not sent: the event was never stored", event.type,
                     event.id, payload.schedule_id)
            return TaskOutcome(result={"skipped": "event_not_stored"})
        if not self._secrets:
            log.warning("webhook %s of schedule %s not sent: CRONJOB_WEBHOOK_SECRET is not set",
                        event.type, payload.schedule_id)
            raise DeliveryError(
                SECRET_MISSING,
                "CRONJOB_WEBHOOK_SECRET is not set: status webhooks are only sent signed",
                retryable=False,
            )
        body = event_body(event)
        timestamp = int(self._clock.now().timestamp())  # fresh on every attempt
        headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", self._user_agent),
            (SIGNATURE_HEADER, sign(body, self._secrets, timestamp)),
            (EVENT_ID_HEADER, event.id),
            (EVENT_TYPE_HEADER, event.type),
        ]
        answer = await self._sender.send("POST", payload.url, headers=headers, content=body,
                                         timeout=self._timeout, schedule=schedule)
        host = parse_url(payload.url).host
        if 200 <= answer.status <= 299:
            self._metrics.webhook_delivered("delivered")
            log.info("webhook %s %s of schedule %s delivered to %s (HTTP %s)", event.type, event.id,
                     payload.schedule_id, host, answer.status)
            return TaskOutcome(result={"status_code": str(answer.status)})
        raise status_error(host, answer.status, answer.retry_after)

    async def _event_stored(self, delivery: Schedule, payload: WebhookDeliveryPayload) -> bool | None:
        """True: the event is stored with its schedule; None: not yet, but its write may still
        come; False: it never will.

        Decided from what is stored where it can be: a run's outcome event is stored with the
        run's attempt record, and its write is fenced by the run's lease, so once that lease is
        gone without the attempt recorded, the write can no longer happen; unless a user's cancel
        took the lease while the run was in progress: the run then adds its record (the
        ``after_cancel`` events) without a lease, so its events are given ``settle_seconds``. Other events (created,
        cancelled, retried, WhatsApp's reports) come from requests that write at once: they are
        given ``settle_seconds``. An event older than a full history (100 entries) may have been
        trimmed from it since: it counts as stored (at least once: in the rare case of a lost
        write followed by 100 stored events, it is sent).
        """
        event = payload.event
        if self._repository is None or event.type == "started" or delivery.attempts:
            return True  # started: stored only with the outcome; attempts: found by an earlier one
        at = datetime.fromisoformat(event.at)
        source = await self._repository.get(payload.schedule_id)
        if source is not None:
            if any(stored.id == event.id for stored in source.events):
                return True
            if event.type in _RUN_OUTCOMES and event.attempt_id is not None:
                if source.cancelled_while(event.attempt_id):
                    # The run's record is kept by its cancelled schedule under outcome events of
                    # its own, published just before their write; those the run published first,
                    # as if the schedule went on, never are.
                    if not source.awaits_run(event.attempt_id):
                        return False
                    return None if self._clock.now() - at < self._settle else False
                if any(attempt.attempt_id == event.attempt_id for attempt in source.attempts):
                    return True
                if source.lease is not None and source.lease.attempt_id == event.attempt_id:
                    return None  # the run still holds its lease: its write may come
                trimmed = len(source.attempts) >= HISTORY_LIMIT and source.attempts[0].finished_at >= at
                return trimmed
            if len(source.events) >= HISTORY_LIMIT and source.events[0].at >= at:
                return True
        return None if self._clock.now() - at < self._settle else False


def _origin(payload: dict[str, Any]) -> Origin | None:
    """The destination of a stored delivery's payload; None when it holds no URL that reads."""
    try:
        return parse_url(payload.get("url")).origin  # type: ignore[arg-type]
    except ValueError:
        return None
