"""Back-pressure from a provider's rate limits, remembered per replica."""

from __future__ import annotations

from datetime import datetime, timedelta

from cronjob.domain.message import RATE_LIMIT_SCOPE, DeliveryError
from cronjob.ports.clock import Clock


class RateLimitThrottle:
    """After a rate-limit error, hold back the sends it concerns for a while.

    A rate limit is an error with a ``details["scope"]`` (the sender's classification): scope
    ``recipient`` pauses that recipient only, any other scope pauses every send. The pause
    is the provider's ``Retry-After`` when it gave one, else ``default_pause``. The sends held back
    are deferred (no attempt spent, the provider not called); the failed send itself is retried
    under its retry policy as usual. Each replica keeps its own memory of the limits it hit.
    """

    def __init__(self, clock: Clock, default_pause: timedelta = timedelta(seconds=30)) -> None:
        self._clock = clock
        self._default_pause = default_pause
        self._account_until: datetime | None = None
        self._recipient_until: dict[str, datetime] = {}

    def wait_for(self, recipient: str) -> float:
        """Seconds the next send to ``recipient`` must wait (0: go ahead)."""
        now = self._clock.now()
        until = max(filter(None, (self._account_until, self._recipient_until.get(recipient))), default=None)
        if until is None or until <= now:
            self._recipient_until.pop(recipient, None)
            return 0.0
        return (until - now).total_seconds()

    def record(self, error: DeliveryError, recipient: str) -> None:
        """Remember ``error`` if it is a rate limit."""
        scope = error.details.get(RATE_LIMIT_SCOPE)
        if scope is None:
            return
        pause = timedelta(seconds=error.retry_after_seconds) if error.retry_after_seconds else self._default_pause
        until = self._clock.now() + pause
        if scope != "recipient":
            self._account_until = max(until, self._account_until or until)
        else:
            self._recipient_until[recipient] = until
            if len(self._recipient_until) > 10_000:  # keep the memory bounded: drop the expired
                now = self._clock.now()
                self._recipient_until = {r: u for r, u in self._recipient_until.items() if u > now}
