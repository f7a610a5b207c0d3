"""CronEvaluator on cronsim (healthchecks.io's parser: DST handled like Debian cron).

What cronsim does across DST, and what this adapter adds:

- Fixed-time expressions (neither the minute nor the hour field starts with ``*``) are matched on
  the wall clock: a time inside a spring-forward gap fires once, when the gap ends; a time inside
  a fall-back fold fires once, on its first pass. cronsim drops the fold of the start time, so
  from an instant in a fold's second pass it can answer an earlier instant (the first pass): the
  adapter steps on until the answer is later than ``after``.
- Expressions with ``*`` in the minute or hour field follow elapsed time, like Debian cron's
  wildcard jobs: skipped wall times do not fire, repeated ones fire on both passes (so
  ``*/15 * * * *`` keeps firing every 15 minutes through a fold). When cronsim rolls the date
  into a gap that starts at midnight it answers the imaginary wall time; the adapter restarts just
  before the gap, which gives the first real match.

cronsim 2.8 reads a one-value range with a step (``1-1/1``) as "from 1, every step" (every month,
for ``0 0 * 1-1/1 *``); the adapter rewrites such a term to its single value first.

In zones whose clocks jump by 30 minutes (Australia/Lord_Howe) cronsim can skip the first half
hour after a gap for a wildcard expression (``* 3 * * *`` from 02:45 on the jump day answers 03:30):
for wildcard expressions the adapter also takes the first matching wall time after ``after``'s,
found on the plain wall clock, when it is real and earlier than cronsim's answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

from cronjob.domain.cron import CronEvaluator
from cronjob.domain.errors import ValidationError

_MAX_STEPS = 1000  # far more than the matches one fold or gap can hold


class CronsimEvaluator(CronEvaluator):
    """Five-field cron via ``cronsim``; ``after`` must be aware, in the schedule's zone."""

    def validate(self, expression: str) -> None:
        fields = _normalise(expression).split()
        if len(fields) != 5:
            raise ValidationError(
                f"invalid cron expression {expression!r}: expected five fields "
                "(minute hour day-of-month month day-of-week)", field="schedule")
        try:
            CronSim(" ".join(fields), datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValidationError(f"invalid cron expression {expression!r}: {exc}", field="schedule") from exc

    def next_after(self, expression: str, after: datetime) -> datetime:
        zone = after.tzinfo
        if zone is None or after.utcoffset() is None:
            raise ValueError("after must be an aware datetime in the schedule's zone")
        expression = _normalise(expression)
        found = self._search(expression, after)
        if _is_wildcard(expression):
            earlier = self._first_real_wall_match(expression, after)
            if earlier is not None and earlier.astimezone(UTC) < found.astimezone(UTC):
                return earlier
        return found

    def _search(self, expression: str, after: datetime) -> datetime:
        """cronsim's answer, made real and later than ``after``."""
        zone = after.tzinfo
        floor = after.astimezone(UTC)
        start = after
        for _ in range(_MAX_STEPS):
            found = self._next(expression, start)
            # Compare in UTC: aware datetimes that share a zone compare by wall time, ignoring fold.
            instant = found.astimezone(UTC)
            real = instant.astimezone(zone)
            if real.replace(tzinfo=None) != found.replace(tzinfo=None):
                start = (instant - timedelta(seconds=1)).astimezone(zone)  # imaginary: restart before the gap
            elif instant <= floor:
                start = real  # the first pass of a fold that ``after`` is already past
            else:
                return real
        raise RuntimeError(f"cron expression {expression!r} found no time after {after.isoformat()}")

    def _first_real_wall_match(self, expression: str, after: datetime) -> datetime | None:
        """The first wall time after ``after``'s that matches, if the clock shows it later than ``after``."""
        zone = after.tzinfo
        wall = self._next(expression, after.replace(tzinfo=None))
        for fold in (0, 1):
            candidate = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            if candidate > after and candidate.astimezone(zone).replace(tzinfo=None) == wall:
                return candidate.astimezone(zone)
        return None

    @staticmethod
    def _next(expression: str, start: datetime) -> datetime:
        try:
            return next(CronSim(expression, start))
        except StopIteration:  # cronsim gives up after 50 years without a match: only near year 9999
            raise OverflowError(f"no match for {expression!r} in a representable date") from None


def _is_wildcard(expression: str) -> bool:
    """Debian cron's wildcard job: the minute or the hour field starts with ``*``."""
    minute, hour, *_ = expression.split()
    return minute.startswith("*") or hour.startswith("*")


def _normalise(expression: str) -> str:
    """``expression`` with single spaces, upper case, and every ``a-a/n`` term written ``a``."""
    fields = []
    for spec in expression.upper().split():
        terms = []
        for term in spec.split(","):
            span, slash, _step = term.partition("/")
            low, dash, high = span.partition("-")
            terms.append(low if slash and dash and low == high else term)
        fields.append(",".join(terms))
    return " ".join(fields)
