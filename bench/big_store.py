"""A realistic SQLite store of N schedules, written straight into the file (not through the API).

The rows are the adapter's own (``SqliteScheduleRepository._row`` of schedules driven through
their state machine, as the engine bench writes its rows), inserted in bulk, so the label index
is filled by the store's own triggers. The mix is a WhatsApp customer's after 90 days:

- 85% ``succeeded`` one-off ``whatsapp.template`` messages created over the last 90 days, 2%
  ``dead``, 1% ``missed``, 1% ``cancelled``, 1% ``scheduled`` in the next 7 days, 0.3% recurring
  (``every 1 hour``, due within the hour);
- ~10% the service's own ``webhook.delivery`` jobs of the last 7 days (what its retention keeps),
  succeeded, a few dead;
- 20,000 ``userId``s, 10% of the messages from one account (``acme``), 40% from 100 large users;
  a ``campaign`` label on every message (10% ``black-friday``, the rest over 400 campaigns) and
  an ``order`` label on half; an idempotency key on 70%.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronjob.domain.message import ErrorInfo
from cronjob.domain.recurring import IntervalTrigger
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import Schedule
from cronjob.domain.trigger import OnceTrigger

from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_adapters.tasks.whatsapp import whatsapp_preparer
from cronjob_bootstrap.triggers import default_trigger_parser

TEMPLATE = "whatsapp.template"
DELIVERY = "webhook.delivery"
CAMPAIGNS = 400
USERS = 20_000
BIG_USERS = 100
_PREPARE = whatsapp_preparer("template", "pt_BR")  # what POST /v1/schedules stores


def _user(rng: random.Random) -> str:
    roll = rng.random()
    return "acme" if roll < 0.1 else f"user-{rng.randrange(BIG_USERS)}" if roll < 0.5 else f"user-{rng.randrange(USERS)}"


def _message(rng: random.Random, i: int, created: datetime, due: datetime, *, recurring: bool = False) -> Schedule:
    labels = {"campaign": "black-friday" if rng.random() < 0.1 else f"cmp-{rng.randrange(CAMPAIGNS)}"}
    if i % 2:
        labels["order"] = f"o-{i}"
    trigger = IntervalTrigger(timedelta(hours=1), due) if recurring else OnceTrigger(due)
    return Schedule.create(
        id=uuid.uuid4().hex, task_type=TEMPLATE,
        payload=_PREPARE({"to": f"55119{i % 10**8:08d}", "body": "Olá, {{1}}! Seu pedido será entregue em {{2}}.",
                          "templateName": "notificacao_entrega", "params": [f"Cliente {i}", "2 dias úteis"]}),
        trigger=trigger, timezone="America/Sao_Paulo", first_run_at=due, now=created, user_id=_user(rng),
        idempotency_key=f"shop:{uuid.uuid4().hex}" if rng.random() < 0.7 else None,
        metadata={"send_at": due.isoformat()}, labels=labels)


def _delivery(rng: random.Random, created: datetime) -> Schedule:
    return Schedule.create(
        id=uuid.uuid4().hex, task_type=DELIVERY,
        payload={"url": "https://hooks.example.com/cronjob", "schedule_id": uuid.uuid4().hex,
                 "event": {"id": uuid.uuid4().hex, "type": "succeeded", "schedule_id": uuid.uuid4().hex,
                           "at": created.isoformat(), "status": "succeeded", "data": {}, "labels": {}}},
        trigger=OnceTrigger(created), timezone="UTC", first_run_at=created, now=created,
        idempotency_key=f"{uuid.uuid4().hex}:https://hooks.example.com/cronjob",
        metadata={"event_type": "succeeded"})


def _run(schedule: Schedule, at: datetime, outcome: str) -> None:
    """Drive ``schedule`` through a run at ``at`` ending in ``outcome``."""
    attempt = uuid.uuid4().hex
    schedule.claim(owner="replica-1", attempt_id=attempt, now=at, until=at + timedelta(seconds=30))
    if outcome == "missed":
        schedule.miss(attempt_id=attempt, now=at, reason="later than its misfire grace")
        return
    schedule.mark_started(attempt_id=attempt, now=at)
    done = at + timedelta(milliseconds=rng_ms(schedule.id))
    if outcome == "succeeded":
        schedule.succeed(attempt_id=attempt, now=done, provider_message_id=f"wamid.{uuid.uuid4().hex}")
    else:
        schedule.fail(attempt_id=attempt, now=done, error=ErrorInfo("131026", "Message undeliverable"),
                      decision=RetryDecision(None, "not retryable"))


def rng_ms(schedule_id: str) -> int:
    return 50 + int(schedule_id[:3], 16) % 400


def schedules(n: int, now: datetime, seed: int = 7) -> Iterator[Schedule]:
    """The ``n`` schedules of the mix, in no particular order."""
    rng = random.Random(seed)
    for i in range(n):
        roll = rng.random()
        if roll < 0.10:
            created = now - timedelta(seconds=rng.uniform(60, 7 * 86400))
            job = _delivery(rng, created)
            _run(job, created + timedelta(seconds=1), "dead" if rng.random() < 0.005 else "succeeded")
            yield job
            continue
        if roll < 0.11:  # due in the next 7 days
            created = now - timedelta(seconds=rng.uniform(60, 86400))
            yield _message(rng, i, created, now + timedelta(seconds=rng.uniform(60, 7 * 86400)))
            continue
        if roll < 0.113:  # recurring, hourly
            created = now - timedelta(days=rng.uniform(1, 90))
            yield _message(rng, i, created, now + timedelta(seconds=rng.uniform(60, 3600)), recurring=True)
            continue
        created = now - timedelta(seconds=rng.uniform(3600, 90 * 86400))
        job = _message(rng, i, created, created + timedelta(minutes=rng.uniform(1, 60)))
        if roll < 0.123:
            job.cancel(now=created + timedelta(minutes=1))
        else:
            outcome = "dead" if roll < 0.143 else "missed" if roll < 0.153 else "succeeded"
            _run(job, job.next_run_at, outcome)  # type: ignore[arg-type]
        yield job


async def _schema(path: Path, codec: ScheduleCodec) -> None:
    repository = SqliteScheduleRepository(path, codec)
    await repository.initialize()
    await repository.close()


def fill(path: Path, n: int, now: datetime | None = None, chunk: int = 5000) -> float:
    """Write a store of ``n`` schedules at ``path`` (made with the adapter's schema); the seconds it took."""
    started = time.perf_counter()
    codec = ScheduleCodec(default_trigger_parser())
    asyncio.run(_schema(path, codec))
    encoder = SqliteScheduleRepository(path, codec)
    now = now or datetime.now(UTC)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB: the indexes' random inserts stay in memory
    statement: str | None = None
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(statement, rows)  # type: ignore[arg-type]
        conn.execute("COMMIT")
        rows.clear()

    for k, schedule in enumerate(schedules(n, now), 1):
        row = encoder._row(schedule)  # noqa: SLF001
        if statement is None:
            statement = (f"INSERT INTO schedules ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})")
        rows.append(row)
        if len(rows) >= chunk:
            flush()
            print(f"\r{k:,} of {n:,}", end="", file=sys.stderr)
    if rows:
        flush()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(file=sys.stderr)
    return time.perf_counter() - started


if __name__ == "__main__":
    target, count = Path(sys.argv[1]), int(sys.argv[2])
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"filled {count:,} in {fill(target, count):.0f} s")
