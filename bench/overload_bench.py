#!/usr/bin/env python
"""Benchmark of an API process under more concurrent creations than it can serve at once, and of
its probes meanwhile.

Run it with ``.venv/bin/python bench/overload_bench.py`` (``--help`` for options). For each
concurrency C and each bound B (``CRONJOB_MAX_REQUESTS_IN_FLIGHT``; 0: none) it starts a fresh
``cronjob api`` (the embedded SQLite store in a temporary directory, loopback only) and:

- opens C connections at once, each sending one ``POST /v1/schedules`` with an
  ``Idempotency-Key``; a client refused with 503 sends it again, on a new connection, after its
  ``Retry-After`` doubled at each refusal in a row (capped at 30 s, with ±50 % jitter), until it is
  answered 201/200;
- meanwhile, from a process of its own, probes ``/livez`` and ``/readyz`` every 0.25 s each (one
  thread each) on a fresh connection, as the kubelet does, timing each answer from the connect;
- then counts the schedules the campaign made (every one exactly once, or the run fails).

Columns: accepted (2xx answers) with their p50/p99/max latency from the connect, refused (503s),
how long until every client had its schedule, and the probes' max latency and answers that were not
200. Figures depend on the machine: compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import random
import socket
import tempfile
import threading
import time
from typing import Any

import httpx

from served import TOKEN, served


def body(i: int, campaign: str) -> bytes:
    return json.dumps({"task": {"type": "whatsapp.template", "body": "Olá, {{1}}!", "templateName": "hello",
                                "to": f"55119{i:08d}", "params": [f"N{i}"]},
                       "schedule": "once @ 2030-06-21 14:00", "timezone": "America/Sao_Paulo",
                       "labels": {"campaign": campaign}}).encode()


async def exchange(port: int, request: bytes, timeout: float = 120.0) -> tuple[int, dict[str, str], float]:
    """Send ``request`` on a new connection; its status, headers and seconds from the connect."""
    began = time.perf_counter()
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            await reader.readexactly(int(headers.get("content-length", "0")))
        finally:
            writer.close()
    return int(status_line.split()[1]), headers, time.perf_counter() - began


def probe(port: int, stop: Any, results: Any) -> None:
    """In a process of its own (as the kubelet is: the clients' event loop does not delay it),
    ``/livez`` and ``/readyz``, each every 0.25 s in a thread of its own, on a fresh connection,
    until ``stop``; sends their statuses and seconds (status 0: no answer)."""
    seen: dict[str, list[tuple[int, float]]] = {"/livez": [], "/readyz": []}

    def probing(path: str, answers: list[tuple[int, float]]) -> None:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
                    answer = b""
                    while chunk := sock.recv(65536):
                        answer += chunk
                answers.append((int(answer.split(b" ", 2)[1]), time.perf_counter() - began))
            except OSError:
                answers.append((0, time.perf_counter() - began))
            time.sleep(0.25)

    threads = [threading.Thread(target=probing, args=item) for item in seen.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.send(seen)


def rank(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


async def burst(port: int, clients: int, campaign: str) -> dict[str, Any]:
    accepted: list[float] = []
    refused: list[float] = []
    probes: dict[str, list[tuple[int, float]]] = {"/livez": [], "/readyz": []}

    async def client(i: int) -> None:
        payload = body(i, campaign)
        request = (f"POST /v1/schedules HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n"
                   f"Content-Type: application/json\r\nIdempotency-Key: {campaign}-{i}\r\n"
                   f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload
        for attempt in itertools.count():
            status, headers, took = await exchange(port, request)
            if status in (200, 201):
                accepted.append(took)
                return
            if status != 503:
                raise SystemExit(f"a creation answered {status}")
            refused.append(took)
            # As a client should: at least Retry-After, doubled at each refusal in a row, with jitter.
            delay = min(float(headers.get("retry-after", "1")) * 2 ** attempt, 30.0)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))

    results, to_prober = multiprocessing.Pipe(duplex=False)
    stop = multiprocessing.Event()
    probing = multiprocessing.Process(target=probe, args=(port, stop, to_prober))
    probing.start()
    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    all_in = time.perf_counter() - began
    stop.set()
    probes.update(results.recv())
    probing.join()
    ordered = sorted(accepted)
    return {"accepted": len(accepted), "p50": rank(ordered, 0.5), "p99": rank(ordered, 0.99), "max": ordered[-1],
            "refused": len(refused), "all_in": all_in,
            **{f"{path[1:]}_max": max(t for _, t in seen) for path, seen in probes.items()},
            **{f"{path[1:]}_not_ok": sum(1 for s, _ in seen if s != 200) for path, seen in probes.items()},
            "probes": sum(len(seen) for seen in probes.values())}


def count(base: str, campaign: str) -> int:
    found, cursor = 0, None
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        while True:
            params: dict[str, Any] = {"label": f"campaign={campaign}", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/schedules", params=params).json()
            found += len(page["items"])
            if not (cursor := page.get("next_cursor")):
                return found


def run_cell(port: int, clients: int, bound: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cronjob-overload-bench-") as data_dir:
        with served("api", port, data_dir, "/readyz", CRONJOB_MAX_REQUESTS_IN_FLIGHT=str(bound)):
            asyncio.run(burst(port, 50, "warm-up"))
            row = asyncio.run(burst(port, clients, "burst"))
            made = count(f"http://127.0.0.1:{port}", "burst")
            if made != clients:
                raise SystemExit(f"{clients} clients made {made} schedules")
    return {"clients": clients, "bound": bound, **row}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="2000,4000", help="concurrencies, comma-separated (2000,4000)")
    parser.add_argument("--bounds", default="0,200",
                        help="CRONJOB_MAX_REQUESTS_IN_FLIGHT values, comma-separated; 0: none (0,200)")
    parser.add_argument("--port", type=int, default=18350, help="the loopback port to serve on (18350)")
    args = parser.parse_args(argv)
    print("| clients | bound | accepted | p50 s | p99 s | max s | refused (503) | all created after s "
          "| /livez max s | /readyz max s | probes not 200 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for clients in (int(c) for c in args.clients.split(",")):
        for bound in (int(b) for b in args.bounds.split(",")):
            r = run_cell(args.port, clients, bound)
            print(f"| {r['clients']:,} | {r['bound'] or 'none'} | {r['accepted']:,} | {r['p50']:.2f} | {r['p99']:.2f} "
                  f"| {r['max']:.2f} | {r['refused']:,} | {r['all_in']:.1f} | {r['livez_max']:.2f} "
                  f"| {r['readyz_max']:.2f} | {r['livez_not_ok'] + r['readyz_not_ok']} of {r['probes']} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
