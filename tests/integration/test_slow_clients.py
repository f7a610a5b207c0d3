"""Clients that connect and then send slowly, or never finish: the service's own server (uvicorn,
``runtime.run``) over real sockets on loopback.

A request's headers must arrive within ``CRONJOB_HEADER_TIMEOUT_SECONDS`` of the connection (or of
their first byte, on a kept-alive one), its body within ``CRONJOB_BODY_TIMEOUT_SECONDS`` of them:
past either the client gets a 408 problem+json (nothing, if it sent nothing) and its connection is
closed, so that slow or stalled clients cannot pile up until the process has no file descriptor
left for the probes. An idle kept-alive connection stays governed by ``CRONJOB_KEEP_ALIVE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cronjob.domain.schedule import Schedule
from cronjob.ports.clock import SystemClock
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_bootstrap.settings import Settings
from tests.support.app import AUTH, TOKEN, make_container
from tests.support.processes import CRONJOB, CronjobProcess, free_port
from tests.support.serving import creation_head, serving
from tests.support.waiting import PROMPTLY, until

#: Short, so that the tests see the limits act; far above loopback's round trips.
HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5

MESSAGE = json.dumps({"to": "5511999999999", "body": "Olá, {{1}}!", "type": "template", "templateName": "oi",
                      "params": ["Ana"], "send_at": "2030-06-21T14:00:00Z"}).encode()


@contextlib.asynccontextmanager
async def _serving(**settings: float) -> AsyncIterator[int]:
    """The API (in memory) served by ``runtime.run`` on a free port with ``settings``; its port."""
    port = free_port()
    container = make_container(SystemClock(), **settings)  # the app's settings (the body's limit)
    async with serving(container, Settings(api_tokens=TOKEN, port=port, **settings)):
        yield port


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with _serving(header_timeout_seconds=HEADER_TIMEOUT, body_timeout_seconds=BODY_TIMEOUT) as served:
        yield served


async def _until_closed(reader: asyncio.StreamReader, within: float = PROMPTLY) -> bytes:
    """Everything the server writes until it closes the connection (TimeoutError if it does not)."""
    received = b""
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            received += chunk
    return received


def _problem(answer: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    try:
        assert await _until_closed(reader) == b""  # no request, so no answer: closed, as an idle one is
        assert time.monotonic() - began >= HEADER_TIMEOUT * 0.9
    finally:
        writer.close()


async def _trickle(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes) -> bytes:
    """``data`` sent a byte every 50 ms, stopped once the server answers; what it answered."""
    first = asyncio.create_task(reader.read(65536))
    async with asyncio.timeout(PROMPTLY):
        for byte in data:
            writer.write(bytes([byte]))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            if (await asyncio.wait({first}, timeout=0.05))[0]:
                break
        return await first + await _until_closed(reader)


async def test_headers_trickled_a_byte_at_a_time_get_a_408_at_the_header_timeout(port: int) -> None:
    # Each byte comes well within the timeout: the limit is on the headers as a whole.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    try:
        answer = await _trickle(writer, reader, b"GET /v1/schedules HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 1000)
        status, headers, body = _problem(answer)
        assert (status, headers["content-type"], headers["connection"]) == (408, "application/problem+json", "close")
        assert body["detail"] == f"the request headers did not arrive within {HEADER_TIMEOUT:g} s"
        assert time.monotonic() - began < HEADER_TIMEOUT + 1.0
    finally:
        writer.close()


@pytest.mark.parametrize("request_head", [
    b"GET /v1/schedules HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",  # past h11's buffer
    b"GET /v1/schedules HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
], ids=["oversized", "malformed-header", "not-http"])
async def test_a_request_that_cannot_be_read_gets_a_400_problem(port: int, request_head: bytes) -> None:
    status, headers, body = _problem(await asyncio.to_thread(_answer_before_close, port, request_head))
    assert (status, headers["content-type"], headers["connection"]) == (400, "application/problem+json", "close")
    assert body["title"] == "Bad request" and "not valid HTTP/1.1" in str(body["detail"])
    assert int(headers["content-length"]) == len(json.dumps(body, separators=(",", ":")).encode())


def _answer_before_close(port: int, data: bytes) -> bytes:
    """What the server answers to ``data`` before it closes the connection. The server closes with
    the rest of an oversized head unread, so the close may come as a reset after the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=PROMPTLY) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


async def test_a_body_shorter_than_its_content_length_gets_a_408_and_creates_nothing(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(creation_head(len(MESSAGE) + 20, "short-body") + MESSAGE)  # 20 bytes never come
        await writer.drain()
        status, headers, body = _problem(await _until_closed(reader))
        assert (status, headers["content-type"], headers["connection"]) == (408, "application/problem+json", "close")
        assert body["detail"] == f"the request body did not arrive within {BODY_TIMEOUT:g} s"
    finally:
        writer.close()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:
        retried = await http.post("/schedule-message", content=MESSAGE,
                                  headers={"Content-Type": "application/json", "Idempotency-Key": "short-body"})
        assert retried.status_code == 201  # the first was never created: the retry makes it, once
        assert [s["id"] for s in (await http.get("/v1/schedules")).json()["items"]] == [retried.json()["id"]]


async def test_a_body_still_coming_when_the_process_stops_gets_a_503_at_once() -> None:
    # The body limit (30 s) and the shutdown grace (20 s) are long: a request whose body stalls
    # would hold the stop that long; it has done nothing yet, so it is answered at once instead.
    port, stop = free_port(), asyncio.Event()
    container = make_container(SystemClock(), body_timeout_seconds=30.0)
    settings = Settings(api_tokens=TOKEN, port=port, body_timeout_seconds=30.0, shutdown_grace_seconds=20.0)
    async with serving(container, settings, stop):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(creation_head(len(MESSAGE) + 20, "cut-at-stop") + MESSAGE)  # 20 bytes never come
            await writer.drain()
            await until(lambda: len(container.body_waits()) == 1)
            stop.set()  # as SIGTERM does
            status, headers, body = _problem(await _until_closed(reader))
        finally:
            writer.close()
    # Leaving ``serving`` waited for the stop (PROMPTLY, far below the grace): it did not hold it.
    assert (status, headers["connection"], headers["retry-after"]) == (503, "close", "1")
    assert "stopping" in str(body["detail"]) and "nothing was done" in str(body["detail"])
    assert await container.repository().list(limit=10) == []


class AddsHang(InMemoryScheduleRepository):
    """The in-memory store, whose adds never end (a store that stopped answering mid-write)."""

    def __init__(self) -> None:
        super().__init__()
        self.adding = asyncio.Event()

    async def add(self, schedule: Schedule) -> None:
        self.adding.set()
        await asyncio.Event().wait()


async def test_a_request_cut_when_the_shutdown_grace_ends_gets_a_503_problem() -> None:
    # uvicorn cancels what is still in progress when the grace ends; it answered a plain 500.
    port, stop, store = free_port(), asyncio.Event(), AddsHang()
    container = make_container(SystemClock(), repository=store)
    settings = Settings(api_tokens=TOKEN, port=port, shutdown_grace_seconds=0.3)
    async with serving(container, settings, stop):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(creation_head(len(MESSAGE), "cut-at-grace") + MESSAGE)
            await writer.drain()
            await asyncio.wait_for(store.adding.wait(), PROMPTLY)
            stop.set()  # as SIGTERM does
            status, headers, body = _problem(await _until_closed(reader))
        finally:
            writer.close()
    assert (status, headers["content-type"], headers["connection"], headers["retry-after"]) == (
        503, "application/problem+json", "close", "1")
    assert "may or may not have been carried out" in str(body["detail"]) and "x-request-id" in headers


async def test_a_body_trickled_past_the_body_timeout_gets_a_408(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(creation_head(len(MESSAGE), "trickled-body"))
        status, headers, body = _problem(await _trickle(writer, reader, MESSAGE))
        assert (status, headers["connection"], body["status"]) == (408, "close", 408)
    finally:
        writer.close()


async def test_an_idle_kept_alive_connection_is_not_cut_by_the_header_timeout() -> None:
    # An ingress keeps idle connections to the pod (ingress-nginx: 60 s): only the keep-alive
    # setting closes them, however short the header timeout.
    async with _serving(header_timeout_seconds=HEADER_TIMEOUT, keep_alive_seconds=30.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(2):
                writer.write(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(65536), PROMPTLY)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                await asyncio.sleep(HEADER_TIMEOUT * 3)  # idle, kept alive
        finally:
            writer.close()


async def test_a_connection_idles_kept_alive_after_a_body_answered_before_it_came() -> None:
    # A 413 by Content-Length is answered before the body; the client sends it all the same, then
    # idles as a proxy's kept-alive connection does: the keep-alive setting governs it, neither
    # the header timeout nor (as uvicorn alone would have it, the body's bytes having stopped its
    # keep-alive timer) nothing at all.
    keep_alive = 2.0
    async with _serving(header_timeout_seconds=HEADER_TIMEOUT, keep_alive_seconds=keep_alive,
                        max_body_bytes=1024) as port:

        async def answered_early_then_idle(idle: float | None) -> bytes:
            """What a request on the connection gets after ``idle`` seconds; None: send none, and
            what comes until the server closes the connection."""
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(creation_head(2048, "too-large"))
                await writer.drain()
                assert (await asyncio.wait_for(reader.read(65536), PROMPTLY)).startswith(b"HTTP/1.1 413")
                writer.write(b"x" * 2048)
                await writer.drain()
                if idle is None:
                    return await _until_closed(reader)
                await asyncio.sleep(idle)
                writer.write(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
                await writer.drain()
                return await asyncio.wait_for(reader.read(65536), PROMPTLY)
            finally:
                writer.close()

        began = time.monotonic()
        within, closed = await asyncio.gather(answered_early_then_idle(HEADER_TIMEOUT * 2),
                                              answered_early_then_idle(None))
        assert within.startswith(b"HTTP/1.1 200"), within
        assert closed == b""
        assert time.monotonic() - began >= keep_alive * 0.9


def test_the_probes_answer_again_once_silent_connections_took_every_file_descriptor(tmp_path: Path) -> None:
    # A real `cronjob api` allowed 256 open files, and more connections than that which send
    # nothing and stay open on the client's side. uvicorn would keep each forever: the process
    # could accept nothing more, so /readyz would go unanswered until the clients let go (a pod
    # restarted by Kubernetes, to fill up again). Closed at the header timeout, they free it.
    port = free_port()
    limited = ["prlimit", "--nofile=256:256", *CRONJOB]
    api = CronjobProcess("api", {"CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN,
                                 "CRONJOB_DATA_DIR": str(tmp_path), "CRONJOB_HEADER_TIMEOUT_SECONDS": "1"},
                         tmp_path / "api.log", program=limited).start()
    silent: list[socket.socket] = []
    try:
        # Ready first: a store still opening when the connections take every descriptor cannot
        # open its file either, and /readyz rightly answers 503 until its next try.
        api.wait_ready(f"http://127.0.0.1:{port}")
        for _ in range(300):
            silent.append(socket.create_connection(("127.0.0.1", port)))
        with httpx.Client(timeout=8.0) as http:
            began = time.monotonic()
            answer = http.get(f"http://127.0.0.1:{port}/readyz")
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - began < 8.0
    finally:
        for connection in silent:
            connection.close()
        api.stop()

