#!/usr/bin/env python
"""How the API and the scheduler fare as the SQLite store grows: the same requests on stores of N schedules.

Run it with ``.venv/bin/python bench/store_size_bench.py --n 10000,1000000 --dir var-big``
(``--help`` for options). For each N it writes a realistic store (``big_store.py``: a WhatsApp
customer's 90 days, mostly finished messages, the service's own webhook deliveries, large users
and campaigns) into ``<dir>/n<N>/`` unless one is there, starts ``cronjob serve`` on it
(loopback, its own port) and times, over one kept-alive connection:

- the start-up, from the process's start to ``/readyz`` answering 200;
- ``GET /v1/stats`` and ``/metrics`` as read from the store (more than 2 s apart, so that neither
  is answered from the other's read);
- ``GET /v1/schedules`` with each filter (a large user's, a large campaign's, a due window, a
  status) and a page 20 pages deep by cursor;
- creations (``POST /v1/schedules``, one each);
- the bulk actions on a large user and a large campaign, 1,000 at a time (``limit``);
- a burst of 1,000 one-offs due at one instant (created by one batch): how late their runs
  started (from their attempts);
- last, with ``--purge``, ``cronjob.purge_runs`` deleting every finished schedule older than 30
  days (``limit`` 1,000,000), and the creations made while it ran (this empties the store of
  them: keep it for the last run).

Each read is made 5 times: the median and the slowest. Stores are large (about 4.5 GB per million
schedules): delete the directory when done. Figures depend on the machine and its page cache:
compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from big_store import fill
from served import TOKEN, stop

BASE = "http://127.0.0.1:{port}"
USER_TYPES = ["whatsapp.template"]


@contextmanager
def serving(data_dir: Path, port: int, source: Path | None) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """``cronjob serve`` (the code of the checkout ``source``, if given) on the store in
    ``data_dir``, and the seconds until its ``/readyz`` said 200."""
    code = {} if source is None else {
        "PYTHONPATH": os.pathsep.join(str(source.resolve() / part) for part in ("src", "adapters", "bootstrap"))}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRONJOB_")}, **code,
           "CRONJOB_DATA_DIR": str(data_dir), "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN,
           "CRONJOB_LOG_LEVEL": "WARNING"}
    log = (data_dir / "serve.log").open("ab")
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "cronjob_bootstrap.cli", "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if server.poll() is not None or time.perf_counter() - began > 600:
                raise SystemExit(f"cronjob serve did not get ready: see {data_dir / 'serve.log'}")
            try:
                if httpx.get(BASE.format(port=port) + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield server, time.perf_counter() - began
    finally:
        stop(server, 60)
        log.close()


def timed(call: Callable[[], httpx.Response], times: int = 5, pause: float = 0.0) -> tuple[float, float, str]:
    """The median and slowest of ``times`` calls, in ms, and the statuses seen."""
    took, statuses = [], set()
    for i in range(times):
        if i and pause:
            time.sleep(pause)
        start = time.perf_counter()
        answer = call()
        took.append((time.perf_counter() - start) * 1000)
        statuses.add(answer.status_code)
    return statistics.median(took), max(took), ",".join(str(s) for s in sorted(statuses))


def deep(http: httpx.Client, params: dict[str, Any], pages: int) -> Callable[[], httpx.Response]:
    """A call of the page ``pages`` deep by cursor of the list ``params``."""
    cursor = None
    for _ in range(pages - 1):
        found = http.get("/v1/schedules", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        cursor = found["next_cursor"]
        if cursor is None:
            break
    return lambda: http.get("/v1/schedules", params={**params, **({"cursor": cursor} if cursor else {})})


def burst(http: httpx.Client, tag: str, n: int = 1000) -> tuple[float, float, str]:
    """``n`` one-offs due at one instant, 3 s after the batch that makes them is answered: the
    median and p99 of how late their runs started, in ms."""
    due = datetime.now(UTC) + timedelta(seconds=6)
    body = {"schedules": [{"task": {"type": "whatsapp.template", "to": f"55119{i:08d}", "body": "Olá, {{1}}!",
                                    "templateName": "hello", "params": ["x"]},
                           "schedule": f"once @ {due.isoformat()}", "labels": {"campaign": tag}} for i in range(n)]}
    answer = http.post("/v1/schedules:batch", json=body)
    assert answer.is_success, answer.text[:300]
    late: list[float] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(2)
        items, cursor = [], None
        while True:
            page = http.get("/v1/schedules", params={"label": f"campaign={tag}", "limit": 500,
                                                      **({"cursor": cursor} if cursor else {})}).json()
            items += page["items"]
            if (cursor := page["next_cursor"]) is None:
                break
        if all(s["attempts"] for s in items):
            late = sorted((datetime.fromisoformat(s["attempts"][0]["started_at"])
                           - datetime.fromisoformat(s["attempts"][0]["scheduled_for"])).total_seconds() * 1000
                          for s in items)
            break
    if not late:
        return float("nan"), float("nan"), "unfired"
    return statistics.median(late), late[int(len(late) * 0.99) - 1], f"{len(late)} fired"


def creations(http: httpx.Client, count: int, tag: str) -> tuple[float, float, str]:
    took, statuses = [], set()
    for i in range(count):
        start = time.perf_counter()
        answer = http.post("/v1/schedules", json={
            "task": {"type": "whatsapp.template", "to": f"55118{i:08d}", "body": "Olá, {{1}}!",
                     "templateName": "hello", "params": ["x"]},
            "schedule": "once @ 2030-06-21 14:00", "timezone": "America/Sao_Paulo",
            "userId": "acme", "labels": {"campaign": tag}})
        took.append((time.perf_counter() - start) * 1000)
        statuses.add(answer.status_code)
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99) - 1], ",".join(str(s) for s in sorted(statuses))


def purge(http: httpx.Client) -> list[tuple[str, tuple[float, float, str]]]:
    """Run ``cronjob.purge_runs`` (30 days, limit 1,000,000) now; creations while it runs."""
    made = http.post("/v1/schedules", json={
        "task": {"type": "python", "routine": "cronjob.purge_runs",
                 "args": {"older_than_days": 30, "limit": 1_000_000}},
        "send_at": datetime.now(UTC).isoformat()}).json()
    meanwhile: list[float] = []
    statuses: set[int] = set()
    ended = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=str(http.base_url), headers=http.headers, timeout=60) as other:
            i = 0
            while not ended.is_set():
                start = time.perf_counter()
                answer = other.post("/v1/schedules", json={
                    "task": {"type": "whatsapp.template", "to": f"55117{i:08d}", "body": "Olá, {{1}}!",
                             "templateName": "hello", "params": ["x"]},
                    "schedule": "once @ 2030-06-21 14:00", "timezone": "UTC"})
                meanwhile.append((time.perf_counter() - start) * 1000)
                statuses.add(answer.status_code)
                i += 1
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    began = time.perf_counter()
    try:
        while True:
            time.sleep(0.5)
            found = http.get(f"/v1/schedules/{made['id']}").json()
            if found["status"] not in ("scheduled", "running") or time.perf_counter() - began > 1800:
                break
    finally:
        ended.set()
        watcher.join()
    run = found["attempts"][-1] if found["attempts"] else {}
    took = ((datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds()
            * 1000 if run else float("nan"))
    meanwhile.sort()
    return [(f"cronjob.purge_runs, 30 days ({found['result'].get('deleted', found['status'])} deleted)",
             (took, took, found["status"])),
            ("POST /v1/schedules while it ran (p50, max)",
             (statistics.median(meanwhile) if meanwhile else float("nan"), max(meanwhile, default=float("nan")),
              ",".join(str(s) for s in sorted(statuses))))]


def measure(data_dir: Path, port: int, with_purge: bool,
            source: Path | None) -> list[tuple[str, tuple[float, float, str]]]:
    rows: list[tuple[str, tuple[float, float, str]]] = []
    with serving(data_dir, port, source) as (_, ready_s):
        rows.append(("start-up to /readyz 200 (s)", (ready_s, ready_s, "200")))
        now = datetime.now(UTC)
        window = {"due_after": now.isoformat(), "due_before": (now + timedelta(days=1)).isoformat()}
        with httpx.Client(base_url=BASE.format(port=port), headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=120) as http:
            rows.append(("GET /v1/stats (a read each)", timed(lambda: http.get("/v1/stats"), 3, pause=2.1)))
            rows.append(("GET /metrics (a read each)", timed(lambda: http.get("/metrics"), 3, pause=2.1)))
            lists = {
                "": {}, "status=dead": {"status": "dead"}, "status=scheduled": {"status": "scheduled"},
                "type=whatsapp.template": {"type": "whatsapp.template"},
                "status=dead&type=webhook.delivery": {"status": "dead", "type": "webhook.delivery"},
                "userId=acme": {"userId": "acme"}, "userId=acme&status=scheduled": {"userId": "acme", "status": "scheduled"},
                "label=campaign=black-friday": {"label": "campaign=black-friday"},
                "label=campaign=black-friday&status=scheduled": {"label": "campaign=black-friday", "status": "scheduled"},
                "label=order=o-1001": {"label": "order=o-1001"},
                "due in 24 h": window, "due in 24 h, userId=acme": {**window, "userId": "acme"},
                "due in 24 h, label=campaign=black-friday": {**window, "label": "campaign=black-friday"},
                "updated in the last hour": {"updated_after": (now - timedelta(hours=1)).isoformat()},
            }
            for name, params in lists.items():
                rows.append((f"GET /v1/schedules?{name}&limit=50",
                             timed(lambda p=params: http.get("/v1/schedules", params={**p, "limit": 50}))))
            rows.append(("the same, 20 pages deep by cursor (newest first)",
                         timed(deep(http, {"limit": 50}, 20))))
            rows.append(("the same, 20 pages deep by cursor (due in 7 days)",
                         timed(deep(http, {"limit": 50, "due_after": now.isoformat(),
                                           "due_before": (now + timedelta(days=7)).isoformat()}, 20))))
            rows.append(("POST /v1/schedules (200, one each: p50, p99)", creations(http, 200, "created")))
            for name, path, body in (
                ("pause userId=acme", ":pause", {"userId": "acme"}),
                ("resume userId=acme", ":resume", {"userId": "acme"}),
                ("pause label campaign=black-friday", ":pause", {"labels": {"campaign": "black-friday"}}),
                ("resume label campaign=black-friday", ":resume", {"labels": {"campaign": "black-friday"}}),
                ("cancel userId=acme, due in 24 h", ":cancel", {"userId": "acme", **window}),
            ):
                rows.append((f"POST /v1/schedules{path} {name}, limit 1,000",
                             timed(lambda p=path, b=body: http.post(f"/v1/schedules{p}", json={**b, "limit": 1000}), 1)))
            rows.append(("burst of 1,000 due at once: lateness (p50, p99)", burst(http, "burst")))
            rows.append(("POST /v1/schedules:retry status=dead, limit 1,000",
                         timed(lambda: http.post("/v1/schedules:retry",
                                                 json={"status": "dead", "type": USER_TYPES, "limit": 1000}), 1)))
            if with_purge:
                rows.extend(purge(http))
    return rows


def table(results: dict[int, list[tuple[str, tuple[float, float, str]]]]) -> str:
    sizes = sorted(results)
    head = "| measured | " + " | ".join(f"N = {n:,}: median (max) ms" for n in sizes) + " |"
    lines = [head, "|---|" + "---|" * len(sizes)]
    for i, (name, _) in enumerate(results[sizes[0]]):
        cells = []
        for n in sizes:
            mid, top, statuses = results[n][i][1]
            note = "" if statuses in ("200", "201") else f" [{statuses}]"
            cells.append(f"{mid:,.1f} ({top:,.1f}){note}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="10000,1000000", help="store sizes, comma-separated")
    parser.add_argument("--dir", type=Path, default=Path("var-big"), help="where the stores are kept")
    parser.add_argument("--port", type=int, default=18390)
    parser.add_argument("--purge", action="store_true", help="end with cronjob.purge_runs (deletes most rows)")
    parser.add_argument("--source", type=Path, default=None,
                        help="serve the code of this checkout (e.g. a git worktree of an earlier commit)")
    args = parser.parse_args(argv)
    results = {}
    for n in (int(x) for x in args.n.split(",")):
        data_dir = args.dir / f"n{n}"
        if not (data_dir / "cronjob.sqlite3").exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            print(f"writing a store of {n:,}: {fill(data_dir / 'cronjob.sqlite3', n):.0f} s", file=sys.stderr)
        results[n] = measure(data_dir, args.port, args.purge, args.source)
        print(table({n: results[n]}), file=sys.stderr)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
