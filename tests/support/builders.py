"""Builders for test data (plain values and functions, no mocks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cronjob.domain.message import ErrorInfo
from cronjob.domain.retry import RetryDecision
from cronjob.domain.schedule import Schedule
from cronjob.domain.trigger import OnceTrigger

T0 = datetime(2030, 1, 15, 12, 0, 0, 123000, tzinfo=UTC)

#: The seed request of ``POST /schedule-message`` (the API's documented example), due on
#: 2025-06-21 at 14:00 in São Paulo (17:00 UTC). Copy it to change it: ``{**SEED, ...}``.
SEED: dict[str, Any] = {
    "to": "5511999999999",
    "body": "Olá, {{1}}! Seu pedido será entregue em {{2}}.",
    "userId": "abc123",
    "type": "template",
    "templateName": "notificacao_entrega",
    "params": ["Leandro", "2 dias úteis"],
    "send_at": "2025-06-21T14:00:00-03:00",
}


def seed_request(send_at: datetime) -> dict[str, Any]:
    """The seed request due at ``send_at``, written as the seed's clients write it: São Paulo
    time (-03:00) with milliseconds."""
    local = send_at.astimezone(ZoneInfo("America/Sao_Paulo"))
    return {**SEED, "send_at": local.isoformat(timespec="milliseconds")}


def one_off(
    at: datetime = T0,
    *,
    now: datetime | None = None,
    idempotency_key: str | None = None,
    schedule_id: str | None = None,
    task_type: str = "whatsapp.text",
    user_id: str | None = "abc123",
    labels: dict[str, str] | None = None,
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
        user_id=user_id,
        idempotency_key=idempotency_key,
        metadata={"send_at": at.isoformat()},
        labels=labels,
    )


def ended(task_type: str, *, made: datetime, at: datetime, dead: bool = False) -> Schedule:
    """A one-off of ``task_type`` made at ``made`` that ran at ``at`` and succeeded (or, ``dead``,
    failed for good) then: its last change, ``updated_at``, is ``at``."""
    job = one_off(made, now=made, task_type=task_type)
    job.claim(owner="r", attempt_id="a", now=at, until=at + timedelta(seconds=30))
    if dead:
        job.fail(attempt_id="a", now=at, error=ErrorInfo("http_503", "down", True),
                 decision=RetryDecision(None, "attempts exhausted"))
    else:
        job.succeed(attempt_id="a", now=at)
    return job
