"""A stored rule this version cannot read (a later version's form, during a rolling update or after a
roll-back) holds up nothing else.

Before, decoding such a schedule raised: every list page that held it failed (a 422 naming
``schedule`` for a request that named none), and so did every claim of a batch that held it, whose
other schedules, claimed and then never run, waited for their leases to lapse, only to be
claimed in the same batch again: one such schedule due stopped a scheduler's work for good. Now
it is read as an :class:`UnreadableTrigger` that keeps its text: listed and shown as stored, never
run nor moved on here (a replica of the version that wrote it takes it over once the lease of
this one's claim lapses), and changed where its times are not needed (paused, resumed before it
fell due, cancelled); what needs them (its next runs) is a 409 saying why.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cronjob.domain.trigger import UnreadableTrigger
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.triggers import default_trigger_parser
from tests.support.app import AUTH, api_client, set_up
from tests.support.builders import one_off, seed_request
from tests.support.clock import FixedClock

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
#: A form no version has today: what a later version might write.
LATER_RULE = "fortnightly on monday at 09:00"


def _written_by_a_later_version(path: Path, schedule_id: str) -> None:
    """Give the stored schedule a rule this version does not read, as a later version would."""
    with sqlite3.connect(path) as conn:
        doc = json.loads(conn.execute("SELECT doc FROM schedules WHERE id = ?", (schedule_id,)).fetchone()[0])
        doc["trigger"] = LATER_RULE
        conn.execute("UPDATE schedules SET doc = ? WHERE id = ?", (json.dumps(doc), schedule_id))
    conn.close()


def test_the_codec_keeps_a_rule_it_cannot_read_as_it_was_stored() -> None:
    codec = ScheduleCodec(default_trigger_parser())
    doc = codec.to_document(one_off(NOW, now=NOW - timedelta(minutes=1)))
    doc["trigger"] = LATER_RULE
    schedule = codec.from_document(doc)
    assert isinstance(schedule.trigger, UnreadableTrigger) and schedule.trigger.recurring
    assert schedule.trigger.reason == f"unknown schedule expression {LATER_RULE!r}"
    assert codec.to_document(schedule)["trigger"] == LATER_RULE  # written back unchanged
    doc["trigger"], doc["timezone"] = "daily at 09:00", "Mars/Olympus_Mons"  # a zone this machine lacks
    assert isinstance(codec.from_document(doc).trigger, UnreadableTrigger)


async def test_a_later_version_s_rule_holds_up_neither_the_list_nor_the_other_runs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FixedClock(NOW - timedelta(minutes=5))
    async with set_up(clock, "sqlite", tmp_path) as built, api_client(built, AUTH) as http:
        made = [(await http.post("/schedule-message", json=seed_request(NOW), headers=AUTH)).json()
                for _ in range(3)]
        later, others = made[0]["id"], [m["id"] for m in made[1:]]
        _written_by_a_later_version(tmp_path / "cronjob.sqlite3", later)

        listed = await http.get("/v1/schedules", headers=AUTH)
        assert listed.status_code == 200, listed.text
        assert {item["id"]: item["schedule"] for item in listed.json()["items"]}[later] == LATER_RULE
        shown = await http.get(f"/v1/schedules/{later}", headers=AUTH)
        assert shown.status_code == 200 and shown.json()["schedule"] == LATER_RULE
        upcoming = await http.get(f"/v1/schedules/{later}/upcoming", headers=AUTH)
        assert upcoming.status_code == 409, upcoming.text
        assert "not one this version of the service reads" in upcoming.json()["detail"]

        clock.set(NOW)
        dispatcher, sender = built.dispatcher(), built.sender()
        assert isinstance(sender, RecordingMessageSender)
        with caplog.at_level(logging.WARNING, logger="cronjob.services.dispatcher"):
            assert await dispatcher.dispatch_due() == 3  # claimed together, in one batch
            await dispatcher.drain(5)
        assert sorted(m.idempotency_key.split(":")[0] for m in sender.sent) == sorted(others)  # run, as ever
        assert f"schedule {later} not run: its rule {LATER_RULE!r} is not one this version reads" in caplog.text
        held = (await http.get(f"/v1/schedules/{later}", headers=AUTH)).json()
        assert held["status"] == "running" and held["attempts"] == []  # not run: left to its lease's lapse
        assert held["schedule"] == LATER_RULE

        # Its lease lapsed: taken over, by a replica of the version that wrote it or, here, this one again.
        clock.set(NOW + timedelta(seconds=31))
        assert await dispatcher.dispatch_due() == 1
        await dispatcher.drain(5)
        assert len(sender.sent) == 2
        stored = (await http.get(f"/v1/schedules/{later}", headers=AUTH)).json()
        assert (stored["status"], stored["schedule"], stored["attempts"]) == ("running", LATER_RULE, [])


async def test_a_schedule_with_a_later_version_s_rule_is_paused_resumed_and_cancelled_with_its_rule_kept(
        tmp_path: Path) -> None:
    clock = FixedClock(NOW - timedelta(minutes=5))
    async with set_up(clock, "sqlite", tmp_path) as built, api_client(built, AUTH) as http:
        first, second = [(await http.post("/schedule-message", json=seed_request(NOW), headers=AUTH)).json()["id"]
                         for _ in range(2)]
        for schedule_id in (first, second):
            _written_by_a_later_version(tmp_path / "cronjob.sqlite3", schedule_id)
        paused = await http.post(f"/v1/schedules/{first}/pause", headers=AUTH)
        assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
        resumed = await http.post(f"/v1/schedules/{first}/resume", headers=AUTH)  # not due yet: keeps its time
        assert resumed.status_code == 200 and resumed.json()["status"] == "scheduled", resumed.text
        cancelled = await http.delete(f"/v1/schedules/{second}", headers=AUTH)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
        with sqlite3.connect(tmp_path / "cronjob.sqlite3") as conn:
            rules = {row[0] for row in conn.execute("SELECT json_extract(doc, '$.trigger') FROM schedules")}
        conn.close()
        assert rules == {LATER_RULE}  # both written back with the rule as stored
