"""Payload values a store gives back exactly as it was given them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cronjob.domain.json_values import INT64_MAX, INT64_MIN, MAX_NESTING, check_storable
from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.repository import ScheduleRepository
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.contract.conftest import StoreFactory
from tests.support.builders import T0, one_off

def _nested(levels: int) -> Any:
    """An object and arrays ``levels`` deep, with a value at the bottom."""
    value: Any = {"k": "bottom"}
    for _ in range(levels - 1):
        value = [value]
    return value


PAYLOADS: dict[str, dict[str, Any]] = {
    "text": {"text": "Olá, 世界 \u2028 \x7f 🎉 \"q\" \\", "empty": "",
             "nested": {"list": [1, -2.5, None, True, False, {"a": []}]}},
    "numbers": {"floats": [0.1, 1e16, 1.5e-7, -0.0, 1.7976931348623157e308, 5e-324],
                "int64": [INT64_MAX, INT64_MIN, 0, -1]},
    # As deep as check_storable lets a payload nest (MongoDB keeps at most 100 levels in all).
    "deepest": {"body": _nested(MAX_NESTING)},
}


async def _claimed_and_saved(repo: ScheduleRepository, payload: dict[str, Any]) -> Any:
    """``payload`` through an add, a claim and a fenced save; what a read gives back."""
    schedule = one_off()
    schedule.payload = payload
    await repo.add(schedule)
    [claimed] = await repo.claim_due(now=T0, owner="r1", lease_for=timedelta(seconds=30), limit=1)
    attempt_id = claimed.lease.attempt_id  # type: ignore[union-attr]
    claimed.mark_started(attempt_id=attempt_id, now=T0)
    assert await repo.save(claimed, expected_status=ScheduleStatus.RUNNING, attempt_id=attempt_id)
    loaded = await repo.get(schedule.id)
    assert loaded is not None
    return loaded.payload


@pytest.mark.parametrize("name", PAYLOADS)
async def test_payload_values_come_back_exactly(store: StoreFactory, name: str) -> None:
    payload = PAYLOADS[name]
    check_storable(payload)  # each is one the API takes
    loaded = await _claimed_and_saved(await store(), payload)
    assert loaded == payload
    assert repr(loaded) == repr(payload)  # an int stays an int, -0.0 stays -0.0


async def test_sqlite_keeps_integers_beyond_64_bits_of_schedules_made_before_they_were_refused(
        tmp_path: Path) -> None:
    # The API refuses them now (MongoDB cannot hold them); a schedule accepted before still
    # runs: its document is written by the standard library's json, which orjson hands it to.
    repo = SqliteScheduleRepository(tmp_path / "cronjob.sqlite3", ScheduleCodec(default_trigger_parser()))
    await repo.initialize()
    try:
        payload = {"u64": 2**64 - 1, "big": 2**70 + 1, "huge": -(10**30) - 7}
        loaded = await _claimed_and_saved(repo, payload)
        assert repr(loaded) == repr(payload)
    finally:
        await repo.close()
