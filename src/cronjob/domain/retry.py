"""RetryPolicy: given an attempt and its error, retry at a time or give up. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from cronjob.domain.errors import ValidationError


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt: ``retry_at`` is None when the policy gives up."""

    retry_at: datetime | None
    reason: str

    @property
    def gives_up(self) -> bool:
        return self.retry_at is None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, a cap, a maximum number of attempts and a maximum age.

    The delay before attempt ``n + 1`` (after ``n`` attempts, n >= 1) is
    ``jitter * min(max_delay, initial_delay * multiplier ** (n - 1))`` where ``jitter`` is a
    number in [0, 1] supplied by the caller (full jitter; pass 1.0 for none), but never less
    than ``min_delay`` and never less than a provider's ``retry_after``. The policy gives up
    when the error is permanent, when ``max_attempts`` attempts were made, or when the retry
    would start later than ``max_age`` after the first attempt.
    """

    max_attempts: int = 5
    initial_delay: timedelta = timedelta(seconds=10)
    max_delay: timedelta = timedelta(minutes=10)
    multiplier: float = 2.0
    max_age: timedelta = timedelta(hours=24)
    min_delay: timedelta = timedelta(seconds=1)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValidationError("max_attempts must be at least 1", field="retry.max_attempts")
        if self.initial_delay < timedelta(0):
            raise ValidationError("initial delay cannot be negative", field="retry.initial_delay_seconds")
        if self.max_delay < self.initial_delay:
            raise ValidationError(
                "max_delay_seconds must not be below initial_delay_seconds", field="retry.max_delay_seconds"
            )
        if self.multiplier < 1:
            raise ValidationError("multiplier must be at least 1", field="retry.multiplier")

    def backoff(self, attempts_made: int, jitter: float = 1.0) -> timedelta:
        """The delay after ``attempts_made`` attempts, before the floor of ``min_delay``."""
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")
        exponent = max(attempts_made - 1, 0)
        cap = self.max_delay.total_seconds()
        raw = self.initial_delay.total_seconds()
        if exponent and 0 < raw < cap and self.multiplier > 1:
            # Compare in the exponent's domain first: multiplier ** exponent overflows long before it
            # matters, and a step-by-step loop would take ``exponent`` steps when the growth is slow.
            if exponent * math.log(self.multiplier) >= math.log(cap / raw):
                raw = cap
            else:
                raw *= self.multiplier**exponent
        return timedelta(seconds=min(raw, cap) * jitter)

    def decide(
        self,
        *,
        attempts_made: int,
        retryable: bool,
        first_attempt_at: datetime,
        now: datetime,
        jitter: float = 1.0,
        retry_after: timedelta | None = None,
    ) -> RetryDecision:
        """Decide after the ``attempts_made``-th attempt failed at ``now``."""
        if not retryable:
            return RetryDecision(None, "permanent error")
        if attempts_made >= self.max_attempts:
            return RetryDecision(None, f"gave up after {attempts_made} attempt(s)")
        delay = max(self.backoff(attempts_made, jitter), self.min_delay, retry_after or timedelta(0))
        retry_at = now + delay
        if retry_at - first_attempt_at > self.max_age:
            return RetryDecision(None, f"retry would exceed the maximum age of {self.max_age}")
        return RetryDecision(retry_at, f"retry {attempts_made + 1} of {self.max_attempts}")
