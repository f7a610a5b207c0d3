"""CronEvaluator on cronsim (healthchecks.io's parser: DST handled like Debian cron).

What cronsim does across DST, and what this adapter adds:

- Fixed-time expressions (neither the minute nor the hour field starts with ``*``) are matched on
  the wall clock: a time inside a spring-forward gap fires once, when the gap ends; a time inside
  a fall-back fold fires once, on its first pass. cronsim drops the fold of the start time, so
  from an instant in a fold's second pass it can answer an earlier instant (the first pass): the
  adapter steps on until the answer is later than ``after``.
- Expressions with ``*`` in the minute or hour field follow elapsed time, like Debian cron's
  wildcard jobs: skipped wall times do not fire, repeated ones fire on both passes (so
  ``*/15 * * * *`` keeps firing every 15 minutes through a fold). cronsim steps such expressions
  hour by hour in UTC, which misses or loops where a change of offset is not a whole number of
  hours from the hour (Pacific/Chatham at +12:45/+13:45: ``* 2 * * *`` lost the second pass of
  02:45-02:59, ``*/5 3 * * *`` found no time after 03:40 on the fold day; Australia/Lord_Howe:
  ``50 * * * *`` lost 01:50 of the second pass, ``* 3 * * *`` from 02:45 on the jump day answered
  03:30). So the adapter matches them itself, on the plain wall clock of one stretch of constant
  UTC offset at a time (cronsim without a zone does the matching): the first match on this
  stretch's clock after ``after``'s, unless the offset changes before it, in which case the search
  goes on from that change on the clock of the next stretch.

cronsim 2.8 reads a one-value range with a step (``1-1/1``) as "from 1, every step" (every month,
for ``0 0 * 1-1/1 *``); the adapter rewrites such a term to its single value first.

cronsim refuses a day-of-month that none of the expression's months has (``0 0 31 2 *``; unless a
day-of-week is named too, which cron then matches instead) with the message of a malformed field,
"Bad day-of-month": the adapter says that such a rule never fires, and for a malformed field which
one it is, what it holds and what it takes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from cronsim import CronSim, CronSimError

from cronjob.domain.cron import CronEvaluator
from cronjob.domain.errors import ValidationError

_MAX_STEPS = 1000  # far more than the matches one fold or gap can hold
#: How far apart the offset is sampled when looking for a change of it: no zone of the tz database
#: changes its offset twice within a day (checked against every zone of tzdata 2025b and 2026f), so
#: none goes unseen between two samples.
_OFFSET_SAMPLE = timedelta(hours=12)
_ONE_MICROSECOND = timedelta(microseconds=1)


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
            raise ValidationError(_refusal(expression, fields, exc), field="schedule") from exc

    def next_after(self, expression: str, after: datetime) -> datetime:
        zone = after.tzinfo
        if zone is None or after.utcoffset() is None:
            raise ValueError("after must be an aware datetime in the schedule's zone")
        expression = _normalise(expression)
        if _is_wildcard(expression):
            return self._elapsed_match(expression, after)
        return self._search(expression, after)

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

    def _elapsed_match(self, expression: str, after: datetime) -> datetime:
        """The first instant later than ``after`` whose wall clock matches (a wildcard job's)."""
        zone = after.tzinfo
        assert zone is not None
        bound = after.astimezone(UTC)  # the answer is later than this instant
        offset = _offset(bound, zone)  # the offset of the stretch of time just after ``bound``
        for _ in range(_MAX_STEPS):
            wall = self._next(expression, (bound + offset).replace(tzinfo=None))
            candidate = wall.replace(tzinfo=UTC) - offset
            change = _offset_change(zone, bound, candidate, offset)
            if change is None:
                return candidate.astimezone(zone)
            bound, offset = change - _ONE_MICROSECOND, _offset(change, zone)
        raise RuntimeError(f"cron expression {expression!r} found no time after {after.isoformat()}")

    @staticmethod
    def _next(expression: str, start: datetime) -> datetime:
        try:
            return next(CronSim(expression, start))
        except StopIteration:  # cronsim gives up after 50 years without a match: only near year 9999
            raise OverflowError(f"no match for {expression!r} in a representable date") from None


#: What each field takes, by cronsim's name of it (its "Bad <name>").
_FIELDS = {
    "minute": (0, "0-59"),
    "hour": (1, "0-23"),
    "day-of-month": (2, "1-31, L or LW"),
    "month": (3, "1-12 or JAN-DEC"),
    "day-of-week": (4, "0-7 or SUN-SAT, nL or n#k"),
}


def _refusal(expression: str, fields: list[str], error: CronSimError) -> str:
    """Why cronsim refused ``expression`` (``fields``: its five, normalised), for a person, quoting
    the fields as they were written."""
    name = str(error).removeprefix("Bad ")
    if name not in _FIELDS:
        return f"invalid cron expression {expression!r}: {error}"
    index, takes = _FIELDS[name]
    written = expression.split()
    if name == "day-of-month" and _parses([*fields[:3], "*", fields[4]]):
        return (f"cron expression {expression!r} never fires: none of its months ({written[3]}) has a day "
                f"{written[2]}")
    return (f"invalid cron expression {expression!r}: bad {name} field {written[index]!r} "
            f"(it takes {takes}; lists, ranges and steps of them)")


def _parses(fields: list[str]) -> bool:
    """Whether cronsim takes the expression of ``fields``."""
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1))
    except CronSimError:
        return False
    return True


def _offset(instant: datetime, zone: tzinfo) -> timedelta:
    """The UTC offset of ``zone`` at ``instant``."""
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _offset_change(zone: tzinfo, start: datetime, end: datetime, offset: timedelta) -> datetime | None:
    """The first instant in (``start``, ``end``] at which ``zone``'s offset is not ``offset``
    (the offset just after ``start``), to the microsecond; None when it stays ``offset``."""
    low = start
    while low < end:
        high = min(low + _OFFSET_SAMPLE, end)
        if _offset(high, zone) != offset:
            while high - low > _ONE_MICROSECOND:  # bisect: ``low`` has the offset, ``high`` not
                middle = low + (high - low) // 2
                if _offset(middle, zone) == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


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
