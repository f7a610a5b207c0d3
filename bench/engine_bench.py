#!/usr/bin/env python
"""End-to-end benchmark of the scheduler engine: how late, how fast, how costly.

Run it with ``make bench`` (or ``.venv/bin/python bench/engine_bench.py``; ``--help`` for subsets).

What is measured, for each engine/store and N:

- ``burst``: N one-offs due at one instant T;
- ``spread``: N one-offs due evenly over 10 s from T;
- ``idle``: N one-offs due in an hour: CPU seconds per 10 s of waiting, and RSS.

Schedules are written straight into the store before T (in-memory: ``add``; SQLite: one bulk
``INSERT`` of the adapter's own rows; MongoDB: ``insert_many`` of the codec's documents), so
creating them is not measured. The job is a tiny TaskHandler that records, as it starts,
``clock.now() - schedule.next_run_at``: the fire lateness (no provider is called). Every job must
fire exactly once; "fired" counts distinct schedules, and duplicates are reported.

Columns: lateness p50/p99/max in ms (over the fired jobs), jobs/s = fired / (last start - first
due time), CPU s = CPU of the scheduler process(es) from T until every run was recorded (children:
the sum of their CPU over that window), peak RSS = the high-water mark (VmHWM) of the scheduler process
(for several processes: the largest of them). Every cell runs in a fresh process, so the RSS of one
cell does not leak into the next. The engines run with the service's defaults: batch 100, 100 runs
in flight, 30 s leases, 1 s poll.

Rows:
- ``asyncio call_at floor``: no scheduler, one ``loop.call_at`` per job whose callback records the
  same lateness: what a bare asyncio timer loop can do in this process, on this machine;
- ``asyncio call_at + task floor``: the same, but each callback starts an asyncio task, which
  records the lateness as it starts (as a job that is a coroutine must be run);
- (a) the asyncio timer engine + the in-memory store;
- (b) the Rocketry engine adapter + the in-memory store;
- (c) the asyncio timer engine + the SQLite store, in 1 and in 3 scheduler processes on one file;
- (d) the asyncio timer engine + MongoDB, on the test server (SecantusDB, not a real mongod),
  N = 1,000 only (that server reads every match before ``limit``: see design.md).

The bench is not shipped: it may import the test-only MongoDB server from ``tests/support``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.support.mongo_server (MongoDB cells only)

from cronjob.domain.schedule import Schedule  # noqa: E402
from cronjob.domain.trigger import OnceTrigger  # noqa: E402
from cronjob.ports.clock import Clock, SystemClock  # noqa: E402
from cronjob.ports.tasks import TaskHandler, TaskOutcome  # noqa: E402
from cronjob.services.schedule_ids import new_schedule_id  # noqa: E402

TASK_TYPE = "bench.probe"
#: Schedules for SQLite are encoded once, due at this placeholder, then given their real due
#: time by a text replacement of the encoded instant (so the encoding is not on the clock).
PLACEHOLDER = datetime(2099, 1, 1, tzinfo=UTC)
MONGO_LABEL = "(MongoDB test server: SecantusDB, not a real mongod)"

ENGINES = {
    "floor": "asyncio call_at floor",
    "floortask": "asyncio call_at + task floor",
    "memory": "(a) timer + memory",
    "rocketry": "(b) rocketry + memory",
    "sqlite1": "(c) timer + SQLite, 1 process",
    "sqlite3": "(c) timer + SQLite, 3 processes",
    "mongodb": f"(d) timer + MongoDB {MONGO_LABEL}",
}
SCENARIOS = ("burst", "spread", "idle")
FULL_NS = (1_000, 10_000, 100_000)
QUICK_NS = (1_000, 10_000)
MONGO_NS = (1_000,)


# -- the probe -----------------------------------------------------------------------------------


_OUTCOME = TaskOutcome()


class LatenessProbe(TaskHandler):
    """The job: records (id, due, started) as it starts, and says it succeeded."""

    task_type = TASK_TYPE

    def __init__(self, clock: Clock, expected: int) -> None:
        self._clock = clock
        self._expected = expected
        self.fired: list[tuple[str, datetime, datetime]] = []
        self.all_fired = asyncio.Event()

    async def run(self, schedule: Schedule) -> TaskOutcome:
        now = self._clock.now()
        fired = self.fired
        fired.append((schedule.id, schedule.next_run_at, now))  # type: ignore[arg-type]
        if len(fired) >= self._expected:
            self.all_fired.set()
        return _OUTCOME


def make_schedule(due: datetime, created: datetime) -> Schedule:
    return Schedule.create(id=new_schedule_id(), task_type=TASK_TYPE, payload={}, trigger=OnceTrigger(due),
                           timezone="UTC", first_run_at=due, now=created)


def to_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def due_times(scenario: str, n: int, start: datetime, spread_s: float) -> Iterator[datetime]:
    """When each of the n jobs is due (ms precision, like every store)."""
    if scenario == "spread":
        for i in range(n):
            yield to_ms(start + timedelta(seconds=spread_s * i / n))
    else:
        due = to_ms(start)
        for _ in range(n):
            yield due


# -- results -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one cell measured, as sent back to the parent process."""

    engine: str
    scenario: str
    n: int
    fired: int = 0
    duplicates: int = 0
    lateness_ms: list[float] = field(default_factory=list)
    first_due: float | None = None  # epoch seconds
    last_start: float | None = None
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    idle_cpu_per_10s: float | None = None
    notes: list[str] = field(default_factory=list)

    def record(self, fired: list[tuple[str, datetime, datetime]], expected_ids: set[str] | None) -> None:
        counts = Counter(sid for sid, _, _ in fired)
        self.fired = len(counts)
        self.duplicates = sum(c - 1 for c in counts.values())
        if expected_ids is not None and not set(counts) <= expected_ids:
            self.notes.append(f"{len(set(counts) - expected_ids)} unexpected ids")
        self.lateness_ms = [(started - due).total_seconds() * 1000 for _, due, started in fired]
        if fired:
            self.first_due = min(due for _, due, _ in fired).timestamp()
            self.last_start = max(started for _, _, started in fired).timestamp()

    def summary(self) -> dict[str, Any]:
        late = sorted(self.lateness_ms)
        row: dict[str, Any] = {"engine": self.engine, "scenario": self.scenario, "n": self.n,
                               "fired": self.fired, "duplicates": self.duplicates,
                               "cpu_s": round(self.cpu_s, 3), "rss_mb": round(self.rss_mb, 1),
                               "idle_cpu_per_10s": self.idle_cpu_per_10s, "notes": self.notes}
        if late:
            row["p50_ms"] = _rank(late, 0.50)
            row["p99_ms"] = _rank(late, 0.99)
            row["max_ms"] = late[-1]
            span = (self.last_start or 0) - (self.first_due or 0)
            row["jobs_per_s"] = self.fired / span if span > 0 else None
        if self.scenario != "idle" and self.fired < self.n:
            self.notes.append(f"unfired: {self.n - self.fired}")
        if self.duplicates:
            self.notes.append(f"DUPLICATE RUNS: {self.duplicates}")
        return row


def _rank(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class GcPauses:
    """Collects the garbage collector's pauses per generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        for pauses in self.pauses.values():
            pauses.clear()

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._began)

    def note(self) -> str:
        full = self.pauses[2]
        total = sum(sum(p) for p in self.pauses.values())
        if not full:
            return f"GC {total * 1000:.0f} ms"
        return (f"GC {total * 1000:.0f} ms, {len(full)} full (longest "
                f"{max(full) * 1000:.0f} ms)")


GC = GcPauses()


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` rather than ``ru_maxrss``: the latter survives exec, so
    a worker started by a coordinator holding 100,000 rows would report the coordinator's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# -- in-process cells: floor, (a), (b), (d) -------------------------------------------------------


@dataclass
class Cell:
    engine: str
    scenario: str
    n: int
    spread_s: float = 10.0
    idle_s: float = 10.0
    cap_s: float = 30.0
    batch_size: int = 100
    max_in_flight: int = 100


async def _cpu_at(loop: asyncio.AbstractEventLoop, at: datetime) -> asyncio.Future[float]:
    """A future that gets this process's CPU time at the wall-clock instant ``at``."""
    result: asyncio.Future[float] = loop.create_future()
    delay = (at - datetime.now(UTC)).total_seconds()

    def sample() -> None:
        if not result.done():
            GC.reset()  # count the collector's pauses from here on
            result.set_result(time.process_time())

    loop.call_at(loop.time() + max(delay, 0.0) - 0.005, sample)  # just before the first due time
    return result


async def run_floor(cell: Cell) -> Outcome:
    """One ``loop.call_at`` per job; the callback records the lateness like the probe does
    (``floortask``: the callback starts an asyncio task per job, which records it as it starts)."""
    out = Outcome(ENGINES[cell.engine], cell.scenario, cell.n)
    loop = asyncio.get_running_loop()
    clock = SystemClock()
    fired: list[tuple[str, datetime, datetime]] = []
    done = asyncio.Event()
    lead = 1.0 + cell.n * 10e-6
    start = datetime.now(UTC) + timedelta(seconds=3600 if cell.scenario == "idle" else lead)
    ids = [uuid.uuid4().hex for _ in range(cell.n)]

    def fire(sid: str, due: datetime) -> None:
        fired.append((sid, due, clock.now()))
        if len(fired) >= cell.n:
            done.set()

    async def job(sid: str, due: datetime) -> None:
        fire(sid, due)

    def start_job(sid: str, due: datetime) -> None:
        loop.create_task(job(sid, due))

    callback = start_job if cell.engine == "floortask" else fire
    base_wall, base_loop = datetime.now(UTC), loop.time()
    handles = [loop.call_at(base_loop + (due - base_wall).total_seconds(), callback, sid, due)
               for sid, due in zip(ids, due_times(cell.scenario, cell.n, start, cell.spread_s), strict=True)]
    if cell.scenario == "idle":
        # Awake once a second, as the engine's poll (1 s) wakes it: on a VM each wake-up can cost
        # milliseconds of CPU by itself, which the engine's idle figure includes too.
        poll = loop.create_task(_poll_like_the_engine())
        await _idle_window(out, cell)
        poll.cancel()
        for handle in handles:
            handle.cancel()
        out.record(fired, set(ids))
        out.rss_mb = peak_rss_mb()
        return out
    cpu0 = await _cpu_at(loop, start)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=_deadline(cell, start))
    out.cpu_s = time.process_time() - await cpu0
    out.record(fired, set(ids))
    out.rss_mb = peak_rss_mb()
    return out


async def _poll_like_the_engine(interval: float = 1.0) -> None:
    while True:
        await asyncio.sleep(interval)


def _deadline(cell: Cell, start: datetime) -> float:
    """Seconds from now until the cell gives up waiting for unfired jobs."""
    last_due = start + timedelta(seconds=cell.spread_s if cell.scenario == "spread" else 0)
    return max((last_due - datetime.now(UTC)).total_seconds(), 0.0) + cell.cap_s


async def _idle_window(out: Outcome, cell: Cell, warmup: float = 0.5) -> None:
    await asyncio.sleep(warmup)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(cell.idle_s)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    out.cpu_s = cpu
    out.idle_cpu_per_10s = cpu / wall * 10


def _engine_class(name: str) -> type:
    if name == "rocketry":
        from cronjob_adapters.engine.rocketry_engine import RocketryEngine

        return RocketryEngine
    from cronjob_adapters.engine.timer import AsyncioTimerEngine

    return AsyncioTimerEngine


def _collector() -> Any:
    """The scheduler's full-collection policy, installed as ``cronjob scheduler`` installs it
    (before the store is filled, so the schedules are not frozen with the start-up heap)."""
    from cronjob_adapters.engine.collector import QuietCollector

    collector = QuietCollector()
    collector.install()
    return collector


def _dispatcher(repository: Any, probe: LatenessProbe, clock: Clock, signal: Any, cell: Cell, owner: str) -> Any:
    from cronjob.services.dispatcher import Dispatcher, DispatcherSettings

    return Dispatcher(repository, {TASK_TYPE: probe}, clock, signal,
                      DispatcherSettings(owner=owner, batch_size=cell.batch_size,
                                         max_in_flight=cell.max_in_flight))


async def run_in_process(cell: Cell) -> Outcome:
    """(a), (b) and (d): the engine, the dispatcher and the probe in this process."""
    from cronjob_adapters.memory.signal import InProcessWorkSignal

    out = Outcome(ENGINES[cell.engine], cell.scenario, cell.n)
    engine_class = _engine_class(cell.engine)  # import Rocketry before the clock starts
    clock = SystemClock()
    probe = LatenessProbe(clock, cell.n)
    server = None
    if cell.engine == "mongodb":
        repository, server, insert = await _mongo_store(cell)
    else:
        from cronjob_adapters.memory.repository import InMemoryScheduleRepository

        repository = InMemoryScheduleRepository()
        insert = None
    try:
        signal = InProcessWorkSignal(clock)
        dispatcher = _dispatcher(repository, probe, clock, signal, cell, "bench-0")
        collector = _collector()
        engine = engine_class(dispatcher, repository, signal, clock, poll_interval=1.0, collector=collector)
        start, ids = await _fill(cell, repository, insert)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        running = asyncio.create_task(engine.run(stop))
        if cell.scenario == "idle":
            await _idle_window(out, cell)
        else:
            cpu0 = await _cpu_at(loop, start)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(probe.all_fired.wait(), timeout=_deadline(cell, start))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    while dispatcher.in_flight:  # the last runs record their outcome
                        await asyncio.sleep(0.001)
            out.cpu_s = time.process_time() - await cpu0
        stop.set()
        try:
            await asyncio.wait_for(running, timeout=60)
        except TimeoutError:
            out.notes.append("engine did not stop within 60 s")
        out.record(probe.fired, ids)
        out.rss_mb = peak_rss_mb()
        if server is not None:
            out.notes.append(f"server CPU {_proc_cpu(server.pid):.1f} s (whole run)")
        return out
    finally:
        await repository.close()
        if server is not None:
            server.stop()
            shutil.rmtree(server.storage_dir.parent, ignore_errors=True)


async def _fill(cell: Cell, repository: Any, insert: Callable[[list[Schedule]], Any] | None
                ) -> tuple[datetime, set[str]]:
    """Write the cell's schedules into the store; return the first due time and the ids.

    The due time is chosen after timing a sample of the work, far enough ahead that all of it
    is in the store (and the engine running) well before it; a late fill is reported.
    """
    sample = min(cell.n, 1000)
    t0 = time.perf_counter()
    now = datetime.now(UTC)
    scratch = [make_schedule(now, now) for _ in range(sample)]
    per_item = (time.perf_counter() - t0) / sample
    del scratch
    per_item *= 3 if insert is None else 6  # building + adding (+ encoding and the round trips)
    lead = 1.0 + cell.n * per_item
    start = datetime.now(UTC) + timedelta(seconds=3600 if cell.scenario == "idle" else lead)
    ids: set[str] = set()
    batch: list[Schedule] = []
    for due in due_times(cell.scenario, cell.n, start, cell.spread_s):
        schedule = make_schedule(due, datetime.now(UTC))
        ids.add(schedule.id)
        if insert is None:
            await repository.add(schedule)  # the store keeps its own copy
        else:
            batch.append(schedule)
    if insert is not None:
        await insert(batch)
    del batch
    gc.collect()
    margin = (start - datetime.now(UTC)).total_seconds()
    if margin < 0.2:
        print(f"warning: the fill ended {margin:.2f} s before the first due time", file=sys.stderr)
        if margin < 0:
            raise RuntimeError("the fill overran the first due time: results would be meaningless")
    return start, ids


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a live process, from /proc."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


async def _mongo_store(cell: Cell) -> tuple[Any, Any, Callable[[list[Schedule]], Any]]:
    """Start the test server, open a repository on it, and a bulk insert of codec documents."""
    from pymongo import AsyncMongoClient

    from cronjob_adapters.codec import ScheduleCodec
    from cronjob_adapters.mongodb.repository import MongoScheduleRepository
    from cronjob_bootstrap.triggers import default_trigger_parser
    from tests.support.mongo_server import MongoTestServer

    workdir = Path(tempfile.mkdtemp(prefix="cronjob-bench-mongo-"))
    server = MongoTestServer(workdir / "db")
    uri = server.start()
    codec = ScheduleCodec(default_trigger_parser())
    repository = MongoScheduleRepository.from_uri(uri, "bench", codec)
    await repository.initialize()

    async def insert(schedules: list[Schedule]) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
        try:
            collection = client["bench"]["schedules"]
            for i in range(0, len(schedules), 1000):
                await collection.insert_many([codec.to_document(s) for s in schedules[i:i + 1000]])
        finally:
            await client.close()

    return repository, server, insert


# -- SQLite cells: a coordinator and 1 or 3 worker processes -----------------------------------------


def _sqlite_rows(n: int, codec: Any, path: Path) -> list[dict[str, Any]]:
    """The adapter's own rows for n schedules due at PLACEHOLDER."""
    from cronjob_adapters.sqlite.repository import SqliteScheduleRepository

    encoder = SqliteScheduleRepository(path, codec)
    created = datetime.now(UTC)
    return [encoder._row(make_schedule(PLACEHOLDER, created)) for _ in range(n)]  # noqa: SLF001


def _insert_statement(row: dict[str, Any]) -> str:
    """The INSERT of one of the adapter's rows (every column it fills)."""
    return (f"INSERT INTO schedules ({', '.join(row)}) VALUES ({', '.join(':' + column for column in row)})")


def _epoch_ms(value: datetime) -> int:
    return int(round(value.timestamp() * 1000))


class _Worker:
    """One scheduler process (``--worker``), driven over its stdin: ``at <epoch>`` starts its CPU
    window at that instant, ``stop`` ends it; it answers with one JSON line on stdout."""

    def __init__(self, path: Path, owner: str, cell: Cell, logdir: Path) -> None:
        self.fired_path = logdir / f"{owner}.fired"
        spec = json.dumps({"path": str(path), "owner": owner, "cell": cell.__dict__,
                           "fired_path": str(self.fired_path)})
        self.log = (logdir / f"{owner}.log").open("wb")
        self.process = subprocess.Popen([sys.executable, __file__, "--worker", spec], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT)

    def expect(self, word: str, timeout: float = 60.0) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"worker {self.process.pid} exited {self.process.wait()}")
            if line.startswith(word):
                return line[len(word):].strip()
        raise TimeoutError(f"worker {self.process.pid} did not say {word!r}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((line + "\n").encode())
        self.process.stdin.flush()

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # only when something went wrong; by PID
            self.process.wait(timeout=10)
        self.log.close()


def run_sqlite(cell: Cell, processes: int) -> Outcome:
    from cronjob_adapters.codec import ScheduleCodec
    from cronjob_bootstrap.triggers import default_trigger_parser

    out = Outcome(ENGINES[f"sqlite{processes}"], cell.scenario, cell.n)
    workdir = Path(tempfile.mkdtemp(prefix="cronjob-bench-sqlite-"))
    path = workdir / "bench.sqlite3"
    codec = ScheduleCodec(default_trigger_parser())
    rows = _sqlite_rows(cell.n, codec, path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    workers: list[_Worker] = []
    try:
        asyncio.run(_init_sqlite(path, codec))
        workers = [_Worker(path, f"bench-w{i}", cell, workdir) for i in range(processes)]
        for worker in workers:
            worker.expect("ready")
        # Give the rows their due times, then write them in one transaction.
        lead = 2.0 + cell.n * 40e-6
        start = to_ms(datetime.now(UTC) + timedelta(seconds=3600 if cell.scenario == "idle" else lead))
        placeholder_text = PLACEHOLDER.isoformat()
        placeholder_ms = _epoch_ms(PLACEHOLDER)
        for row, due in zip(rows, due_times(cell.scenario, cell.n, start, cell.spread_s), strict=True):
            row["next_run_at"] = _epoch_ms(due)
            row["doc"] = row["doc"].replace(placeholder_text, due.isoformat())
        assert rows[0]["next_run_at"] != placeholder_ms
        ids = {row["id"] for row in rows}
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_insert_statement(rows[0]), rows)
        conn.execute("COMMIT")
        del rows
        margin = (start - datetime.now(UTC)).total_seconds()
        if cell.scenario != "idle" and margin < 1.2:  # the workers poll every second
            out.notes.append(f"fill ended {margin:.2f} s before the due time")
        if cell.scenario == "idle":
            window_start = datetime.now(UTC) + timedelta(seconds=1.5)  # every worker has looked
            for worker in workers:
                worker.send(f"at {window_start.timestamp()}")
            time.sleep(1.5 + cell.idle_s)
        else:
            for worker in workers:
                worker.send(f"at {start.timestamp()}")
            deadline = time.monotonic() + _deadline(cell, start)
            while time.monotonic() < deadline:
                (done,) = conn.execute("SELECT count(*) FROM schedules WHERE status = 'succeeded'").fetchone()
                if done >= cell.n:
                    break
                time.sleep(0.1)
        for worker in workers:
            worker.send("stop")
        reports = [json.loads(worker.expect("result", timeout=120)) for worker in workers]
        per_process = []
        fired = []
        for worker in workers:
            lines = worker.fired_path.read_text().split()
            per_process.append(len(lines) // 3)
            fired.extend((lines[i], datetime.fromtimestamp(float(lines[i + 1]), UTC),
                          datetime.fromtimestamp(float(lines[i + 2]), UTC)) for i in range(0, len(lines), 3))
        out.record(fired, ids)
        out.cpu_s = sum(r["cpu_s"] for r in reports)
        out.rss_mb = max(r["rss_mb"] for r in reports)
        if cell.scenario == "idle":
            out.idle_cpu_per_10s = sum(r["cpu_s"] / r["wall_s"] * 10 for r in reports)
        if processes > 1 and cell.scenario != "idle":
            out.notes.append("runs per process: " + "/".join(map(str, per_process)) + "; RSS: the largest")
        return out
    finally:
        conn.close()
        for worker in workers:
            worker.end()
        shutil.rmtree(workdir, ignore_errors=True)


async def _init_sqlite(path: Path, codec: Any) -> None:
    from cronjob_adapters.sqlite.repository import SqliteScheduleRepository

    repository = SqliteScheduleRepository(path, codec)
    await repository.initialize()
    await repository.close()


async def worker_main(spec: dict[str, Any]) -> None:
    """A scheduler process on the SQLite file: engine + dispatcher + probe, driven over stdin."""
    from cronjob_adapters.codec import ScheduleCodec
    from cronjob_adapters.engine.timer import AsyncioTimerEngine
    from cronjob_adapters.memory.signal import InProcessWorkSignal
    from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
    from cronjob_bootstrap.triggers import default_trigger_parser

    cell = Cell(**spec["cell"])
    clock = SystemClock()
    probe = LatenessProbe(clock, cell.n)
    repository = SqliteScheduleRepository(spec["path"], ScheduleCodec(default_trigger_parser()))
    await repository.initialize()
    signal = InProcessWorkSignal(clock)
    dispatcher = _dispatcher(repository, probe, clock, signal, cell, spec["owner"])
    engine = AsyncioTimerEngine(dispatcher, repository, signal, clock, poll_interval=1.0,
                                collector=_collector())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(engine.run(stop))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    cpu0: asyncio.Future[float] | None = None
    window_from: float | None = None
    while line := (await reader.readline()).decode().strip():
        if line.startswith("at "):
            at = datetime.fromtimestamp(float(line[3:]), UTC)
            window_from = at.timestamp()
            cpu0 = await _cpu_at(loop, at)
        elif line == "stop":
            break
    cpu_end, wall_end = time.process_time(), time.time()
    stop.set()
    await asyncio.wait_for(running, timeout=60)
    await repository.close()
    cpu_start = await cpu0 if cpu0 is not None and cpu0.done() else cpu_end
    rss = peak_rss_mb()  # before writing the report
    with open(spec["fired_path"], "w") as fired:
        for sid, due, started in probe.fired:
            fired.write(f"{sid} {due.timestamp()!r} {started.timestamp()!r}\n")
    report = {"cpu_s": cpu_end - cpu_start, "wall_s": wall_end - (window_from or wall_end), "rss_mb": rss}
    print("result " + json.dumps(report), flush=True)


# -- where a burst's time goes ---------------------------------------------------------------------


async def breakdown(n: int = 10_000, batch: int = 100) -> list[tuple[str, float]]:
    """The essential steps of running n one-offs, each timed alone over all n jobs (µs per job):
    what any engine on this store and domain must spend before the last of a burst can start."""
    from cronjob_adapters.memory.repository import InMemoryScheduleRepository
    from cronjob.domain.schedule import ScheduleStatus

    steps: list[tuple[str, float]] = []

    async def empty() -> None:
        return None

    t0 = time.perf_counter()
    await asyncio.gather(*(asyncio.create_task(empty()) for _ in range(n)))
    steps.append(("an asyncio task per job (create and run an empty coroutine)", time.perf_counter() - t0))

    repository = InMemoryScheduleRepository()
    now = datetime.now(UTC)
    for _ in range(n):
        await repository.add(make_schedule(now, now))
    gc.collect()
    claimed: list[Schedule] = []
    t0 = time.perf_counter()
    while len(claimed) < n:
        claimed += await repository.claim_due(now=now, owner="bench", lease_for=timedelta(seconds=30), limit=batch)
    steps.append((f"fenced claim: in-memory store, batches of {batch}", time.perf_counter() - t0))

    t0 = time.perf_counter()
    for schedule in claimed:
        attempt_id = schedule.lease.attempt_id  # type: ignore[union-attr]
        schedule.mark_started(attempt_id=attempt_id, now=now)
        schedule.succeed(attempt_id=attempt_id, now=now)
    steps.append(("the run's record: started + succeeded (attempt, two events)", time.perf_counter() - t0))

    t0 = time.perf_counter()
    for schedule in claimed:
        await repository.save(schedule, expected_status=ScheduleStatus.RUNNING,
                              attempt_id=schedule.attempts[-1].attempt_id)
    steps.append(("fenced save of the outcome: in-memory store", time.perf_counter() - t0))
    return [(label, seconds / n * 1e6) for label, seconds in steps]


def breakdown_table(steps: list[tuple[str, float]], n: int = 10_000) -> str:
    lines = ["| step | µs per job | ms for 10,000 |", "|---|---|---|"]
    for label, micros in steps:
        lines.append(f"| {label} | {micros:.1f} | {micros * n / 1000:.0f} |")
    total = sum(micros for _, micros in steps)
    lines.append(f"| **sum** (the 10,000-burst target of 85 ms allows 8.5 µs) | **{total:.1f}** | **{total * n / 1000:.0f}** |")
    return "\n".join(lines)


# -- the parent: cells in child processes, one table ------------------------------------------------


def scenario_label(cell: Cell) -> str:
    if cell.scenario == "spread":
        return f"spread {cell.spread_s:g} s"
    if cell.scenario == "idle":
        return f"idle ({cell.idle_s:g} s window)"
    return cell.scenario


def run_cell(cell: Cell) -> dict[str, Any]:
    if cell.engine in ("floor", "floortask"):
        out = asyncio.run(run_floor(cell))
    elif cell.engine in ("sqlite1", "sqlite3"):
        out = run_sqlite(cell, int(cell.engine[-1]))
    else:
        out = asyncio.run(run_in_process(cell))
    if cell.engine not in ("sqlite1", "sqlite3") and cell.scenario != "idle":
        out.notes.append(GC.note())
    row = out.summary()
    row["label"] = scenario_label(cell)
    return row


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = ["engine / store", "scenario", "N", "fired", "p50 ms", "p99 ms", "max ms", "jobs/s", "CPU s",
            "peak RSS MB", "idle CPU s/10 s", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['engine']} | {r['label']} | {_fmt(r['n'])} | | | | | | | | | "
                         f"ERROR: {r['error']} |")
            continue
        idle = r["scenario"] == "idle"
        cells = [r["engine"], r.get("label", r["scenario"]), _fmt(r["n"]), _fmt(r["fired"]),
                 "" if idle else _fmt(r.get("p50_ms")), "" if idle else _fmt(r.get("p99_ms")),
                 "" if idle else _fmt(r.get("max_ms")), "" if idle else _fmt(r.get("jobs_per_s"), 0),
                 _fmt(r["cpu_s"], 2), _fmt(r["rss_mb"], 0),
                 _fmt(r.get("idle_cpu_per_10s"), 3), "; ".join(r["notes"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plan(args: argparse.Namespace) -> list[Cell]:
    engines = args.engine.split(",") if args.engine else list(ENGINES)
    scenarios = args.scenario.split(",") if args.scenario else list(SCENARIOS)
    if args.n:
        ns = [int(x.replace("_", "")) for x in args.n.split(",")]
    else:
        ns = list(QUICK_NS if args.quick else FULL_NS)
    for name in engines:
        if name not in ENGINES:
            raise SystemExit(f"unknown engine {name!r}: choose from {', '.join(ENGINES)}")
    for name in scenarios:
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}: choose from {', '.join(SCENARIOS)}")
    idle_s = args.idle_seconds if args.idle_seconds is not None else (3.0 if args.quick else 10.0)
    spread_s = args.spread_seconds if args.spread_seconds is not None else (5.0 if args.quick else 10.0)
    cells = []
    for engine in engines:
        for scenario in scenarios:
            for n in ns:
                if engine == "mongodb" and n not in MONGO_NS and not args.n:
                    continue
                cells.append(Cell(engine, scenario, n, spread_s=spread_s, idle_s=idle_s,
                                  cap_s=args.cap, batch_size=args.batch_size, max_in_flight=args.max_in_flight))
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="N = 1,000 and 10,000 only, spread over 5 s, idle window 3 s (about 3 minutes)")
    parser.add_argument("--n", help="comma-separated N (e.g. 1000,10000)")
    parser.add_argument("--scenario", help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--engine", help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--spread-seconds", type=float, default=None, help="default 10 s; --quick 5 s")
    parser.add_argument("--idle-seconds", type=float, default=None, help="idle window (default 10 s; --quick 3 s)")
    parser.add_argument("--cap", type=float, default=30.0,
                        help="seconds after the last due time after which unfired jobs are given up on")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-in-flight", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--breakdown", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.breakdown:
        print("breakdown " + json.dumps(asyncio.run(breakdown())), flush=True)
        return 0

    if args.worker:
        asyncio.run(worker_main(json.loads(args.worker)))
        return 0
    if args.cell:
        print("cell " + json.dumps(run_cell(Cell(**json.loads(args.cell)))), flush=True)
        return 0

    cells = plan(args)
    began = time.monotonic()
    rows: list[dict[str, Any]] = []
    for cell in cells:
        label = f"{ENGINES[cell.engine]} / {cell.scenario} / N={cell.n:,}"
        print(f"[{time.monotonic() - began:6.1f} s] {label} ...", file=sys.stderr, flush=True)
        limit = 120 + cell.cap_s + cell.spread_s + cell.idle_s + cell.n * 2e-3
        try:
            done = subprocess.run([sys.executable, __file__, "--cell", json.dumps(cell.__dict__)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=limit)
            found = [line for line in done.stdout.splitlines() if line.startswith("cell ")]
            if done.returncode != 0 or not found:
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"exit {done.returncode}: {tail}")
            row = json.loads(found[-1][5:])
            for line in done.stderr.splitlines():
                if line.startswith("warning:"):
                    row["notes"].append(line)
        except (subprocess.TimeoutExpired, RuntimeError) as exc:
            row = {"engine": ENGINES[cell.engine], "scenario": cell.scenario, "label": scenario_label(cell),
                   "n": cell.n, "error": str(exc)}
        rows.append(row)
        print(table([row]).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, {time.monotonic() - began:.0f} s in all;"
          f" batch {args.batch_size}, {args.max_in_flight} in flight, 30 s leases, 1 s poll.\n")
    print(table(rows))
    if any(cell.engine == "memory" for cell in cells):
        done = subprocess.run([sys.executable, __file__, "--breakdown"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        found = [line for line in done.stdout.splitlines() if line.startswith("breakdown ")]
        if found:
            print("\nWhere a burst's time goes (each step alone, over 10,000 jobs, in a fresh process):\n")
            print(breakdown_table([tuple(step) for step in json.loads(found[-1][10:])]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
