"""Builders for test data (plain functions, no mocks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from cronjob.domain.schedule import Schedule
from cronjob.domain.trigger import OnceTrigger

T0 = datetime(2030, 1, 15, 12, 0, 0, 123000, tzinfo=UTC)


def one_off(
    at: datetime = T0,
    *,
    now: datetime | None = None,
    idempotency_key: str | None = None,
    schedule_id: str | None = None,
    task_type: str = "whatsapp.text",
) -> Schedule:
    """A one-off schedule due at ``at`` (created a minute before unless ``now`` is given)."""
    return Schedule.create(
        id=schedule_id or uuid.uuid4().hex,
        task_type=task_type,
        payload={"to": "5511999999999", "body": "Olá", "params": []},
        trigger=OnceTrigger(at),
        timezone="America/Sao_Paulo",
        first_run_at=at,
        now=now or (at - timedelta(minutes=1)),
        user_id="abc123",
        idempotency_key=idempotency_key,
        metadata={"send_at": at.isoformat()},
    )
