"""The webhook EventPublisher: every (event, subscriber) becomes a durable ``webhook.delivery`` job."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cronjob.domain.instants import instant_text
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import MisfirePolicy, Schedule, ScheduleEvent, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger
from cronjob.ports.clock import Clock
from cronjob.ports.events import EventPublisher
from cronjob.ports.repository import ScheduleRepository, StoreUnavailable
from cronjob.ports.signal import WorkSignal

from cronjob_adapters.tasks.ssrf import display_url
from cronjob_adapters.webhooks.delivery import TASK_TYPE, WebhookDeliveryPayload, WebhookEvent

log = logging.getLogger(__name__)

#: The events a subscription can name (``CRONJOB_WEBHOOK_EVENTS``). ``delivery.*`` are what the
#: messaging provider reports about a sent message, when those updates are recorded.
EVENT_TYPES: tuple[str, ...] = (
    "scheduled", "started", "succeeded", "retrying", "failed", "dead", "unknown", "missed", "cancelled",
    "paused", "resumed",
    "delivery.sent", "delivery.delivered", "delivery.read", "delivery.failed",
)

#: Deliveries are retried with this policy unless configured otherwise: 16 attempts, each wait a
#: random part (full jitter) of 5 s doubling up to 1 h: the last one about 3 h after the first on
#: average (at most 6.4 h, unless a Retry-After asks for longer), so that a receiver down for a
#: deploy or an incident of an hour or two still gets its events; never later than 24 h after the
#: first attempt.
DEFAULT_DELIVERY_RETRY = RetryPolicy(
    max_attempts=16,
    initial_delay=timedelta(seconds=5),
    max_delay=timedelta(hours=1),
    max_age=timedelta(hours=24),
)

_ADD_ATTEMPTS = 3  # a short store hiccup while publishing is retried, briefly
#: A withdrawn delivery found running (looking for its event) is looked at again this often, this many times.
_WITHDRAW_PAUSE = 0.05
_WITHDRAW_TRIES = 20


def parse_event_filter(text: str) -> set[str] | None:
    """``'succeeded, dead'`` -> ``{'succeeded', 'dead'}``; empty (or ``all``/``*``) -> None, meaning
    every event; :class:`ValueError` naming an unknown event."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if not names or names & {"all", "*"}:
        return None
    unknown = sorted(names - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    return names


def delivery_key(event_id: str, url: str) -> str:
    """The idempotency key of the delivery of ``event_id`` to ``url`` (one per pair, ever)."""
    return f"webhook:{event_id}:{hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """What became of one event's delivery to one URL: the delivery job's id and status
    (``scheduled`` = waiting for its first attempt or a retry, ``running``, ``succeeded`` =
    delivered, ``dead`` = given up), attempts made, the code of the latest failed attempt,
    and when the next attempt is due."""

    url: str
    delivery_id: str
    status: str
    attempts: int
    last_error_code: str | None
    next_attempt_at: datetime | None


class WebhookPublisher(EventPublisher):
    """Publishes schedule events as signed status webhooks.

    Subscribers of an event: the schedule's ``callback_url`` and the global URLs (configuration),
    without repeats, when ``events`` (None: all) names the event's type. ``publish`` stores one
    one-off ``webhook.delivery`` schedule per (event, subscriber), due now, with idempotency key
    ``webhook:<event id>:<sha256(url)[:16]>``, and wakes the engine; a repeat of the same
    publication finds the key taken and adds nothing. The deliveries of one call (``publish``,
    or ``publish_many`` for a page of changes) are stored together, in one ``add_many``. Events
    of the service's own jobs (``own_types``: ``webhook.delivery`` and whatever else the
    deployment runs for itself) are never published. ``publish`` never raises: a delivery that cannot be stored
    (the store is down beyond a short retry) is logged with its event id and ``publish`` returns
    False. The delivery job checks, when it runs, that its event was stored (see
    :class:`~cronjob_adapters.webhooks.delivery.WebhookDeliveryHandler`).
    """

    def __init__(
        self,
        repository: ScheduleRepository,
        clock: Clock,
        signal: WorkSignal,
        *,
        global_urls: Sequence[str] = (),
        events: Collection[str] | None = None,
        retry: RetryPolicy = DEFAULT_DELIVERY_RETRY,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        own_types: Collection[str] = (TASK_TYPE,),
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._signal = signal
        self._global_urls = list(dict.fromkeys(u for u in global_urls if u))
        self._events = frozenset(events) if events is not None else None
        self._retry = retry
        self._new_id = new_id
        self._own_types = frozenset({TASK_TYPE, *own_types})

    def subscribers(self, schedule: Schedule, event_type: str) -> list[str]:
        """The URLs that receive ``event_type`` events of ``schedule``."""
        if schedule.task_type in self._own_types:
            return []  # no webhooks about webhooks, nor about the service's other own jobs
        if self._events is not None and event_type not in self._events:
            return []
        urls = [schedule.callback_url] if schedule.callback_url else []
        return list(dict.fromkeys([*urls, *self._global_urls]))

    async def publish(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> bool:
        [stored] = await self.publish_many([(schedule, events)])
        return stored

    async def publish_many(self, changed: Sequence[tuple[Schedule, Sequence[ScheduleEvent]]]) -> list[bool]:
        """The deliveries of every event of ``changed`` stored in one ``add_many`` (one round trip
        of the store, one transaction on SQLite); each schedule's answer False when some
        delivery of its events could not be made or stored."""
        now = self._clock.now()
        stored = [True] * len(changed)
        deliveries: list[Schedule] = []
        owners: list[int] = []  # the position in ``changed`` of each delivery's schedule
        for position, (schedule, events) in enumerate(changed):
            for event in events:
                for url in self.subscribers(schedule, event.type):
                    try:  # one subscriber's problem must not cost the others their delivery
                        deliveries.append(self._delivery(schedule, event, url, now))
                        owners.append(position)
                    except Exception:  # the contract: never raise to the dispatcher or the API
                        log.exception("publishing event %s of schedule %s failed", event.id, schedule.id)
                        stored[position] = False
        outcomes = await self._add_all(deliveries)
        for position, outcome in zip(owners, outcomes, strict=True):
            stored[position] = stored[position] and outcome >= 0
        if 1 in outcomes:
            self._signal.notify(now)
        return stored

    def _delivery(self, schedule: Schedule, event: ScheduleEvent, url: str, now: datetime) -> Schedule:
        body = WebhookEvent(
            id=event.id,
            type=event.type,
            at=instant_text(event.at),
            schedule_id=schedule.id,
            task_type=schedule.task_type,
            attempt_id=event.attempt_id,
            status=schedule.status.value,
            data=dict(event.data),
            labels=dict(schedule.labels),
        )
        payload = WebhookDeliveryPayload(url=url, schedule_id=schedule.id, event=body)
        return Schedule.create(
            id=self._new_id(),
            task_type=TASK_TYPE,
            payload=payload.model_dump(mode="json"),
            trigger=OnceTrigger(now),
            timezone="UTC",
            first_run_at=now,
            now=now,
            idempotency_key=delivery_key(event.id, url),
            retry=self._retry,
            misfire=MisfirePolicy(grace=None),  # late is fine: a delivery after downtime still goes
            metadata={"schedule_id": schedule.id, "event_id": event.id, "event_type": event.type},
        )

    async def _add_all(self, deliveries: Sequence[Schedule]) -> list[int]:
        """Store ``deliveries``; for each, 1 when stored, 0 when it existed, -1 when it could not be stored."""
        if not deliveries:
            return []
        delay = 0.1
        for attempt in range(1, _ADD_ATTEMPTS + 1):
            try:
                existing = await self._repository.add_many(deliveries)
                return [1 if found is None else 0 for found in existing]  # existed: published before
            except StoreUnavailable as exc:  # an outage, not a bug: no traceback
                if attempt == _ADD_ATTEMPTS:
                    for delivery in deliveries:
                        log.warning("webhook delivery of event %s (schedule %s) could not be stored: the "
                                    "store is unavailable (%s)", delivery.metadata.get("event_id"),
                                    delivery.metadata.get("schedule_id"), type(exc).__name__)
                    return [-1] * len(deliveries)
            except Exception:
                if len(deliveries) > 1:  # one the store refuses must not cost the others theirs
                    return [outcome for delivery in deliveries for outcome in await self._add_all([delivery])]
                if attempt == _ADD_ATTEMPTS:
                    [delivery] = deliveries
                    log.exception("webhook delivery of event %s (schedule %s) could not be stored",
                                  delivery.metadata.get("event_id"), delivery.metadata.get("schedule_id"))
                    return [-1]
            await asyncio.sleep(delay)
            delay *= 3
        return [-1] * len(deliveries)

    async def withdraw(self, schedule: Schedule, events: Sequence[ScheduleEvent]) -> None:
        """Cancel the deliveries of ``events``, whose write was refused. A delivery that is
        running is waited for a moment (it only looks for its event, finds it missing and waits
        again) and then cancelled; one that has ended is left as it is. Never raises."""
        for event in events:
            for url in self.subscribers(schedule, event.type):
                try:
                    await self._withdraw(delivery_key(event.id, url))
                except Exception:  # the contract: never raise; the delivery's own check remains
                    log.exception("withdrawing event %s of schedule %s failed", event.id, schedule.id)

    async def _withdraw(self, key: str) -> None:
        for _ in range(_WITHDRAW_TRIES):
            delivery = await self._repository.get_by_idempotency_key(key)
            if delivery is None or delivery.status not in (ScheduleStatus.SCHEDULED, ScheduleStatus.RUNNING):
                return
            if delivery.status is ScheduleStatus.RUNNING:
                await asyncio.sleep(_WITHDRAW_PAUSE)
                continue
            version = delivery.updated_at
            delivery.cancel(now=self._clock.now())
            if await self._repository.save(delivery, expected_status=ScheduleStatus.SCHEDULED,
                                           expected_updated_at=version):
                log.info("webhook %s of schedule %s withdrawn: its write was refused",
                         delivery.metadata.get("event_type"), delivery.metadata.get("schedule_id"))
                return
        log.warning("webhook delivery %s kept running; left to its own check", key)

    async def deliveries(self, schedule: Schedule) -> dict[str, list[WebhookDelivery]]:
        """The webhook deliveries of each of ``schedule``'s events, by event id, looked up by their
        idempotency keys for the subscribers configured now (a global URL removed since is not shown)."""
        pairs = [(event.id, url) for event in schedule.events for url in self.subscribers(schedule, event.type)]
        found = await asyncio.gather(*(self._repository.get_by_idempotency_key(delivery_key(event_id, url))
                                       for event_id, url in pairs))
        shown: dict[str, list[WebhookDelivery]] = {}
        for (event_id, url), delivery in zip(pairs, found, strict=True):
            if delivery is not None:
                shown.setdefault(event_id, []).append(self._view(url, delivery))
        return shown

    @staticmethod
    def _view(url: str, delivery: Schedule) -> WebhookDelivery:
        failures = [a for a in delivery.attempts if a.error is not None]
        return WebhookDelivery(
            url=display_url(url),
            delivery_id=delivery.id,
            status=delivery.status.value,
            attempts=len(delivery.attempts),
            last_error_code=failures[-1].error.code if failures and failures[-1].error else None,
            next_attempt_at=delivery.next_run_at if delivery.status is ScheduleStatus.SCHEDULED else None,
        )
