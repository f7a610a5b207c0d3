"""The task types of this deployment, built from settings: the only place that lists them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError
from cronjob.domain.retry import RetryPolicy
from cronjob.domain.schedule import Schedule
from cronjob.ports.clock import Clock
from cronjob.ports.repository import ScheduleRepository
from cronjob.ports.tasks import TaskHandler, TaskOutcome
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.commands import CreateScheduleCommand
from cronjob.services.scheduling import SchedulingService
from cronjob_adapters.tasks.email import EmailHandler, SmtpSettings
from cronjob_adapters.tasks.email_payload import EmailPayload, prepare_email_payload
from cronjob_adapters.tasks.http_payload import HttpRequestPayload
from cronjob_adapters.tasks.http_request import HttpRequestHandler
from cronjob_adapters.tasks.python import (
    PythonPayload,
    PythonTaskHandler,
    RoutineRegistry,
    TaskScheduler,
    python_preparer,
)
from cronjob_adapters.tasks.registry import TaskRegistry, TaskType
from cronjob_adapters.tasks.whatsapp import WhatsAppTemplatePayload, WhatsAppTextPayload, whatsapp_preparer
from cronjob_bootstrap.settings import Settings

#: Defaults per type (a schedule's own ``retry`` wins). Messages: rate limits clear in minutes.
WHATSAPP_RETRY = RetryPolicy(max_attempts=5, initial_delay=timedelta(seconds=10), max_delay=timedelta(minutes=10),
                             max_age=timedelta(hours=24))
HTTP_RETRY = RetryPolicy(max_attempts=6, initial_delay=timedelta(seconds=5), max_delay=timedelta(minutes=15),
                         max_age=timedelta(hours=12))
EMAIL_RETRY = RetryPolicy(max_attempts=8, initial_delay=timedelta(seconds=30), max_delay=timedelta(hours=1),
                          max_age=timedelta(days=2))
PYTHON_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=30), max_delay=timedelta(minutes=10),
                           max_age=timedelta(hours=6))


class _EmailDisabled(TaskHandler):
    """Stands in for the e-mail handler when no SMTP server is configured."""

    task_type = "email"

    async def run(self, schedule: Schedule) -> TaskOutcome:
        raise DeliveryError("not_configured", "e-mail is not configured: set CRONJOB_SMTP_HOST and CRONJOB_SMTP_FROM",
                            retryable=False)


#: The task types :func:`build_registry` makes, by name (a test holds the two together): known
#: before the registry is built, to check the settings that name task types.
TASK_TYPES = ("whatsapp.template", "whatsapp.text", "http.request", "email", "python")


def _email_disabled(payload: dict[str, Any]) -> dict[str, Any]:
    raise ValidationError("e-mail is not configured on this server (CRONJOB_SMTP_HOST, CRONJOB_SMTP_FROM)",
                          field="type")  # the scheduling service names it task.type


def smtp_settings(settings: Settings) -> SmtpSettings | None:
    """The SMTP settings of the email task, or None when e-mail is not configured."""
    if not settings.smtp_host or not settings.smtp_from:
        return None
    return SmtpSettings(
        host=settings.smtp_host, port=settings.smtp_port, from_address=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls, use_tls=settings.smtp_use_tls, timeout_seconds=settings.smtp_timeout_seconds,
    )


def build_registry(settings: Settings, whatsapp: WhatsAppMessageHandler, http: HttpRequestHandler,
                   repository: ScheduleRepository, clock: Clock, routines: RoutineRegistry,
                   schedule_task: TaskScheduler | None = None) -> TaskRegistry:
    """Every task type, with its schema, scheduling-time check, handler and retry defaults.
    ``http`` is the SSRF-guarded HTTP sender (shared with the status webhooks); ``routines`` are
    what the ``python`` type runs."""
    language = settings.whatsapp_language
    smtp = smtp_settings(settings)
    python = PythonTaskHandler(routines, repository, clock, schedule_task)
    return TaskRegistry([
        TaskType("whatsapp.template", WhatsAppTemplatePayload.VERSION, "A WhatsApp template message.",
                 WhatsAppTemplatePayload, whatsapp_preparer("template", language), whatsapp, WHATSAPP_RETRY),
        TaskType("whatsapp.text", WhatsAppTextPayload.VERSION, "A WhatsApp text message.",
                 WhatsAppTextPayload, whatsapp_preparer("text", language), whatsapp, WHATSAPP_RETRY),
        TaskType("http.request", HttpRequestPayload.VERSION,
                 "An HTTP call to an external service (syncs, alerts), SSRF-guarded.",
                 HttpRequestPayload, http.prepare, http, HTTP_RETRY),
        TaskType("email", EmailPayload.VERSION, "An e-mail over SMTP.", EmailPayload,
                 prepare_email_payload if smtp else _email_disabled,
                 EmailHandler(smtp) if smtp else _EmailDisabled(), EMAIL_RETRY),
        TaskType("python", PythonPayload.VERSION, "A routine registered in code by name.",
                 PythonPayload, python_preparer(routines, {"email_configured": smtp is not None}), python,
                 PYTHON_RETRY),
    ])


def follow_up_scheduler(scheduling: Callable[[], SchedulingService], clock: Clock, timezone: str) -> TaskScheduler:
    """What routines use to hand follow-up work to the engine: a task due now. ``scheduling`` is
    resolved at call time (the service itself depends on the registry)."""

    async def schedule_task(task_type: str, payload: dict[str, Any]) -> str:
        outcome = await scheduling().create(CreateScheduleCommand(
            task_type=task_type, payload=payload, schedule=f"once @ {clock.now().isoformat()}", timezone=timezone))
        return outcome.schedule.id

    return schedule_task
