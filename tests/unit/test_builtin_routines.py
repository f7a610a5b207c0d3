"""The shipped routines run directly, with the in-memory store and a recording follow-up scheduler."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.tasks.builtin_routines import PurgeArgs, ReportArgs, daily_report, purge_runs
from cronjob_adapters.tasks.python import RoutineContext
from tests.support.builders import one_off
from tests.support.clock import FixedClock

NOW = datetime(2030, 3, 2, 8, 0, tzinfo=UTC)


async def test_a_report_whose_e_mail_cannot_be_handed_on_fails_for_good_after_its_webhook() -> None:
    """SMTP unconfigured since the schedule was created: not an internal error retried until it
    dies, but a permanent not_configured, and the webhook half is handed on first."""
    handed: list[tuple[str, dict[str, Any]]] = []

    async def schedule_task(task_type: str, payload: dict[str, Any]) -> str:
        if task_type == "email":
            raise ValidationError("e-mail is not configured: set CRONJOB_SMTP_HOST", field="task")
        handed.append((task_type, payload))
        return "follow-up-1"

    args = ReportArgs(email_to=["ops@example.com"], webhook_url="https://hooks.example/report")
    context = RoutineContext(InMemoryScheduleRepository(), FixedClock(NOW), one_off(NOW), schedule_task)
    with pytest.raises(DeliveryError) as failed:
        await daily_report(args, context)
    assert (failed.value.code, failed.value.retryable) == ("not_configured", False)
    assert [task_type for task_type, _ in handed] == ["http.request"]


def test_report_args_refuse_e_mail_only_when_told_it_is_not_configured() -> None:
    args = {"email_to": ["ops@example.com"]}
    assert ReportArgs.model_validate(args).email_to == ["ops@example.com"]  # no context: run time
    assert ReportArgs.model_validate(args, context={"email_configured": True}).email_to == ["ops@example.com"]
    with pytest.raises(ValueError, match="not configured"):
        ReportArgs.model_validate(args, context={"email_configured": False})


async def test_the_routines_write_their_times_as_utc_instants_to_the_millisecond() -> None:
    clock = FixedClock(NOW + timedelta(microseconds=987_654))  # 08:00:00.987654
    handed: list[dict[str, Any]] = []

    async def schedule_task(task_type: str, payload: dict[str, Any]) -> str:
        handed.append(payload)
        return "follow-up-1"

    context = RoutineContext(InMemoryScheduleRepository(), clock, one_off(NOW), schedule_task)
    purged = await purge_runs(PurgeArgs(older_than_days=1), context)
    assert purged == {"deleted": "0", "before": "2030-03-01T08:00:00.987Z"}
    await daily_report(ReportArgs(webhook_url="https://hooks.example/report"), context)
    assert handed[0]["body"]["generated_at"] == "2030-03-02T08:00:00.987Z"
