"""The trigger parser the stores and services use, with the cron adapter plugged in."""

from __future__ import annotations

from functools import partial

from cronjob.domain.trigger_parser import parse_trigger
from cronjob_adapters.codec import TriggerParser
from cronjob_adapters.cron import CronsimEvaluator


def default_trigger_parser() -> TriggerParser:
    """``parse_trigger`` bound to the cronsim evaluator."""
    return partial(parse_trigger, cron=CronsimEvaluator())
