"""Parses trigger expressions. (Placeholder: one-off only; the full grammar replaces this.)"""

from __future__ import annotations

from datetime import datetime

from cronjob.domain.cron import CronEvaluator
from cronjob.domain.errors import ValidationError
from cronjob.domain.trigger import OnceTrigger, Trigger


def parse_trigger(expression: str, timezone: str, cron: CronEvaluator | None = None) -> Trigger:
    """Parse ``expression`` in ``timezone``."""
    text = expression.strip()
    if text.startswith("once @"):
        return OnceTrigger(datetime.fromisoformat(text.removeprefix("once @").strip()))
    raise ValidationError(f"unknown schedule expression: {expression!r}", field="schedule")
