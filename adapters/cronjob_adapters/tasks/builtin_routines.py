"""The routines cronjob ships: purge old run records, and a daily report by e-mail or webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cronjob.domain.errors import ValidationError
from cronjob.domain.instants import instant_text
from cronjob.domain.message import DeliveryError
from cronjob.domain.schedule import ScheduleStatus
from cronjob.services.retention import delete_in_pages

from cronjob_adapters.tasks.email_payload import Address
from cronjob_adapters.tasks.python import RoutineContext, RoutineRegistry, routine, routines
from cronjob_adapters.tasks.ssrf import HttpUrl



class PurgeArgs(BaseModel):
    """Delete finished schedules (and so their attempts and events) older than ``older_than_days``."""

    model_config = ConfigDict(extra="forbid")

    older_than_days: Annotated[int, Field(default=30, strict=True, ge=1, le=3650, description="Age by last update.")] = 30
    statuses: Annotated[list[Literal["succeeded", "dead", "missed", "cancelled", "unknown"]], Field(
        default_factory=lambda: ["succeeded", "cancelled", "missed"], min_length=1,
        description="Which finished statuses to purge (dead and unknown are kept by default for operators).")]
    limit: Annotated[int, Field(default=10_000, strict=True, ge=1, le=1_000_000, description="At most this many per run.")] = 10_000


class ReportArgs(BaseModel):
    """Counts of schedules by status and task type, sent by e-mail and/or POSTed to a webhook."""

    # The example needs no SMTP server (``GET /v1/routines/cronjob.daily_report`` offers it).
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"webhook_url": "https://hooks.example.com/report"}]})

    email_to: Annotated[list[Address], Field(default_factory=list, max_length=50, description="Recipients.")]
    webhook_url: Annotated[HttpUrl | None, Field(default=None, description="Receives the report as JSON (POST).")] = None

    @field_validator("email_to")
    @classmethod
    def _email_is_configured(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # Known only when scheduling (the context says what the deployment offers): without an
        # SMTP server every run would fail, so the schedule is refused now.
        if value and info.context is not None and not info.context.get("email_configured", True):
            raise ValueError("e-mail is not configured on this server (CRONJOB_SMTP_HOST, CRONJOB_SMTP_FROM); "
                             "use webhook_url")
        return value

    @model_validator(mode="after")
    def _somewhere(self) -> ReportArgs:
        if not self.email_to and not self.webhook_url:
            raise ValueError("give email_to or webhook_url (or both)")
        return self


async def purge_runs(args: PurgeArgs, context: RoutineContext) -> dict[str, str]:
    """Delete finished schedules not updated for ``older_than_days``, at most ``limit``.

    500 per store call, as the retention of the service's own jobs deletes (``delete_in_pages``):
    one call of 1,000,000 would be one SQLite transaction holding the write lock (or one MongoDB
    delete) for minutes, every creation and claim meanwhile waiting for it until it fails."""
    before = context.clock.now() - timedelta(days=args.older_than_days)
    deleted = await delete_in_pages(context.repository, before=before,
                                    statuses=[ScheduleStatus(s) for s in args.statuses], limit=args.limit)
    return {"deleted": str(deleted), "before": instant_text(before)}


async def daily_report(args: ReportArgs, context: RoutineContext) -> dict[str, str]:
    """Count schedules by status and type and hand the report to the e-mail and/or webhook tasks."""
    if context.schedule_task is None:
        raise DeliveryError("not_configured", "this runtime cannot schedule follow-up tasks", retryable=False)
    counts = await context.repository.count_by_status_and_type()
    rows = sorted(((status.value, task_type, n) for (status, task_type), n in counts.items()),
                  key=lambda r: (r[1], r[0]))
    now = context.clock.now()
    lines = [f"{task_type:<20} {status:<10} {n:>8}" for status, task_type, n in rows] or ["(no schedules)"]
    text = f"cronjob report {now:%Y-%m-%d %H:%M} UTC\n\n" + "\n".join(lines) + f"\n\ntotal {sum(counts.values())}\n"
    sent: dict[str, str] = {"total": str(sum(counts.values()))}
    try:
        if args.webhook_url:
            body = {"generated_at": instant_text(now), "counts": [
                {"status": s, "task_type": t, "count": n} for s, t, n in rows]}
            sent["webhook_schedule"] = await context.schedule_task("http.request", {
                "method": "POST", "url": args.webhook_url, "body": body})
        if args.email_to:
            sent["email_schedule"] = await context.schedule_task("email", {
                "to": args.email_to, "subject": f"cronjob report {now:%Y-%m-%d}", "text": text})
    except ValidationError as exc:  # e.g. SMTP unconfigured since the schedule was created
        raise DeliveryError("not_configured", f"the report could not be handed on: {exc.message}",
                            retryable=False) from None
    return sent


def register_builtin_routines(registry: RoutineRegistry = routines) -> RoutineRegistry:
    """Register ``cronjob.purge_runs`` and ``cronjob.daily_report`` (idempotent)."""
    routine("cronjob.purge_runs", PurgeArgs, registry=registry)(purge_runs)  # type: ignore[arg-type]
    routine("cronjob.daily_report", ReportArgs, registry=registry)(daily_report)  # type: ignore[arg-type]
    return registry
