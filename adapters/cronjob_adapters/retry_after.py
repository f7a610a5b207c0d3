"""HTTP retry rules shared by every adapter that talks HTTP: retryable statuses, ``Retry-After``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Longer waits are capped (timedelta overflows on absurd values; a week is already a lot).
MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600.0


def retryable_status(status: int) -> bool:
    """Whether an HTTP answer with ``status`` is worth trying again later: 408, 429 and 5xx."""
    return status in (408, 429) or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None;
    never negative, at most :data:`MAX_RETRY_AFTER_SECONDS`."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
