"""A schedule's own retry policy, from a request's ``retry`` and its task type's default."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from cronjob.domain.errors import ValidationError
from cronjob.domain.retry import RetryPolicy

from cronjob_adapters.tasks.registry import TaskRegistry
from cronjob_adapters.web.schemas import RetryRequest


def schedule_retry_policy(retry: RetryRequest | None, registry: TaskRegistry, task_type: str) -> RetryPolicy | None:
    """The schedule's own retry policy: what ``retry`` gives, its task type's default for the rest
    (None without ``retry``). Raises :class:`ValidationError` naming the field the request gave
    when the result cannot work: a delay that clashes with the type's default it did not give, or
    a first delay longer than the type's maximum age (``max_age_seconds``), past which no retry
    starts, so that most of its retries would be given up at once."""
    if retry is None:
        return None
    found = registry.get(task_type)
    default = found.default_retry if found is not None else RetryPolicy()
    initial = (default.initial_delay if retry.initial_delay_seconds is None
               else timedelta(seconds=retry.initial_delay_seconds))
    cap = default.max_delay if retry.max_delay_seconds is None else timedelta(seconds=retry.max_delay_seconds)
    if retry.initial_delay_seconds is not None:
        if initial > default.max_age:
            raise ValidationError(
                f"initial_delay_seconds ({_seconds(initial)}) is longer than the {task_type} retries' maximum "
                f"age ({_seconds(default.max_age)}, max_age_seconds): no retry starts later than that after the "
                "first attempt",
                field="retry.initial_delay_seconds",
            )
        if retry.max_delay_seconds is None and initial > cap:
            raise ValidationError(
                f"initial_delay_seconds ({_seconds(initial)}) is above the {task_type} default max_delay_seconds "
                f"({_seconds(cap)}): give a max_delay_seconds at least as long",
                field="retry.initial_delay_seconds",
            )
    if retry.max_delay_seconds is not None and cap < initial:
        given = "" if retry.initial_delay_seconds is not None else f"the {task_type} default "
        raise ValidationError(
            f"max_delay_seconds ({_seconds(cap)}) is below {given}initial_delay_seconds ({_seconds(initial)})",
            field="retry.max_delay_seconds",
        )
    given_fields: dict[str, object] = {"initial_delay": initial, "max_delay": cap}
    if retry.max_attempts is not None:
        given_fields["max_attempts"] = retry.max_attempts
    return replace(default, **given_fields)


def _seconds(delay: timedelta) -> str:
    return f"{delay.total_seconds():g} s"
