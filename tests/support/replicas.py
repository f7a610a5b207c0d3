"""Several ``cronjob`` processes over one store, for the multi-replica tests: start them, load them
with messages through the API, and read back what the fake WhatsApp server and the store saw.

Everything talks to loopback only, and every process ended here is one this module started
(``CronjobProcess.stop`` signals its own child by PID; ``freeze``/``thaw`` likewise).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_whatsapp import FakeWhatsApp, RecordedRequest
from tests.support.processes import CronjobProcess, free_port

API_TOKEN = "replicas-token"
WA_TOKEN = "wa-replicas-token"
PHONE_ID = "1234567890"
BODY = "Mensagem {{1}}"


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Replicas:
    """One ``cronjob api`` process and ``len(schedulers)`` ``cronjob scheduler`` processes, all
    with the same store settings; each scheduler has its own ``CRONJOB_INSTANCE_ID``."""

    base: str
    api: CronjobProcess
    schedulers: dict[str, CronjobProcess] = field(default_factory=dict)

    @property
    def processes(self) -> list[CronjobProcess]:
        return [self.api, *self.schedulers.values()]

    def assert_alive(self) -> None:
        for process in self.processes:
            assert process.process is not None
            code = process.process.poll()
            assert code is None, f"cronjob {process.command} exited {code}:\n{process.output()[-4000:]}"

    def stop(self) -> dict[str, int]:
        """SIGTERM every process still running (schedulers first, so they drain); exit codes by name."""
        codes = {name: proc.stop() for name, proc in self.schedulers.items()}
        codes["api"] = self.api.stop()
        return codes

    def kill_all(self) -> None:
        for process in self.processes:
            process.stop(signal.SIGKILL)


def start_replicas(
    log_dir: Path,
    env: dict[str, str],
    *,
    schedulers: int = 3,
    scheduler_env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Replicas:
    """Start the API and the schedulers, wait until each is up (API answers, scheduler logged)."""
    port = free_port()
    common = {"CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": API_TOKEN, **env}
    replicas = Replicas(base=f"http://127.0.0.1:{port}",
                        api=CronjobProcess("api", {**common, "CRONJOB_INSTANCE_ID": "api"},
                                           log_dir / "api.log"))
    replicas.api.start()
    try:
        replicas.api.wait_http(f"{replicas.base}/healthcheck", timeout=timeout)  # the store exists now
        for n in range(1, schedulers + 1):
            name = f"scheduler-{n}"
            # Each process serves HTTP on its own port (a scheduler: its health probes).
            proc = CronjobProcess("scheduler", {**common, **(scheduler_env or {}), "CRONJOB_INSTANCE_ID": name,
                                                "CRONJOB_PORT": str(free_port())}, log_dir / f"{name}.log")
            replicas.schedulers[name] = proc.start()
        for proc in replicas.schedulers.values():
            wait_log(proc, "scheduler started as", timeout=timeout)
    except BaseException:
        replicas.kill_all()
        raise
    return replicas


def wait_log(process: CronjobProcess, text: str, timeout: float = 30.0) -> None:
    """Wait until ``text`` shows in the process's log, failing early if it exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.output():
            return
        assert process.process is not None
        if process.process.poll() is not None:
            raise AssertionError(f"cronjob {process.command} exited {process.process.returncode}:\n"
                                 f"{process.output()}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{process.output()}")


def freeze(process: CronjobProcess) -> None:
    """SIGSTOP the child (by its PID): it holds its leases and connections but does nothing.

    Returns once every thread of it has stopped: ``kill`` only sends the signal, and a thread
    running on another CPU goes on for a moment (long enough to commit a write that whoever
    looks at the store next would take for one it never made).
    """
    os.kill(process.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while not _stopped(process.pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {process.pid} did not stop within 10 s of SIGSTOP")
        time.sleep(0.0005)


def _stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (state ``T``) or gone."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread ended meanwhile
        if stat.rsplit(")", 1)[1].split()[0] not in ("T", "t"):
            return False
    return True


def thaw(process: CronjobProcess) -> None:
    os.kill(process.pid, signal.SIGCONT)


# -- load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    index: int
    id: str
    send_at: datetime  # UTC, as the API stored it
    acked_at: datetime  # when the API's 201 had arrived


def marker(tag: str, index: int) -> str:
    """The unique text put in ``params[0]`` of message ``index``: it comes back in the send body."""
    return f"{tag}-{index}"


def message(tag: str, index: int, send_at: datetime) -> dict[str, Any]:
    return {
        "to": f"55119{index:08d}",
        "body": BODY,
        "userId": f"user-{index}",
        "type": "template",
        "templateName": "replicas_test",
        "params": [marker(tag, index)],
        "send_at": send_at.isoformat(timespec="milliseconds"),
    }


async def _post_once(client: httpx.AsyncClient, body: dict[str, Any], key: str) -> httpx.Response:
    """POST ``body`` as a client of the API should: with an ``Idempotency-Key``, sent again when
    the connection fails before the answer (on a machine starved of CPU a connection can be cut
    under load: the request may or may not have been made); the first answer is a 201 (made), a
    later one a 201 or a 200 (the request made before, replayed), never a second schedule."""
    for attempt in range(1, 6):
        try:
            response = await client.post("/schedule-message", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            if attempt == 5:
                raise
            await asyncio.sleep(0.5 * attempt)
            continue
        assert response.status_code == 201 or (attempt > 1 and response.status_code == 200), response.text
        return response
    raise AssertionError("unreachable")


async def _create_all(base: str, bodies: Sequence[dict[str, Any]],
                      concurrency: int) -> list[tuple[dict[str, Any], datetime]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    results: list[tuple[dict[str, Any], datetime]] = [({}, now()) for _ in bodies]
    next_index = 0

    async with httpx.AsyncClient(base_url=base, headers=auth(), limits=limits, timeout=60.0) as client:
        async def worker() -> None:
            nonlocal next_index
            while next_index < len(bodies):
                index = next_index
                next_index += 1  # one event loop: no two workers take the same index
                response = await _post_once(client, bodies[index], str(bodies[index]["params"][0]))
                results[index] = (response.json(), now())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def create_messages(base: str, tag: str, send_ats: Sequence[datetime], *,
                    concurrency: int = 16) -> tuple[list[Created], float]:
    """POST one message per ``send_ats`` entry (``concurrency`` connections at once, in index
    order); returns what was created and how long it took (seconds)."""
    bodies = [message(tag, i, at) for i, at in enumerate(send_ats)]
    started = time.monotonic()
    answers = asyncio.run(_create_all(base, bodies, concurrency))
    elapsed = time.monotonic() - started
    created = [Created(i, a["id"], datetime.fromisoformat(a["send_at"].replace("Z", "+00:00")), acked)
               for i, (a, acked) in enumerate(answers)]
    for item, at in zip(created, send_ats, strict=True):
        assert abs(item.send_at - at) < timedelta(milliseconds=1), (item, at)
    return created, elapsed


def spread(count: int, first: datetime, over: float) -> list[datetime]:
    """``count`` instants evenly spread over ``over`` seconds from ``first``."""
    step = over / max(count - 1, 1)
    return [first + timedelta(seconds=i * step) for i in range(count)]


# -- what arrived ------------------------------------------------------------------------------


def sent_marker(request: RecordedRequest) -> str | None:
    body = request.body if isinstance(request.body, dict) else {}
    try:
        return str(body["template"]["components"][0]["parameters"][0]["text"])
    except (KeyError, IndexError, TypeError):
        return None


@dataclass
class Deliveries:
    """The fake's requests grouped by message index."""

    by_index: dict[int, list[RecordedRequest]]
    foreign: list[RecordedRequest]  # requests that carry no marker of this run
    truncated: list[RecordedRequest] = field(default_factory=list)  # body cut short (a killed sender)

    @classmethod
    def of(cls, requests: Iterable[RecordedRequest], tag: str) -> Deliveries:
        by_index: dict[int, list[RecordedRequest]] = {}
        foreign: list[RecordedRequest] = []
        prefix = f"{tag}-"
        truncated: list[RecordedRequest] = []
        for request in requests:
            if request.body is None and int(request.headers.get("content-length") or 0) > 0:
                truncated.append(request)  # the sender died mid-request: the fake answered 400
                continue
            text = sent_marker(request)
            if text is None or not text.startswith(prefix) or not text[len(prefix):].isdigit():
                foreign.append(request)
                continue
            by_index.setdefault(int(text[len(prefix):]), []).append(request)
        return cls(by_index, foreign, truncated)

    def duplicated(self) -> dict[int, int]:
        return {i: len(rs) for i, rs in self.by_index.items() if len(rs) > 1}

    def missing(self, count: int) -> list[int]:
        return [i for i in range(count) if i not in self.by_index]


def wait_for_deliveries(fake: FakeWhatsApp, tag: str, count: int, timeout: float,
                        replicas: Replicas | None = None) -> Deliveries:
    """Wait until every one of the ``count`` messages arrived at least once (or ``timeout``),
    then a little longer for stragglers (a duplicate would show up then)."""
    deadline = time.monotonic() + timeout
    while True:
        deliveries = Deliveries.of(fake.requests, tag)
        if len(deliveries.by_index) >= count or time.monotonic() > deadline:
            break
        if replicas is not None:
            replicas.assert_alive()
        time.sleep(0.25)
    return deliveries


def settle(fake: FakeWhatsApp, quiet: float = 1.5, timeout: float = 60.0) -> None:
    """Wait until the fake has received nothing new for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    seen, since = len(fake.requests), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now_seen = len(fake.requests)
        if now_seen != seen:
            seen, since = now_seen, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def lateness_report(label: str, created: Sequence[Created], deliveries: Deliveries) -> dict[str, float]:
    """Print p50/p99/max of (first arrival - send_at) and the delivery rate; return the figures."""
    late = sorted((min(r.received_at for r in deliveries.by_index[c.index]) - c.send_at).total_seconds()
                  for c in created if c.index in deliveries.by_index)
    arrivals = sorted(r.received_at for rs in deliveries.by_index.values() for r in rs)
    window = (arrivals[-1] - arrivals[0]).total_seconds() if len(arrivals) > 1 else 0.0
    figures = {
        "count": float(len(late)),
        "p50": statistics.quantiles(late, n=100)[49] if len(late) > 1 else late[0],
        "p99": statistics.quantiles(late, n=100)[98] if len(late) > 1 else late[0],
        "max": late[-1],
        "min": late[0],
        "window_s": window,
        "rate_per_s": len(arrivals) / window if window > 0 else float("inf"),
    }
    due_window = (max(c.send_at for c in created) - min(c.send_at for c in created)).total_seconds()
    created_late = sum(c.acked_at > c.send_at for c in created)
    figures["created_after_due"] = float(created_late)
    print(f"\n[{label}] {len(late)} delivered ({created_late} were created after their send_at); "
          f"lateness (first arrival - send_at): "
          f"min {figures['min'] * 1000:.0f} ms, p50 {figures['p50'] * 1000:.0f} ms, "
          f"p99 {figures['p99'] * 1000:.0f} ms, max {figures['max'] * 1000:.0f} ms; "
          f"due over {due_window:.1f} s, arrivals over {window:.1f} s = {figures['rate_per_s']:.0f} msg/s")
    return figures


# -- the store, through the API -----------------------------------------------------------------


def list_all(base: str, status: str | None = None, page: int = 500) -> list[dict[str, Any]]:
    """Every schedule (of ``status``), newest first, paging the API (call when nothing changes)."""
    items: list[dict[str, Any]] = []
    with httpx.Client(base_url=base, headers=auth(), timeout=60.0) as client:
        while True:
            params: dict[str, Any] = {"limit": page, "offset": len(items)}
            if status is not None:
                params["status"] = status
            response = client.get("/v1/schedules", params=params)
            assert response.status_code == 200, response.text
            batch = response.json()["items"]
            items.extend(batch)
            if len(batch) < page:
                return items


def status_counts(base: str) -> Counter[str]:
    return Counter(item["status"] for item in list_all(base))


def wait_all_final(base: str, ids: Iterable[str], timeout: float = 60.0,
                   final: tuple[str, ...] = ("succeeded", "dead", "unknown", "missed", "cancelled")) -> list[dict[str, Any]]:
    """Wait until every schedule in ``ids`` is in a final status; return them all."""
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        items = [item for item in list_all(base) if item["id"] in wanted]
        if len(items) == len(wanted) and all(item["status"] in final for item in items):
            return items
        if time.monotonic() > deadline:
            counts = Counter(item["status"] for item in items)
            raise AssertionError(f"not all final after {timeout} s: {dict(counts)} of {len(wanted)}")
        time.sleep(0.5)


# -- the store, read directly (for snapshots of who holds which lease) ------------------------


def sqlite_running(path: Path) -> dict[str, str]:
    """Schedules ``running`` in the SQLite store right now: id -> lease owner (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        rows = conn.execute("SELECT id, doc FROM schedules WHERE status = 'running'").fetchall()
    finally:
        conn.close()
    return {schedule_id: json.loads(doc)["lease"]["owner"] for schedule_id, doc in rows}


def mongo_running(uri: str, database: str) -> dict[str, str]:
    """Schedules ``running`` in the MongoDB store right now: id -> lease owner."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        docs = client[database]["schedules"].find({"status": "running"}, {"_id": 1, "lease.owner": 1})
        return {str(doc["_id"]): doc["lease"]["owner"] for doc in docs}
    finally:
        client.close()


def now() -> datetime:
    return datetime.now(UTC)
