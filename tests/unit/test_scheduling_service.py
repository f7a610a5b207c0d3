"""SchedulingService with the in-memory store, a hand-driven clock and the in-process signal."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import ErrorInfo, MessageKind
from cronjob.domain.retry import RetryDecision, RetryPolicy
from cronjob.domain.schedule import Schedule, ScheduleStatus
from cronjob.domain.trigger import OnceTrigger, whole_millisecond
from cronjob.ports.repository import ListCursor, ListOrder
from cronjob.services.commands import (
    WHATSAPP_TEMPLATE,
    WHATSAPP_TEXT,
    CreateScheduleCommand,
    RescheduleCommand,
    ScheduleMessageCommand,
)
from cronjob.services.scheduling import ScheduleConflict, ScheduleNotFound, SchedulingService
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.signal import InProcessWorkSignal
from tests.support.clock import FixedClock
from tests.support.signal import RecordingSignal

NOW = datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
SEED_BODY = "Olá, {{1}}! Seu pedido será entregue em {{2}}."
SEED_SEND_AT = "2030-01-15T09:00:00-03:00"  # 12:00 UTC, an hour after NOW


def seed_command(**changes: object) -> ScheduleMessageCommand:
    fields: dict[str, object] = dict(
        to="5511999999999",
        body=SEED_BODY,
        kind=MessageKind.TEMPLATE,
        send_at=datetime.fromisoformat(SEED_SEND_AT),
        send_at_text=SEED_SEND_AT,
        timezone="America/Sao_Paulo",
        params=("Leandro", "2 dias úteis"),
        template_name="pedido_entrega",
        language="pt_BR",
        user_id="abc123",
    )
    fields.update(changes)
    return ScheduleMessageCommand(**fields)  # type: ignore[arg-type]


def at(moment: datetime) -> dict[str, object]:
    """``send_at`` and its text for an instant."""
    return {"send_at": moment, "send_at_text": moment.isoformat()}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def repository() -> InMemoryScheduleRepository:
    return InMemoryScheduleRepository()


@pytest.fixture
def signal(clock: FixedClock) -> RecordingSignal:
    return RecordingSignal(clock)


@pytest.fixture
def service(repository: InMemoryScheduleRepository, clock: FixedClock, signal: RecordingSignal) -> SchedulingService:
    return SchedulingService(repository, clock, signal)


async def test_the_seed_message_is_stored_rendered_in_utc_with_the_original_text(
    service: SchedulingService, repository: InMemoryScheduleRepository
) -> None:
    scheduled = await service.schedule_message(seed_command())
    assert scheduled.created
    stored = await repository.get(scheduled.schedule.id)
    assert stored is not None
    assert stored == scheduled.schedule
    assert stored.status is ScheduleStatus.SCHEDULED
    assert stored.task_type == WHATSAPP_TEMPLATE
    assert stored.next_run_at == datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
    assert stored.next_run_at.utcoffset() == timedelta(0)
    assert stored.occurrence == stored.next_run_at
    assert stored.trigger == OnceTrigger(datetime(2030, 1, 15, 12, 0, tzinfo=UTC))
    assert stored.metadata["send_at"] == SEED_SEND_AT
    assert stored.payload == {
        "to": "5511999999999",
        "kind": "template",
        "body": SEED_BODY,
        "rendered_body": "Olá, Leandro! Seu pedido será entregue em 2 dias úteis.",
        "params": ["Leandro", "2 dias úteis"],
        "template_name": "pedido_entrega",
        "language": "pt_BR",
    }
    assert stored.timezone == "America/Sao_Paulo"
    assert stored.user_id == "abc123"
    assert stored.created_at == NOW
    assert stored.attempts == [] and stored.lease is None


async def test_a_send_at_between_milliseconds_is_due_at_the_next_one_never_before(
    service: SchedulingService, repository: InMemoryScheduleRepository
) -> None:
    asked = datetime(2030, 1, 15, 12, 0, 0, 250_500, tzinfo=UTC)  # the stores keep milliseconds
    scheduled = await service.schedule_message(seed_command(**at(asked)))
    assert scheduled.schedule.next_run_at == datetime(2030, 1, 15, 12, 0, 0, 251_000, tzinfo=UTC)
    lease = timedelta(seconds=30)
    assert await repository.claim_due(now=asked, owner="r", lease_for=lease, limit=1) == []  # not yet
    assert len(await repository.claim_due(now=asked + timedelta(microseconds=500), owner="r",
                                          lease_for=lease, limit=1)) == 1


async def test_a_text_message_takes_the_default_language_and_text_task_type(
    service: SchedulingService,
) -> None:
    scheduled = await service.schedule_message(
        seed_command(kind=MessageKind.TEXT, template_name=None, language=None, body="Oi {{1}}", params=("Ana",)))
    assert scheduled.schedule.task_type == WHATSAPP_TEXT
    assert scheduled.schedule.payload["language"] == "pt_BR"
    assert scheduled.schedule.payload["rendered_body"] == "Oi Ana"


@pytest.mark.parametrize("params", [(), ("Leandro",), ("Leandro", "2 dias úteis", "surplus")])
async def test_params_that_do_not_fit_are_refused_before_anything_is_stored(
    service: SchedulingService, repository: InMemoryScheduleRepository, signal: RecordingSignal,
    params: tuple[str, ...],
) -> None:
    with pytest.raises(ValidationError) as raised:
        await service.schedule_message(seed_command(params=params, idempotency_key="k-1"))
    assert raised.value.field == "params"
    assert await repository.list() == []
    assert await repository.get_by_idempotency_key("k-1") is None
    assert await repository.next_due_at() is None
    assert signal.notified == []


async def test_send_at_beyond_the_past_grace_is_refused(
    service: SchedulingService, repository: InMemoryScheduleRepository
) -> None:
    with pytest.raises(ValidationError) as raised:
        await service.schedule_message(seed_command(**at(NOW - timedelta(minutes=5, milliseconds=1))))
    assert raised.value.field == "send_at"
    assert await repository.list() == []


async def test_a_once_rule_beyond_the_past_grace_names_the_schedule_field(
    service: SchedulingService, repository: InMemoryScheduleRepository
) -> None:
    long_ago = (NOW - timedelta(hours=1)).isoformat()
    with pytest.raises(ValidationError) as raised:
        await service.create(CreateScheduleCommand(
            task_type="whatsapp.text", payload={"kind": "text", "to": "5511999999999", "body": "Oi"},
            schedule=f"once @ {long_ago}", timezone="UTC"))
    assert raised.value.field == "schedule" and raised.value.message.startswith(f"schedule once @ {long_ago}")
    assert await repository.list() == []


@pytest.mark.parametrize("ago", [timedelta(0), timedelta(seconds=30), timedelta(minutes=5)])
async def test_send_at_within_the_past_grace_is_accepted_and_due_at_once(
    service: SchedulingService, repository: InMemoryScheduleRepository, ago: timedelta
) -> None:
    scheduled = await service.schedule_message(seed_command(**at(NOW - ago)))
    assert scheduled.created
    assert scheduled.schedule.next_run_at == NOW - ago
    assert scheduled.schedule.is_due(NOW)
    assert await repository.next_due_at() == NOW - ago


async def test_a_custom_past_grace(repository: InMemoryScheduleRepository, clock: FixedClock,
                                   signal: RecordingSignal) -> None:
    strict = SchedulingService(repository, clock, signal, past_grace=timedelta(0))
    with pytest.raises(ValidationError):
        await strict.schedule_message(seed_command(**at(NOW - timedelta(milliseconds=1))))
    assert (await strict.schedule_message(seed_command(**at(NOW)))).created


async def test_a_naive_send_at_is_refused(service: SchedulingService,
                                          repository: InMemoryScheduleRepository) -> None:
    with pytest.raises(ValidationError) as raised:
        await service.schedule_message(seed_command(send_at=datetime(2030, 1, 15, 12, 0)))
    assert raised.value.field == "send_at"
    assert await repository.list() == []


async def test_a_template_without_template_name_is_refused(
    service: SchedulingService, repository: InMemoryScheduleRepository, signal: RecordingSignal
) -> None:
    for name in (None, ""):
        with pytest.raises(ValidationError) as raised:
            await service.schedule_message(seed_command(template_name=name))
        assert raised.value.field == "templateName"
    assert await repository.list() == []
    assert signal.notified == []


async def test_an_idempotency_key_replays_the_same_schedule(
    service: SchedulingService, repository: InMemoryScheduleRepository, clock: FixedClock
) -> None:
    first = await service.schedule_message(seed_command(idempotency_key="pedido-42"))
    clock.advance(timedelta(seconds=10))
    again = await service.schedule_message(seed_command(idempotency_key="pedido-42"))
    assert first.created and not again.created
    assert again.schedule.id == first.schedule.id
    assert again.schedule == first.schedule
    assert [s.id for s in await repository.list()] == [first.schedule.id]
    other = await service.schedule_message(seed_command(idempotency_key="pedido-43"))
    assert other.created and other.schedule.id != first.schedule.id
    assert len(await repository.list()) == 2


async def test_a_replay_after_send_at_has_passed_still_answers_with_the_schedule(
    service: SchedulingService, clock: FixedClock
) -> None:
    # A client that lost the first answer retries later: by then send_at is long past (and the
    # message sent), which would refuse a new request, but a replay is not a new request.
    first = await service.schedule_message(seed_command(idempotency_key="pedido-44"))
    clock.set(datetime.fromisoformat(SEED_SEND_AT) + timedelta(hours=2))
    with pytest.raises(ValidationError):
        await service.schedule_message(seed_command(idempotency_key="pedido-45"))
    again = await service.schedule_message(seed_command(idempotency_key="pedido-44"))
    assert not again.created and again.schedule.id == first.schedule.id
    once = await service.create(CreateScheduleCommand(
        task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi"},
        schedule=f"once @ {(clock.now() + timedelta(minutes=1)).isoformat()}", timezone="UTC",
        idempotency_key="rotina-1"))
    clock.advance(timedelta(hours=1))
    replayed = await service.create(CreateScheduleCommand(
        task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi"},
        schedule=f"once @ {(clock.now() - timedelta(hours=1)).isoformat()}", timezone="UTC",
        idempotency_key="rotina-1"))
    assert not replayed.created and replayed.schedule.id == once.schedule.id


class YieldingLookupRepository(InMemoryScheduleRepository):
    """Lets other tasks run during the key lookup, so two requests with one key both miss it."""

    async def get_by_idempotency_keys(self, keys: Iterable[str]) -> dict[str, Schedule]:
        found = await super().get_by_idempotency_keys(keys)
        await asyncio.sleep(0)
        return found


async def test_a_racing_duplicate_key_answers_with_the_winner(clock: FixedClock, signal: RecordingSignal) -> None:
    repository = YieldingLookupRepository()
    ids = iter(["first", "second"])
    service = SchedulingService(repository, clock, signal, new_id=lambda: next(ids))
    results = await asyncio.gather(*(service.schedule_message(seed_command(idempotency_key="same"))
                                     for _ in range(2)))
    assert sorted(r.created for r in results) == [False, True]
    assert {r.schedule.id for r in results} == {"first"}
    assert next(ids, None) is None, "both requests got past the lookup: the store's duplicate check decided"
    assert [s.id for s in await repository.list()] == ["first"]


async def test_the_signal_is_notified_with_the_due_time(service: SchedulingService,
                                                        signal: RecordingSignal) -> None:
    await service.schedule_message(seed_command())
    assert signal.notified == [datetime(2030, 1, 15, 12, 0, tzinfo=UTC)]


async def test_the_in_process_signal_wakes_a_waiter(repository: InMemoryScheduleRepository,
                                                    clock: FixedClock) -> None:
    signal = InProcessWorkSignal(clock)
    service = SchedulingService(repository, clock, signal)
    waiter = asyncio.create_task(signal.wait(60))
    await asyncio.sleep(0)  # the waiter plans to wake at NOW + 60 s
    await service.schedule_message(seed_command(**at(NOW)))
    await asyncio.wait_for(waiter, timeout=5)  # woken long before its 60 s


async def test_cancel_a_scheduled_message(service: SchedulingService, repository: InMemoryScheduleRepository,
                                          clock: FixedClock) -> None:
    scheduled = await service.schedule_message(seed_command())
    clock.advance(timedelta(seconds=3))
    cancelled = await service.cancel(scheduled.schedule.id)
    assert cancelled.status is ScheduleStatus.CANCELLED
    stored = await repository.get(scheduled.schedule.id)
    assert stored is not None
    assert stored.status is ScheduleStatus.CANCELLED
    assert stored.next_run_at is None
    assert stored.updated_at == NOW + timedelta(seconds=3)
    assert await repository.next_due_at() is None
    assert await repository.claim_due(now=NOW + timedelta(days=1), owner="r", lease_for=timedelta(seconds=30),
                                      limit=10) == []


async def test_cancel_is_idempotent_for_a_cancelled_message(service: SchedulingService,
                                                            clock: FixedClock) -> None:
    scheduled = await service.schedule_message(seed_command())
    first = await service.cancel(scheduled.schedule.id)
    clock.advance(timedelta(seconds=3))
    second = await service.cancel(scheduled.schedule.id)
    assert second.status is ScheduleStatus.CANCELLED
    # Created and cancelled within one millisecond: the cancel is a new version all the same.
    assert second.updated_at == first.updated_at == NOW + timedelta(milliseconds=1)


async def test_cancel_of_a_sent_message_is_a_conflict(service: SchedulingService,
                                                      repository: InMemoryScheduleRepository) -> None:
    scheduled = await service.schedule_message(seed_command(**at(NOW)))
    [running] = await repository.claim_due(now=NOW, owner="r", lease_for=timedelta(seconds=30), limit=10)
    assert running.lease is not None
    with pytest.raises(ScheduleConflict):
        await service.cancel(scheduled.schedule.id)  # running: too late too
    attempt_id = running.lease.attempt_id
    running.succeed(attempt_id=attempt_id, now=NOW, provider_message_id="wamid.1")
    assert await repository.save(running, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    with pytest.raises(ScheduleConflict):
        await service.cancel(scheduled.schedule.id)
    stored = await repository.get(scheduled.schedule.id)
    assert stored is not None and stored.status is ScheduleStatus.SUCCEEDED


async def test_get_and_cancel_of_an_unknown_id(service: SchedulingService) -> None:
    with pytest.raises(ScheduleNotFound) as raised:
        await service.get("nope")
    assert raised.value.schedule_id == "nope"
    with pytest.raises(ScheduleNotFound):
        await service.cancel("nope")


async def test_get_and_list(service: SchedulingService, clock: FixedClock) -> None:
    a = await service.schedule_message(seed_command())
    clock.advance(timedelta(seconds=1))
    b = await service.schedule_message(seed_command(retry=RetryPolicy(max_attempts=2)))
    assert (await service.get(a.schedule.id)) == a.schedule
    assert (await service.get(b.schedule.id)).retry == RetryPolicy(max_attempts=2)
    assert [s.id for s in await service.list()] == [b.schedule.id, a.schedule.id]
    await service.cancel(a.schedule.id)
    assert [s.id for s in await service.list(status=ScheduleStatus.CANCELLED)] == [a.schedule.id]


async def test_a_page_says_whether_more_follow_and_a_window_lists_soonest_first(
        service: SchedulingService, clock: FixedClock) -> None:
    made = []
    for minutes in (30, 10, 20, 90):
        made.append((await service.schedule_message(seed_command(**at(NOW + timedelta(minutes=minutes))))).schedule.id)
        clock.advance(timedelta(seconds=1))
    soonest = [made[1], made[2], made[0]]  # those due within the hour
    window = {"due_after": NOW, "due_before": NOW + timedelta(hours=1)}
    first = await service.page(**window, limit=2)
    assert ([s.id for s in first.items], first.has_more) == (soonest[:2], True)
    last = await service.page(**window, limit=2, offset=2)
    assert ([s.id for s in last.items], last.has_more) == (soonest[2:], False)
    whole = await service.page(**window, limit=3)  # exactly a page: nothing more
    assert ([s.id for s in whole.items], whole.has_more) == (soonest, False)
    newest = await service.page(limit=3)  # no window: newest first, as ever
    assert ([s.id for s in newest.items], newest.has_more) == (made[:0:-1], True)
    assert [s.id for s in await service.list(**window, status=ScheduleStatus.SUCCEEDED)] == []


async def test_a_due_window_between_two_milliseconds_is_no_error(service: SchedulingService) -> None:
    due = (await service.schedule_message(seed_command(**at(NOW + timedelta(minutes=5))))).schedule
    assert due.next_run_at == NOW + timedelta(minutes=5)
    tick = timedelta(microseconds=1)
    assert (await service.page(due_after=NOW + tick, due_before=NOW + 2 * tick)).items == []
    found = await service.page(due_after=due.next_run_at - tick, due_before=due.next_run_at + tick)
    assert [s.id for s in found.items] == [due.id]
    assert (await service.page(due_after=due.next_run_at + tick)).items == []


async def test_a_page_lists_those_last_changed_in_a_window_with_the_other_filters(
        service: SchedulingService, clock: FixedClock) -> None:
    made = []
    for minutes in (30, 10, 20):  # made a minute apart, due in that many minutes
        made.append((await service.schedule_message(seed_command(**at(NOW + timedelta(minutes=minutes))))).schedule.id)
        clock.advance(timedelta(minutes=1))
    clock.set(NOW + timedelta(hours=1))  # the first is cancelled an hour on: its last change
    await service.cancel(made[0])
    first_hour = {"updated_after": NOW, "updated_before": NOW + timedelta(hours=1)}

    page = await service.page(**first_hour, limit=1)
    assert ([s.id for s in page.items], page.has_more) == ([made[2]], True)  # newest made first, as ever
    assert [s.id for s in await service.list(**first_hour)] == [made[2], made[1]]
    assert [s.id for s in await service.list(updated_after=NOW + timedelta(hours=1))] == [made[0]]
    assert [s.id for s in await service.list(updated_before=NOW + timedelta(minutes=2))] == [made[1]]  # half-open
    assert [s.id for s in await service.list(**first_hour, status=ScheduleStatus.CANCELLED)] == []
    # With a due-time window: soonest due first.
    assert [s.id for s in await service.list(**first_hour, due_after=NOW)] == [made[1], made[2]]
    assert [s.id for s in await service.list(**first_hour, due_after=NOW + timedelta(minutes=15))] == [made[2]]


@pytest.mark.parametrize(("window", "stored"), [("due", "next_run_at"), ("updated", "updated_at")])
@pytest.mark.parametrize(("after", "before", "field"), [
    (NOW, NOW, "before"),  # empty: the window is {window}_after <= {stored} < {window}_before
    (NOW, NOW.astimezone(timezone(timedelta(hours=-3))), "before"),  # the same instant
    (NOW + timedelta(microseconds=1), NOW, "before"),
    (NOW.replace(tzinfo=None), None, "after"),  # a wall time: which zone's?
    (None, NOW.replace(tzinfo=None), "before"),
    (datetime.max.replace(tzinfo=UTC), None, "after"),  # its millisecond is past the calendar
])
async def test_a_due_or_last_change_window_is_refused_naming_its_field(
        service: SchedulingService, window: str, stored: str, after: datetime | None, before: datetime | None,
        field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        await service.page(**{f"{window}_after": after, f"{window}_before": before})
    assert refused.value.field == f"{window}_{field}"
    if field == "before" and after is not None:
        assert f"{window}_after <= {stored} < {window}_before" in str(refused.value)


async def test_a_last_change_window_between_two_milliseconds_is_no_error(service: SchedulingService) -> None:
    made = (await service.schedule_message(seed_command())).schedule
    assert made.updated_at == NOW
    tick = timedelta(microseconds=1)
    assert (await service.page(updated_after=NOW + tick, updated_before=NOW + 2 * tick)).items == []
    assert [s.id for s in (await service.page(updated_after=NOW - tick, updated_before=NOW + tick)).items] == [made.id]
    assert (await service.page(updated_after=NOW + tick)).items == []


async def test_a_page_gives_the_cursor_of_the_next_one_until_the_last_page(
        service: SchedulingService, clock: FixedClock) -> None:
    made = []
    for minutes in (30, 10, 20, 40, 10, 50, 90):  # two due at once; made 0.4 ms apart: some in one millisecond
        made.append((await service.schedule_message(seed_command(**at(NOW + timedelta(minutes=minutes))))).schedule)
        clock.advance(timedelta(microseconds=400))
    newest = sorted(made, key=lambda s: (whole_millisecond(s.created_at), s.id), reverse=True)
    window = {"due_after": NOW, "due_before": NOW + timedelta(hours=1)}
    soonest = sorted((s for s in made if s.next_run_at < window["due_before"]), key=lambda s: (s.next_run_at, s.id))

    for filters, expected, order in (({}, newest, ListOrder.CREATED), (window, soonest, ListOrder.DUE)):
        pages, after = [], None
        while True:
            page = await service.page(**filters, limit=2, after=after)
            pages.append([s.id for s in page.items])
            if not page.has_more:
                assert page.next_cursor is None
                break
            assert page.next_cursor == ListCursor(order, page.items[-1].created_at if order is ListOrder.CREATED
                                                  else page.items[-1].next_run_at, page.items[-1].id)
            after = page.next_cursor
        assert [i for p in pages for i in p] == [s.id for s in expected], filters
        assert all(len(p) == 2 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 2, pages
    whole = await service.page(**window, limit=len(soonest))  # exactly a page: nothing more, no cursor
    assert (whole.has_more, whole.next_cursor) == (False, None)
    # A cursor's instant is taken to the millisecond, in any offset, as the stores keep it.
    third = newest[2]
    sao_paulo = timezone(timedelta(hours=-3))
    moved = ListCursor(ListOrder.CREATED, (third.created_at + timedelta(microseconds=999)).astimezone(sao_paulo), third.id)
    assert [s.id for s in (await service.page(after=moved)).items] == [s.id for s in newest[3:]]


@pytest.mark.parametrize(("after", "window", "offset", "field"), [
    (ListCursor(ListOrder.DUE, NOW, "a"), {}, 0, "cursor"),  # made in a due-time window, used without one
    (ListCursor(ListOrder.CREATED, NOW, "a"), {"due_after": NOW}, 0, "cursor"),  # and the reverse
    (ListCursor(ListOrder.CREATED, NOW, "a"), {}, 1, "offset"),  # a page after a cursor, or so many from the start
    (ListCursor(ListOrder.DUE, NOW, "a"), {"due_before": NOW}, 3, "offset"),
    (ListCursor(ListOrder.CREATED, NOW.replace(tzinfo=None), "a"), {}, 0, "cursor"),  # a wall time: which zone's?
])
async def test_a_cursor_of_the_other_order_or_with_an_offset_is_refused_naming_its_field(
        service: SchedulingService, after: ListCursor, window: dict[str, datetime], offset: int, field: str) -> None:
    await service.schedule_message(seed_command())
    with pytest.raises(ValidationError) as refused:
        await service.page(**window, after=after, offset=offset)
    assert refused.value.field == field


# -- reschedule ----------------------------------------------------------------------------------


async def test_a_waiting_message_moves_to_another_time(service: SchedulingService, repository: InMemoryScheduleRepository,
                                                       clock: FixedClock, signal: RecordingSignal) -> None:
    scheduled = (await service.schedule_message(seed_command())).schedule
    clock.advance(timedelta(seconds=3))
    moved = await service.reschedule(RescheduleCommand(
        scheduled.id, send_at=datetime.fromisoformat("2030-01-15T10:30:00-03:00"),
        send_at_text="2030-01-15T10:30:00-03:00"))
    assert moved.next_run_at == moved.occurrence == datetime(2030, 1, 15, 13, 30, tzinfo=UTC)
    assert moved.metadata["send_at"] == "2030-01-15T10:30:00-03:00"  # shown as send_at_original
    assert moved.updated_at == NOW + timedelta(seconds=3)
    assert await repository.get(scheduled.id) == moved
    assert signal.notified[-1] == moved.next_run_at
    # Nothing is due at the old time any more.
    assert await repository.claim_due(now=datetime(2030, 1, 15, 12, 0, tzinfo=UTC), owner="r",
                                      lease_for=timedelta(seconds=30), limit=10) == []


async def test_a_time_without_offset_is_read_in_the_given_zone_else_the_schedule_s(
        service: SchedulingService) -> None:
    scheduled = (await service.schedule_message(seed_command())).schedule  # America/Sao_Paulo
    wall = datetime(2030, 1, 15, 14, 0)
    moved = await service.reschedule(RescheduleCommand(scheduled.id, send_at=wall, send_at_text="2030-01-15T14:00:00"))
    assert moved.next_run_at == datetime(2030, 1, 15, 17, 0, tzinfo=UTC) and moved.timezone == "America/Sao_Paulo"
    moved = await service.reschedule(RescheduleCommand(scheduled.id, send_at=wall, send_at_text="2030-01-15T14:00:00",
                                                       timezone="Europe/Lisbon"))
    assert moved.next_run_at == datetime(2030, 1, 15, 14, 0, tzinfo=UTC) and moved.timezone == "Europe/Lisbon"


async def test_a_recurring_schedule_moves_to_another_rule(service: SchedulingService) -> None:
    created = (await service.create(CreateScheduleCommand(
        task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi", "params": []},
        schedule="every day at 09:00", timezone="America/Sao_Paulo"))).schedule
    moved = await service.reschedule(RescheduleCommand(created.id, schedule="every day at 10:30"))
    assert moved.trigger.expression == "daily at 10:30" and moved.metadata["schedule"] == "every day at 10:30"
    assert moved.next_run_at == datetime(2030, 1, 15, 13, 30, tzinfo=UTC)  # 10:30 in São Paulo, today


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"send_at": datetime(2030, 1, 15, 10, 0, tzinfo=UTC), "send_at_text": "2030-01-15T10:00:00Z"},
     "send_at", "in the past"),
    ({"schedule": "every day at 09:00"}, "schedule", "stays one"),
    ({}, "schedule", "nothing to change"),
    ({"timezone": "Europe/London"}, "timezone", r"timezone goes with a new time \(send_at or schedule\)$"),
    ({"task_type": "nope", "payload": {}}, "task.type", "runs whatsapp.template and keeps its task type; to run nope"),
    ({"task_type": "whatsapp.text", "payload": {"to": "5511999999999", "body": "Oi"}}, "task.type",
     "runs whatsapp.template and keeps its task type"),
    ({"send_at": datetime(2030, 1, 15, 13, 0, tzinfo=UTC), "schedule": "once @ 2030-01-15 13:00"},
     "send_at", "either send_at"),
    ({"schedule": "once @ 2030-01-15 13:00", "timezone": "localtime"}, "timezone", "IANA"),
    ({"send_at": datetime(2030, 3, 10, 2, 30), "send_at_text": "2030-03-10T02:30:00", "timezone": "America/New_York"},
     "send_at", "does not exist"),
    ({"send_at": datetime(9999, 12, 31, 23, 59, 59, 999_900, tzinfo=UTC), "send_at_text": "9999-12-31T23:59:59.9999Z"},
     "send_at", "out of range"),  # rounds up past the calendar's end
])
async def test_bad_reschedules_are_refused_and_change_nothing(
        service: SchedulingService, repository: InMemoryScheduleRepository,
        changes: dict[str, object], field: str, message: str) -> None:
    scheduled = (await service.schedule_message(seed_command())).schedule
    with pytest.raises(ValidationError, match=message) as refused:
        await service.reschedule(RescheduleCommand(scheduled.id, **changes))  # type: ignore[arg-type]
    assert refused.value.field == field
    assert await repository.get(scheduled.id) == scheduled


async def test_a_move_past_send_by_names_the_field_that_gave_the_new_time(service: SchedulingService) -> None:
    scheduled = (await service.schedule_message(seed_command(send_by=datetime(2030, 1, 15, 12, 30, tzinfo=UTC)))).schedule
    with pytest.raises(ValidationError, match="send_by") as by_rule:
        await service.reschedule(RescheduleCommand(scheduled.id, schedule="once @ 2030-01-15 10:00"))
    assert by_rule.value.field == "schedule"
    with pytest.raises(ValidationError, match="send_by") as by_time:
        await service.reschedule(RescheduleCommand(scheduled.id, send_at=datetime(2030, 1, 15, 13, 0, tzinfo=UTC),
                                                   send_at_text="2030-01-15T13:00:00Z"))
    assert by_time.value.field == "send_at"


async def test_a_recurring_schedule_is_not_moved_with_send_at(service: SchedulingService) -> None:
    created = (await service.create(CreateScheduleCommand(
        task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi", "params": []},
        schedule="every day at 09:00", timezone="America/Sao_Paulo"))).schedule
    with pytest.raises(ValidationError, match="recurring") as refused:
        await service.reschedule(RescheduleCommand(created.id, send_at=NOW + timedelta(hours=2), send_at_text="x"))
    assert refused.value.field == "send_at"


async def test_a_running_or_finished_schedule_is_not_moved(service: SchedulingService,
                                                           repository: InMemoryScheduleRepository) -> None:
    scheduled = (await service.schedule_message(seed_command(**at(NOW)))).schedule
    later = RescheduleCommand(scheduled.id, schedule="once @ 2030-01-15 13:00")
    await repository.claim_due(now=NOW, owner="r", lease_for=timedelta(seconds=30), limit=10)
    with pytest.raises(ScheduleConflict, match="running"):
        await service.reschedule(later)
    with pytest.raises(ScheduleNotFound):
        await service.reschedule(RescheduleCommand("nope", schedule="once @ 2030-01-15 13:00"))


async def test_a_one_off_waiting_to_retry_and_the_service_s_own_jobs_are_not_moved(
        service: SchedulingService, repository: InMemoryScheduleRepository) -> None:
    scheduled = (await service.schedule_message(seed_command(**at(NOW)))).schedule
    [running] = await repository.claim_due(now=NOW, owner="r", lease_for=timedelta(seconds=30), limit=10)
    assert running.lease is not None
    attempt_id = running.lease.attempt_id
    running.fail(attempt_id=attempt_id, now=NOW, error=ErrorInfo("timeout", "no answer", True),
                 decision=RetryDecision(NOW + timedelta(minutes=1), "retry 2 of 5"))
    assert await repository.save(running, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    with pytest.raises(ScheduleConflict, match="waiting to retry"):
        await service.reschedule(RescheduleCommand(scheduled.id, schedule="once @ 2030-01-15 13:00"))
    own = Schedule.create(id="own", task_type="whatsapp.status", payload={}, trigger=OnceTrigger(NOW),
                          timezone="UTC", first_run_at=NOW, now=NOW)
    await repository.add(own)
    with pytest.raises(ScheduleConflict, match="service's own"):
        await service.reschedule(RescheduleCommand("own", schedule="once @ 2030-01-15 13:00"))
    for task_type in ("whatsapp.template", "whatsapp.status"):  # nor given another task: a 409, not a 422
        with pytest.raises(ScheduleConflict, match="service's own"):
            await service.reschedule(RescheduleCommand("own", task_type=task_type, payload=dict(scheduled.payload)))
    with pytest.raises(ScheduleConflict, match=r"waiting to retry \(attempt 1 failed\).*cancel it and create another"):
        await service.reschedule(RescheduleCommand(scheduled.id, task_type="whatsapp.template",
                                                   payload={**scheduled.payload, "template_name": "outro"}))


async def test_the_service_s_own_jobs_are_not_run_or_paused_by_hand_and_the_refusal_reads_as_a_sentence(
        service: SchedulingService, repository: InMemoryScheduleRepository) -> None:
    """The 409's detail is shown as it is (the API, the dashboard): it once read "it is not run by
    hand by hand"."""
    own = Schedule.create(id="own", task_type="whatsapp.status", payload={}, trigger=OnceTrigger(NOW),
                          timezone="UTC", first_run_at=NOW + timedelta(hours=1), now=NOW)
    await repository.add(own)
    for act, verb in ((service.run_now, "run"), (service.pause, "paused")):
        with pytest.raises(ScheduleConflict) as refused:
            await act("own")
        assert str(refused.value) == ("schedule own is one of the service's own jobs (whatsapp.status); "
                                      f"it is not {verb} by hand")


class ChangesOnFirstRead(InMemoryScheduleRepository):
    """Another writer changes the schedule between the service's first read and its write."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__()
        self.clock = clock
        self.reads = 0

    async def get(self, schedule_id: str) -> Schedule | None:
        found = await super().get(schedule_id)
        self.reads += 1
        if self.reads == 1 and found is not None:
            changed = found.copy()
            changed.updated_at = self.clock.now() + timedelta(milliseconds=1)
            changed.metadata["touched"] = "yes"
            await super().save(changed, expected_status=found.status)
        return found


async def test_a_schedule_that_changed_meanwhile_is_read_again_and_moved(clock: FixedClock,
                                                                         signal: RecordingSignal) -> None:
    repository = ChangesOnFirstRead(clock)
    service = SchedulingService(repository, clock, signal)
    scheduled = (await service.schedule_message(seed_command())).schedule
    repository.reads = 0
    moved = await service.reschedule(RescheduleCommand(scheduled.id, schedule="once @ 2030-01-15 13:00"))
    assert repository.reads == 2
    stored = await repository.get(scheduled.id)
    assert stored is not None and stored.metadata["touched"] == "yes"  # the other writer's change is kept
    assert stored.next_run_at == moved.next_run_at == datetime(2030, 1, 15, 16, 0, tzinfo=UTC)


async def test_changes_within_one_millisecond_are_still_new_versions(
        service: SchedulingService, repository: InMemoryScheduleRepository) -> None:
    """A write conditional on the version read is refused after any other change, even one made
    in the same millisecond (the clock here does not move at all)."""
    scheduled = (await service.schedule_message(seed_command())).schedule
    stale = await repository.get(scheduled.id)
    assert stale is not None
    await service.pause(scheduled.id)
    await service.resume(scheduled.id)  # back to scheduled, as it was read: only the version tells
    current = await repository.get(scheduled.id)
    assert current is not None and current.status is ScheduleStatus.SCHEDULED
    assert current.updated_at == NOW + timedelta(milliseconds=2)
    stale.cancel(now=NOW)
    assert not await repository.save(stale, expected_status=ScheduleStatus.SCHEDULED,
                                     expected_updated_at=scheduled.updated_at)
    assert (await service.cancel(scheduled.id)).status is ScheduleStatus.CANCELLED  # read again, it goes


def text_command(**changes: object) -> CreateScheduleCommand:
    fields: dict[str, object] = dict(
        task_type=WHATSAPP_TEXT, payload={"to": "5511999999999", "kind": "text", "body": "Oi", "params": []},
        schedule="once @ 2030-01-15T12:00:00Z", timezone="UTC")
    fields.update(changes)
    return CreateScheduleCommand(**fields)  # type: ignore[arg-type]


async def test_labels_are_stored_and_listed_by(service: SchedulingService) -> None:
    first = (await service.create(text_command(labels={"order": "123", "kind": "reminder"}))).schedule
    second = (await service.create(text_command(labels={"order": "123", "kind": "receipt"}))).schedule
    assert first.labels == {"order": "123", "kind": "reminder"}
    assert {s.id for s in await service.list(labels={"order": "123"})} == {first.id, second.id}
    assert [s.id for s in await service.list(labels={"order": "123", "kind": "receipt"})] == [second.id]
    with pytest.raises(ValidationError) as refused:
        await service.create(text_command(labels={"order": 123}))
    assert refused.value.field == "labels.order"


async def test_labels_change_alone_without_moving_the_schedule_and_a_same_change_is_no_change(
        service: SchedulingService, repository: InMemoryScheduleRepository, clock: FixedClock) -> None:
    created = (await service.create(text_command(labels={"order": "123"}))).schedule
    clock.advance(timedelta(seconds=1))
    changed = await service.reschedule(RescheduleCommand(created.id, labels={"order": "456", "kind": "x"}))
    assert changed.labels == {"order": "456", "kind": "x"} and await repository.get(created.id) == changed
    assert (changed.next_run_at, changed.occurrence, changed.payload) == (
        created.next_run_at, created.occurrence, created.payload)
    assert changed.events[-1].type == "scheduled" and changed.events[-1].data["labels_changed"] == "true"
    assert [s.id for s in await service.list(labels={"order": "456"})] == [created.id]
    assert await service.list(labels={"order": "123"}) == []
    again = await service.reschedule(RescheduleCommand(created.id, labels={"kind": "x", "order": "456"}))
    assert again == changed  # the labels it has: returned as it is, no event
    same_task = await service.reschedule(RescheduleCommand(created.id, task_type=WHATSAPP_TEXT,
                                                           payload=dict(created.payload), labels={}))
    assert same_task.labels == {} and same_task.payload == created.payload
    assert "task_changed" not in same_task.events[-1].data and same_task.events[-1].data["labels_changed"] == "true"
    with pytest.raises(ValidationError) as refused:
        await service.reschedule(RescheduleCommand(created.id, labels={"order": "a\nb"}))
    assert refused.value.field == "labels.order"
    with pytest.raises(ValidationError, match="alone keep") as zone:
        await service.reschedule(RescheduleCommand(created.id, labels={}, timezone="UTC"))
    assert zone.value.field == "timezone"


async def test_labels_change_with_a_move_in_one_event(service: SchedulingService) -> None:
    created = (await service.create(text_command(labels={"order": "123"}))).schedule
    moved = await service.reschedule(RescheduleCommand(created.id, schedule="once @ 2030-01-15T13:00:00Z",
                                                       labels={"order": "124"}))
    assert moved.labels == {"order": "124"} and moved.next_run_at == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)
    assert moved.events[-1].data["labels_changed"] == "true" and "rescheduled_from" in moved.events[-1].data
    kept = await service.reschedule(RescheduleCommand(created.id, schedule="once @ 2030-01-15T14:00:00Z",
                                                      labels={"order": "124"}))
    assert "labels_changed" not in kept.events[-1].data  # the labels it had: not a change


async def test_labels_change_while_waiting_to_retry_but_not_while_running_nor_once_ended(
        service: SchedulingService, repository: InMemoryScheduleRepository) -> None:
    created = (await service.create(text_command(schedule="once @ 2030-01-15T11:00:00Z"))).schedule
    [running] = await repository.claim_due(now=NOW, owner="r", lease_for=timedelta(seconds=30), limit=10)
    with pytest.raises(ScheduleConflict, match="its run is in progress"):
        await service.reschedule(RescheduleCommand(created.id, labels={"order": "1"}))
    assert running.lease is not None
    attempt_id = running.lease.attempt_id
    running.fail(attempt_id=attempt_id, now=NOW, error=ErrorInfo("timeout", "no answer", True),
                 decision=RetryDecision(NOW + timedelta(minutes=1), "retry 2 of 5"))
    assert await repository.save(running, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    relabelled = await service.reschedule(RescheduleCommand(created.id, labels={"order": "1"}))
    assert relabelled.labels == {"order": "1"} and relabelled.attempts_for_occurrence  # the retry stays
    await service.cancel(created.id)
    with pytest.raises(ScheduleConflict, match="cancelled"):
        await service.reschedule(RescheduleCommand(created.id, labels={"order": "2"}))
    own = Schedule.create(id="own", task_type="whatsapp.status", payload={}, trigger=OnceTrigger(NOW),
                          timezone="UTC", first_run_at=NOW, now=NOW)
    await repository.add(own)
    with pytest.raises(ScheduleConflict, match="service's own"):
        await service.reschedule(RescheduleCommand("own", labels={}))


async def test_schedules_made_one_after_another_have_ids_in_that_order(service: SchedulingService) -> None:
    """The default ids are UUID version 7 (see cronjob.services.schedule_ids): made in later
    milliseconds, they sort after, so a store keeps schedules made together together."""
    made = []
    for _ in range(3):
        made.append((await service.schedule_message(seed_command())).schedule.id)
        time.sleep(0.002)  # the next one in a later millisecond of the real clock the ids read
    assert made == sorted(made) and len(set(made)) == 3
    assert {uuid.UUID(made_id).version for made_id in made} == {7}
