"""New schedules' ids: UUID version 7 as 32 hex digits, ordered by the millisecond they were made in."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from cronjob.services.schedule_ids import new_schedule_id, schedule_id_at

MILLIS = st.integers(min_value=0, max_value=2**48 - 1)


@given(MILLIS)
def test_an_id_is_a_uuid7_of_its_millisecond_in_32_hex_digits(millis: int) -> None:
    made = schedule_id_at(millis)
    assert len(made) == 32 and made == made.lower() and int(made, 16) >= 0
    read = uuid.UUID(made)
    assert read.version == 7 and read.variant == uuid.RFC_4122
    assert read.int >> 80 == millis


@given(MILLIS, MILLIS)
def test_ids_of_later_milliseconds_sort_after(first: int, second: int) -> None:
    earlier, later = sorted((first, second))
    if earlier < later:
        assert schedule_id_at(earlier) < schedule_id_at(later)


def test_ids_of_one_millisecond_differ_in_their_random_bits() -> None:
    made = {schedule_id_at(1_700_000_000_000) for _ in range(10_000)}
    assert len(made) == 10_000
    assert len({value[12:] for value in made}) == 10_000


def test_a_new_id_is_of_now() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(new_schedule_id()).int >> 80
    assert before <= made <= time.time_ns() // 1_000_000
