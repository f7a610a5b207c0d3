"""Cron evaluation port: the ABC lives in the domain, which holds cron triggers; adapters implement it."""

from cronjob.domain.cron import CronEvaluator

__all__ = ["CronEvaluator"]
