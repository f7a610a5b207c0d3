#!/usr/bin/env python
"""Benchmark of the HTTP API as a client sees it: how long a request takes, one connection.

Run it with ``make bench-api`` (or ``.venv/bin/python bench/api_bench.py``; ``--help`` for options).

It starts ``cronjob serve`` (API and scheduler in one process, the embedded SQLite store in a
temporary directory, loopback only) and, over one kept-alive connection as an SDK or an ingress
holds it, times:

- ``GET /healthcheck`` (which pings the store) and ``GET /v1/schedules?limit=50``, N times each;
- ``POST /v1/schedules``: N one-off WhatsApp template messages, one request each;
- ``POST /v1/schedules:batch``: the same N in batches of 1,000 (each item with an
  ``idempotency_key``), then the same batches sent again (every item a replay).

Columns: requests, p50/p99/max in ms per request, schedules per second where schedules are
created, and the server's CPU seconds over the row. The schedules are due in 2030, so the
scheduler stays idle. Figures depend on the machine: compare rows of one run.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from served import TOKEN, served

TEMPLATE = {"type": "whatsapp.template", "body": "Olá, {{1}}!", "templateName": "hello"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message(i: int, campaign: str) -> dict[str, Any]:
    return {"task": {**TEMPLATE, "to": f"55119{i:08d}", "params": [f"N{i}"]}, "schedule": "once @ 2030-06-21 14:00",
            "timezone": "America/Sao_Paulo", "labels": {"campaign": campaign}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def timed(label: str, pid: int, calls: list[Callable[[], httpx.Response]], created: int = 0) -> dict[str, Any]:
    """Run ``calls`` one after the other; each must answer 2xx."""
    took: list[float] = []
    cpu0, began = cpu_seconds(pid), time.perf_counter()
    for call in calls:
        start = time.perf_counter()
        answer = call()
        took.append(time.perf_counter() - start)
        if not answer.is_success:
            raise SystemExit(f"{label}: {answer.status_code} {answer.text[:300]}")
    wall, cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu0
    ordered = sorted(took)
    return {"row": label, "requests": len(calls), "p50": rank(ordered, 0.5) * 1000, "p99": rank(ordered, 0.99) * 1000,
            "max": ordered[-1] * 1000, "per_s": created / wall if created else None, "cpu": cpu}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| request | requests | p50 ms | p99 ms | max ms | schedules/s | server CPU s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        per_s = f"{r['per_s']:,.0f}" if r["per_s"] else ""
        lines.append(f"| {r['row']} | {r['requests']:,} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
                     f"{per_s} | {r['cpu']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="schedules created by each creating row (default 2,000)")
    parser.add_argument("--port", type=int, default=None, help="the loopback port to serve on (default: a free one)")
    args = parser.parse_args(argv)
    n = args.n
    port = args.port or free_port()
    with tempfile.TemporaryDirectory(prefix="cronjob-api-bench-") as data_dir:
        with served("serve", port, data_dir, "/healthcheck") as server:
            base = f"http://127.0.0.1:{port}"
            rows = []
            auth = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=base, headers=auth, timeout=120) as http:
                rows.append(timed("GET /healthcheck", server.pid, [lambda: http.get("/healthcheck")] * n))
                rows.append(timed("POST /v1/schedules (one each)", server.pid,
                                  [lambda i=i: http.post("/v1/schedules", json=message(i, "single"))
                                   for i in range(n)], created=n))
                rows.append(timed("GET /v1/schedules?limit=50", server.pid,
                                  [lambda: http.get("/v1/schedules", params={"limit": 50})] * min(n, 500)))
                batches = [{"schedules": [{**message(i, "batch"), "idempotency_key": f"bench-{i}"}
                                          for i in range(start, min(start + 1000, n))]}
                           for start in range(0, n, 1000)]
                rows.append(timed("POST /v1/schedules:batch (up to 1,000 each)", server.pid,
                                  [lambda b=b: http.post("/v1/schedules:batch", json=b) for b in batches], created=n))
                rows.append(timed("POST /v1/schedules:batch, sent again (replays)", server.pid,
                                  [lambda b=b: http.post("/v1/schedules:batch", json=b) for b in batches]))
    print(f"cronjob serve, SQLite store, one kept-alive connection; N = {n:,}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
