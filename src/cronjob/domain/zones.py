"""IANA time zones: lookup with a clear error, and wall time -> instant with DST made explicit."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronjob.domain.errors import ValidationError

DEFAULT_TIMEZONE = "America/Sao_Paulo"


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`ValidationError` (field ``timezone``) when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown IANA time zone: {name!r}", field="timezone") from exc


def localize(wall: datetime, zone_name: str, *, field: str = "send_at") -> datetime:
    """The instant (UTC) at which clocks in ``zone_name`` show ``wall`` (naive).

    A wall time that does not exist (skipped by a spring-forward change) is refused with a
    :class:`ValidationError` naming it; one that exists twice (a fall-back fold) is taken on its
    first pass.
    """
    tz = zone(zone_name)
    first = wall.replace(tzinfo=tz, fold=0)
    # A skipped wall time does not survive a round trip through UTC.
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        raise ValidationError(
            f"{wall.isoformat(sep=' ')} does not exist in {zone_name} (clocks skip it for daylight saving)",
            field=field,
        )
    return first.astimezone(UTC)
