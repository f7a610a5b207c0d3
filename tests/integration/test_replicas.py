"""Replicas, with real OS processes: one ``cronjob api`` and three ``cronjob scheduler`` processes
over one store (SQLite on disk, or the MongoDB test server) and a local fake of Meta's API.

What is proven here:

- every message due within a few seconds reaches the WhatsApp endpoint exactly once, and every
  schedule ends ``succeeded`` with the wamid the endpoint returned (SQLite: 5,000; MongoDB: 300);
- a scheduler killed with SIGKILL while it holds leases loses nothing: its leases lapse and the
  others take them over; a message arrives twice only if the killed process had claimed it, so at
  most its ``CRONJOB_MAX_IN_FLIGHT``;
- the MongoDB server stopped and restarted mid-run: the replicas recover by themselves, nothing is
  lost, and duplicates are only among the runs in flight when the store went away.

Lateness (first arrival - send_at) and throughput are printed (``pytest -s`` shows them); apart from
a generous "everything arrived within 120 s", nothing here asserts timing.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_whatsapp import FakeWhatsApp, validate_send_body
from tests.support.mongo_server import MongoTestServer
from tests.support.replicas import (
    PHONE_ID,
    WA_TOKEN,
    Created,
    Deliveries,
    Replicas,
    create_messages,
    freeze,
    lateness_report,
    list_all,
    mongo_running,
    now,
    settle,
    spread,
    sqlite_running,
    start_replicas,
    thaw,
    wait_all_final,
    wait_for_deliveries,
)

pytestmark = pytest.mark.slow

DUE_OVER = 3.0  # seconds over which the messages fall due
DELIVERY_BOUND = 120.0  # sanity bound: everything has arrived this long after the last send_at
# The API created 200-480 messages/s on the 2-core test machine (less while other tests ran beside
# it); the first message falls due only once creation at this floor would be over, so that the
# lateness measures the schedulers, not the creation (the report says if any was created late).
CREATE_RATE_FLOOR = 150.0


@pytest.fixture
def whatsapp() -> Iterator[FakeWhatsApp]:
    # Schema validation costs ~0.7 ms per distinct body and every body here is distinct: the
    # body's conformance is the WhatsApp sender's tests' business; a sample is checked below.
    with FakeWhatsApp(token=WA_TOKEN, phone_number_id=PHONE_ID, check_schema=False) as fake:
        yield fake


def _env(data_dir: Path, whatsapp: FakeWhatsApp, **extra: str) -> dict[str, str]:
    return {
        "CRONJOB_DATA_DIR": str(data_dir),
        "CRONJOB_WHATSAPP_API_URL": whatsapp.url,
        "CRONJOB_WHATSAPP_TOKEN": WA_TOKEN,
        "CRONJOB_WHATSAPP_PHONE_NUMBER_ID": PHONE_ID,
        "CRONJOB_POLL_INTERVAL_SECONDS": "0.5",
        **extra,
    }


def _mongo_env(uri: str, database: str) -> dict[str, str]:
    return {"CRONJOB_MONGODB_URI": uri, "CRONJOB_MONGODB_DATABASE": database}


def _drop_database(uri: str, database: str) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(database)
    finally:
        client.close()


def _schedule(replicas: Replicas, count: int, tag: str) -> list[Created]:
    """Create ``count`` messages through the API, due over ``DUE_OVER`` seconds starting once the
    creation should be over; print how long the creation took."""
    lead = 2.0 + count / CREATE_RATE_FLOOR
    first_due = now() + timedelta(seconds=lead)
    created, elapsed = create_messages(replicas.base, tag, spread(count, first_due, DUE_OVER))
    print(f"\n[{tag}] created {count} schedules through the API in {elapsed:.1f} s "
          f"({count / elapsed:.0f}/s); first due {lead:.1f} s after the start")
    return created


def _assert_arrived(deliveries: Deliveries, created: list[Created], total_requests: int,
                    *, truncated_allowed: bool = False) -> None:
    missing = deliveries.missing(len(created))
    assert not missing, f"{len(missing)} messages never arrived, e.g. indexes {missing[:10]}"
    assert not deliveries.foreign, f"unexpected requests: {deliveries.foreign[:3]}"
    delivered = sum(len(rs) for rs in deliveries.by_index.values())
    assert total_requests == delivered + len(deliveries.truncated)
    if not truncated_allowed:  # only a process killed mid-request leaves a request cut short
        assert deliveries.truncated == []
    statuses = Counter(r.status for rs in deliveries.by_index.values() for r in rs)
    assert statuses == Counter({200: delivered}), statuses
    last_due = max(c.send_at for c in created)
    last_arrival = max(r.received_at for rs in deliveries.by_index.values() for r in rs)
    assert last_arrival - last_due < timedelta(seconds=DELIVERY_BOUND)
    for requests in list(deliveries.by_index.values())[:20]:  # the sent bodies follow Meta's schema
        assert validate_send_body(requests[0].body) == []


def _assert_succeeded_with_their_wamid(base: str, created: list[Created],
                                       deliveries: Deliveries) -> list[dict[str, Any]]:
    """Every schedule ``succeeded``, with the wamid the endpoint gave to one of its sends (the
    last: a takeover's send comes after the lost one). Returns the schedules."""
    items = {item["id"]: item for item in wait_all_final(base, (c.id for c in created))}
    not_succeeded = Counter(item["status"] for item in items.values() if item["status"] != "succeeded")
    assert not not_succeeded, f"schedules not succeeded: {dict(not_succeeded)}"
    for c in created:
        item = items[c.id]
        sends = deliveries.by_index[c.index]
        assert item["result"]["wamid"] == sends[-1].wamid, (c, item["result"], [s.wamid for s in sends])
        [attempt] = [a for a in item["attempts"] if a["outcome"] == "succeeded"]
        assert attempt["provider_message_id"] == sends[-1].wamid
    return list(items.values())


def _owners(items: list[dict[str, Any]]) -> Counter[str]:
    """Which replica ran each schedule's successful attempt."""
    return Counter(a["owner"] for item in items for a in item["attempts"] if a["outcome"] == "succeeded")


def _print_throughput(tag: str, created: list[Created], deliveries: Deliveries, owners: Counter[str]) -> None:
    first_due = min(c.send_at for c in created)
    last = max(r.received_at for rs in deliveries.by_index.values() for r in rs)
    span = (last - first_due).total_seconds()
    sent = sum(len(rs) for rs in deliveries.by_index.values())
    print(f"[{tag}] {sent} sends from the first send_at to the last arrival in {span:.1f} s = "
          f"{sent / span:.0f} msg/s; runs per replica: {dict(sorted(owners.items()))}")


def _stop_cleanly(replicas: Replicas, *, skip: tuple[str, ...] = ()) -> None:
    for name, proc in replicas.schedulers.items():
        if name not in skip:
            assert proc.stop() == 0, proc.output()[-4000:]
    assert replicas.api.stop() == 0, replicas.api.output()[-4000:]


# -- 1. SQLite: 5,000 messages, 3 schedulers -------------------------------------------------


def test_three_schedulers_on_sqlite_send_5000_messages_exactly_once(tmp_path: Path,
                                                                    whatsapp: FakeWhatsApp) -> None:
    count = 5000
    replicas = start_replicas(tmp_path, _env(tmp_path / "var", whatsapp))
    try:
        created = _schedule(replicas, count, "sqlite")
        deliveries = wait_for_deliveries(whatsapp, "sqlite", count,
                                         timeout=DUE_OVER + DELIVERY_BOUND + 60, replicas=replicas)
        settle(whatsapp)  # anything sent twice would arrive now
        requests = whatsapp.requests
        deliveries = Deliveries.of(requests, "sqlite")
        lateness_report("sqlite, 3 schedulers", created, deliveries)

        _assert_arrived(deliveries, created, len(requests))
        assert len(requests) == count
        assert deliveries.duplicated() == {}, f"sent more than once: {deliveries.duplicated()}"
        items = _assert_succeeded_with_their_wamid(replicas.base, created, deliveries)
        assert all(len(item["attempts"]) == 1 for item in items)
        owners = _owners(items)
        _print_throughput("sqlite", created, deliveries, owners)
        assert set(owners) == set(replicas.schedulers), owners  # every replica took a share
        replicas.assert_alive()
        _stop_cleanly(replicas)
    finally:
        replicas.kill_all()


# -- 2. MongoDB: 300 messages, 3 schedulers ----------------------------------------------------


def test_three_schedulers_on_mongodb_send_300_messages_exactly_once(tmp_path: Path, whatsapp: FakeWhatsApp,
                                                                    mongodb_uri: str) -> None:
    count = 300
    database = f"replicas_{uuid.uuid4().hex[:12]}"
    env = _env(tmp_path / "var", whatsapp, **_mongo_env(mongodb_uri, database))
    replicas = start_replicas(tmp_path, env)
    try:
        created = _schedule(replicas, count, "mongodb")
        deliveries = wait_for_deliveries(whatsapp, "mongodb", count,
                                         timeout=DUE_OVER + DELIVERY_BOUND + 60, replicas=replicas)
        settle(whatsapp)
        requests = whatsapp.requests
        deliveries = Deliveries.of(requests, "mongodb")
        lateness_report("mongodb, 3 schedulers", created, deliveries)

        _assert_arrived(deliveries, created, len(requests))
        assert len(requests) == count
        assert deliveries.duplicated() == {}, f"sent more than once: {deliveries.duplicated()}"
        items = _assert_succeeded_with_their_wamid(replicas.base, created, deliveries)
        assert all(len(item["attempts"]) == 1 for item in items)
        owners = _owners(items)
        _print_throughput("mongodb", created, deliveries, owners)
        replicas.assert_alive()
        _stop_cleanly(replicas)
    finally:
        replicas.kill_all()
        _drop_database(mongodb_uri, database)


# -- 3. SIGKILL of a scheduler holding leases (SQLite) -----------------------------------------


def test_a_scheduler_killed_while_holding_leases_loses_nothing(tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    count, in_flight, lease = 2000, 50, 3
    data_dir = tmp_path / "var"
    env = _env(data_dir, whatsapp, CRONJOB_LEASE_SECONDS=str(lease), CRONJOB_MAX_IN_FLIGHT=str(in_flight),
               CRONJOB_BATCH_SIZE=str(in_flight))
    replicas = start_replicas(tmp_path, env)
    victim_name = "scheduler-2"
    victim = replicas.schedulers[victim_name]
    try:
        created = _schedule(replicas, count, "kill")
        by_id = {c.id: c for c in created}
        whatsapp.wait_for(count // 5, timeout=DUE_OVER + DELIVERY_BOUND)  # well into the run

        # Freeze the victim so that what it holds cannot change and read who holds which lease;
        # SIGKILL it (a stopped process dies at once) when it holds leases of messages it has
        # already sent (mid-run: sent, result not written). Else thaw it and look again, for as
        # long as the run may last; a run that ends before such a moment was caught fails below.
        ids_by_index = {c.index: c.id for c in created}
        held: dict[str, str] = {}
        sent_unrecorded: set[str] = set()
        deadline = time.monotonic() + 30
        while True:
            frozen_at = now()
            freeze(victim)
            held = {i: o for i, o in sqlite_running(data_dir / "cronjob.sqlite3").items() if o == victim_name}
            arrived = {ids_by_index[i] for i in Deliveries.of(whatsapp.requests, "kill").by_index}
            sent_unrecorded = set(held) & arrived
            if sent_unrecorded or time.monotonic() > deadline:
                break
            thaw(victim)
            time.sleep(0.01)
        victim.stop(signal.SIGKILL)
        arrived_before_kill = len(whatsapp.requests)
        print(f"\n[kill] SIGKILLed {victim_name} after {arrived_before_kill} arrivals, holding "
              f"{len(held)} leases (its CRONJOB_MAX_IN_FLIGHT is {in_flight}), {len(sent_unrecorded)} "
              f"of them already sent")
        assert victim.process is not None and victim.process.returncode == -9
        # The case this test is about: the victim died between a send and its record.
        assert sent_unrecorded, (f"{victim_name} was never caught holding the lease of a message it had "
                                 f"already sent (it held {len(held)} leases at the last look)")

        deliveries = wait_for_deliveries(whatsapp, "kill", count,
                                         timeout=DUE_OVER + DELIVERY_BOUND + 60)
        settle(whatsapp, quiet=lease + 1.5)  # a lapsed lease taken over would be re-sent by now
        requests = whatsapp.requests
        deliveries = Deliveries.of(requests, "kill")
        lateness_report("sqlite, 1 of 3 schedulers SIGKILLed", created, deliveries)

        _assert_arrived(deliveries, created, len(requests), truncated_allowed=True)  # nothing lost
        duplicated = {created[i].id: n for i, n in deliveries.duplicated().items()}
        print(f"[kill] {len(duplicated)} messages arrived twice (bound: the {len(held)} leases the "
              f"killed process held, at most {in_flight}); {len(deliveries.truncated)} requests "
              f"were cut short by the kill (the fake answered them 400)")
        # A request cut short is the victim's: its body ended when the process did.
        assert all(r.received_at >= frozen_at for r in deliveries.truncated)
        assert len(deliveries.truncated) + len(duplicated) <= len(held)
        # At-least-once, bounded: only what the killed replica had claimed may arrive twice, and
        # then only twice (its send, and the new owner's after the lease lapsed).
        assert set(duplicated) <= set(held), set(duplicated) - set(held)
        assert all(n == 2 for n in duplicated.values()), duplicated
        assert len(duplicated) <= len(held) <= in_flight
        # ...and what it had sent without recording the result is sent again by the new owner.
        assert sent_unrecorded <= set(duplicated), sent_unrecorded - set(duplicated)
        for schedule_id in duplicated:  # the lost send came before the kill, the new one after
            first, second = deliveries.by_index[by_id[schedule_id].index]
            assert first.received_at < second.received_at and second.received_at >= frozen_at

        items = _assert_succeeded_with_their_wamid(replicas.base, created, deliveries)
        owners = _owners(items)
        _print_throughput("kill", created, deliveries, owners)
        taken_over = [item for item in items if item["id"] in held]
        assert len(taken_over) == len(held)
        assert victim_name not in _owners(taken_over)  # the survivors finished what it held
        assert len(duplicated) == len(requests) - len(deliveries.truncated) - count
        for name, proc in replicas.schedulers.items():
            if name != victim_name:
                assert proc.process is not None and proc.process.poll() is None, proc.output()[-4000:]
        _stop_cleanly(replicas, skip=(victim_name,))
    finally:
        for proc in replicas.processes:
            if proc.process is not None and proc.process.poll() is None:
                thaw(proc)
        replicas.kill_all()


# -- 4. The MongoDB server stopped and restarted mid-run ---------------------------------------


def test_replicas_recover_when_the_mongodb_server_restarts_mid_run(tmp_path: Path,
                                                                   whatsapp: FakeWhatsApp) -> None:
    count, lease, outage = 300, 3, 4.0
    server = MongoTestServer(tmp_path / "mongodb" / "data")
    uri = server.start()
    database = "replicas_restart"
    env = _env(tmp_path / "var", whatsapp, CRONJOB_LEASE_SECONDS=str(lease), **_mongo_env(uri, database))
    try:
        replicas = start_replicas(tmp_path, env)
    except BaseException:
        server.stop()
        raise
    try:
        created = _schedule(replicas, count, "restart")
        by_id = {c.id: c for c in created}
        whatsapp.wait_for(count // 5, timeout=DUE_OVER + DELIVERY_BOUND)

        # Freeze the schedulers for the moment it takes to read what is in flight and to stop the
        # server, so that the count is exact; they find the store gone when they resume. A request
        # a scheduler sent just before it froze may still be executing on the server: let it end.
        for proc in replicas.schedulers.values():
            freeze(proc)
        try:
            time.sleep(0.5)
            in_flight = mongo_running(uri, database)
            arrived_before = len(whatsapp.requests)
            server.stop()
        finally:
            for proc in replicas.schedulers.values():
                thaw(proc)
        print(f"\n[restart] MongoDB stopped after {arrived_before} arrivals with {len(in_flight)} runs "
              f"in flight; restarting in {outage:.0f} s")
        time.sleep(outage)
        arrived_during = len(whatsapp.requests) - arrived_before
        restarting_at = now()
        server.start(server.port)
        print(f"[restart] {arrived_during} sends arrived while the store was down; restarted on the same port")

        deliveries = wait_for_deliveries(whatsapp, "restart", count,
                                         timeout=DUE_OVER + DELIVERY_BOUND + 60, replicas=replicas)
        settle(whatsapp, quiet=lease + 1.5)
        requests = whatsapp.requests
        deliveries = Deliveries.of(requests, "restart")
        lateness_report("mongodb, server restarted mid-run", created, deliveries)

        _assert_arrived(deliveries, created, len(requests))  # nothing lost
        duplicated = {created[i].id: n for i, n in deliveries.duplicated().items()}
        print(f"[restart] {len(duplicated)} messages arrived twice (bound: the {len(in_flight)} runs "
              f"in flight at the stop)")
        assert set(duplicated) <= set(in_flight), set(duplicated) - set(in_flight)
        assert all(n == 2 for n in duplicated.values()), duplicated
        assert len(duplicated) <= len(in_flight)
        for schedule_id in duplicated:  # sent before the restart, sent again once the store was back
            first, second = deliveries.by_index[by_id[schedule_id].index]
            assert first.received_at < restarting_at <= second.received_at

        items = _assert_succeeded_with_their_wamid(replicas.base, created, deliveries)
        owners = _owners(items)
        _print_throughput("restart", created, deliveries, owners)
        replicas.assert_alive()  # recovered without being restarted
        assert list_all(replicas.base, status="running") == []
        _stop_cleanly(replicas)
    finally:
        for proc in replicas.processes:
            if proc.process is not None and proc.process.poll() is None:
                thaw(proc)
        replicas.kill_all()
        server.stop()  # its data directory goes with tmp_path
