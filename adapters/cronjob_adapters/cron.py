"""CronEvaluator on cronsim (healthchecks.io's parser: DST handled like cron)."""

from __future__ import annotations

from datetime import datetime

from cronsim import CronSim, CronSimError

from cronjob.domain.cron import CronEvaluator
from cronjob.domain.errors import ValidationError


class CronsimEvaluator(CronEvaluator):
    """Five-field cron via ``cronsim``; ``after`` must be aware, in the schedule's zone."""

    def validate(self, expression: str) -> None:
        try:
            CronSim(expression, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValidationError(f"invalid cron expression {expression!r}: {exc}", field="schedule") from exc

    def next_after(self, expression: str, after: datetime) -> datetime:
        return next(CronSim(expression, after))
