"""New schedules' ids: time-ordered, so that the stores keep a burst's rows together.

An id is a UUID version 7 (RFC 9562) as 32 hex digits, the form every id had before (``uuid4().hex``):
48 bits of Unix time in milliseconds, then 74 random bits (the version and variant bits between).
Ids made later sort after those made earlier (within a millisecond, at random), so schedules
created together sit together in the stores' id-ordered tables and indexes: a burst due at one
instant, claimed in ``(next_run_at, id)`` order, reads and rewrites a few neighbouring pages of
SQLite's table instead of one page per row (see README → Benchmarks), and MongoDB's ``_id`` index
grows at its right edge. Equal due times also run in creation order, within a millisecond.
"""

from __future__ import annotations

import os
import time

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RANDOM_A = (1 << 12) - 1  # the 12 random bits before the variant
_RANDOM_B = (1 << 62) - 1  # the 62 random bits after it


def new_schedule_id() -> str:
    """A fresh id: a UUID version 7 of the current time, as 32 lower-case hex digits."""
    return schedule_id_at(time.time_ns() // 1_000_000)


def schedule_id_at(millis: int) -> str:
    """A fresh id of the instant ``millis`` (Unix time in milliseconds, 0 to 2**48 - 1): a UUID
    version 7, as 32 lower-case hex digits, its 74 other bits random."""
    random = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | _VERSION | ((random >> 62) & _RANDOM_A) << 64 | _VARIANT | (random & _RANDOM_B)
    return f"{value:032x}"
