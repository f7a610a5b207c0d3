"""IANA time zones: lookup with a clear error, wall clock <-> instant with DST made explicit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronjob.domain.errors import ValidationError

#: Why a date-time was refused whose instant falls past the calendar (9999-12-31T23:00-03:00 is
#: in the year 10000 in UTC).
OUT_OF_RANGE = "out of range: the instant must fall within the years 1 to 9999 in UTC"

DEFAULT_TIMEZONE = "America/Sao_Paulo"
ONE_SECOND = timedelta(seconds=1)


#: Files of a tz database that are not IANA zone names: ``localtime`` is the host's own zone (so
#: one request would mean different instants on differently configured replicas), ``Factory`` a
#: placeholder, ``posixrules`` a template; ``posix/`` and ``right/`` are copies of the database
#: (``right/`` counting leap seconds).
_NOT_IANA = frozenset({"localtime", "posixrules", "factory"})
_NOT_IANA_PREFIXES = ("posix/", "right/")


def iana_zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The zone a request names: :func:`load_zone`, and an IANA name (not a file of the tz
    database that is none, see ``_NOT_IANA``). Stored schedules are read with :func:`load_zone`,
    which takes what an earlier version accepted."""
    if isinstance(name, str) and (name.lower() in _NOT_IANA or name.lower().startswith(_NOT_IANA_PREFIXES)):
        raise ValidationError(f"{name!r} is not an IANA time zone name (expected e.g. America/Sao_Paulo)",
                              field=field)
    return load_zone(name, field)


def load_zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The zone called ``name`` in the tz database, or ValidationError."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("a time zone name is required (IANA, e.g. America/Sao_Paulo)", field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValidationError(f"unknown time zone {name!r} (expected an IANA name such as "
                              "America/Sao_Paulo)", field=field) from exc


def wall_clock(instant: datetime, zone: ZoneInfo) -> datetime:
    """What a clock in ``zone`` reads at ``instant`` (naive)."""
    return instant.astimezone(zone).replace(tzinfo=None)


def wall_time_exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether the clocks in ``zone`` ever read ``wall`` (False inside a spring-forward gap)."""
    return wall_clock(wall.replace(tzinfo=zone, fold=0).astimezone(UTC), zone) == wall


def first_instant_at(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the clock in ``zone`` reads ``wall`` or later.

    That is ``wall`` itself, on its first pass when a fall-back fold repeats it, or, when a
    spring-forward gap skips it, the instant the gap ends (02:30 on a day that jumps from 02:00 to
    03:00 gives 03:00). ``wall`` is naive, in whole seconds.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if wall_clock(first, zone) == wall:
        return first
    # Inside a gap, fold=0 reads ``wall`` with the offset before the jump (an instant after it) and
    # fold=1 with the offset after it (an instant before it): bisect the seconds in between.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if wall_clock(before, zone) >= wall:
        return first  # not a single plain gap (never seen in tzdata): keep zoneinfo's reading
    low, high = 0, (first - before) // ONE_SECOND
    while high - low > 1:
        middle = (low + high) // 2
        if wall_clock(before + middle * ONE_SECOND, zone) >= wall:
            high = middle
        else:
            low = middle
    return before + high * ONE_SECOND


def localize(wall: datetime, zone_name: str, *, field: str = "send_at") -> datetime:
    """The instant (UTC) at which clocks in ``zone_name`` show ``wall`` (naive).

    A wall time that does not exist (skipped by a spring-forward change) is refused with a
    :class:`ValidationError` naming it; one that exists twice (a fall-back fold) is taken on its
    first pass. One whose instant falls outside the calendar (years 1 to 9999 in UTC) is refused
    too.
    """
    zone = load_zone(zone_name)
    try:
        instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        exists = wall_clock(instant, zone) == wall  # what wall_time_exists computes, instant reused
    except OverflowError:
        raise ValidationError(f"{wall.isoformat(sep=' ')} in {zone_name} is {OUT_OF_RANGE}", field=field) from None
    if not exists:
        raise ValidationError(
            f"{wall.isoformat(sep=' ')} does not exist in {zone_name}: the clocks skip it "
            "(daylight saving time starts); pick a time outside the gap",
            field=field,
        )
    return instant
