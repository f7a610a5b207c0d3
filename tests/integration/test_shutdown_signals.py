"""Stopping real ``cronjob`` processes: the first SIGTERM/SIGINT gives running jobs and requests
the shutdown grace, a second one ends it at once (what Ctrl-C twice does to uvicorn or Celery).

The jobs are held by peers that take a request and never answer within the test: an
``http.request`` to a local socket, a WhatsApp send to the local fake of Meta's API.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_whatsapp import FakeWhatsApp
from tests.support.processes import CronjobProcess, free_port
from tests.support.replicas import wait_log
from tests.support.sqlite_locker import Locker
from tests.support.waiting import PROMPTLY, wait_until

API_TOKEN = "shutdown-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
WA_TOKEN = "wa-secret-token"
PHONE_ID = "1234567890"
#: Far longer than the tests wait: only a second signal ends the grace within them.
GRACE = 30
WAITING_FOR_A_JOB = f"stopping: waiting up to {GRACE} s for 1 running jobs"


class SilentPeer:
    """A TCP server on 127.0.0.1 that accepts connections, reads what comes and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> SilentPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        for connection in list(self._connections):
            connection.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hold"

    @property
    def connections(self) -> int:
        return len(self._connections)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            self._connections.append(connection)


@pytest.fixture
def peer() -> Iterator[SilentPeer]:
    with SilentPeer() as silent:
        yield silent


@pytest.fixture
def whatsapp() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(token=WA_TOKEN, phone_number_id=PHONE_ID) as fake:
        yield fake


def _env(tmp_path: Path, port: int, whatsapp: FakeWhatsApp | None = None) -> dict[str, str]:
    env = {
        "CRONJOB_DATA_DIR": str(tmp_path / "var"),
        "CRONJOB_PORT": str(port),
        "CRONJOB_API_TOKENS": API_TOKEN,
        "CRONJOB_POLL_INTERVAL_SECONDS": "0.5",
        "CRONJOB_HTTP_ALLOW_HOSTS": "127.0.0.1",
        "CRONJOB_SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }
    if whatsapp is not None:
        env |= {"CRONJOB_WHATSAPP_API_URL": whatsapp.url, "CRONJOB_WHATSAPP_TOKEN": WA_TOKEN,
                "CRONJOB_WHATSAPP_PHONE_NUMBER_ID": PHONE_ID}
    return env


def _due_now(task: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC) + timedelta(seconds=1)
    return {"task": task, "schedule": f"once @ {now:%Y-%m-%d %H:%M:%S}", "timezone": "UTC"}


def _create(base: str, request: dict[str, Any]) -> str:
    created = httpx.post(f"{base}/v1/schedules", json=request, headers=AUTH)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _shown(base: str, schedule_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{base}/v1/schedules/{schedule_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _signal_twice(process: CronjobProcess, sig: signal.Signals, waiting: str) -> None:
    """``sig``: once ``waiting`` is logged and a second later, the process still runs (the grace);
    ``sig`` again: it exits promptly, with 0 as a normal stop does."""
    process.send(sig)
    wait_log(process, waiting, timeout=PROMPTLY)
    time.sleep(1.0)
    assert process.running(), f"exited on the first {sig.name}:\n{process.output()}"
    process.send(sig)
    assert process.process is not None
    try:
        code = process.process.wait(timeout=PROMPTLY)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {PROMPTLY} s after a second {sig.name}:\n{process.output()}") from None
    assert code == 0, process.output()


def _after_restart(tmp_path: Path, port: int, schedule_id: str) -> dict[str, Any]:
    """The schedule as stored, read through an API process started on the same data."""
    base = f"http://127.0.0.1:{port}"
    api = CronjobProcess("api", _env(tmp_path, port), tmp_path / "api.log").start()
    try:
        api.wait_http(f"{base}/healthcheck")
        return _shown(base, schedule_id)
    finally:
        api.stop(signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_stops_waiting_for_a_running_job_and_releases_it(
        sig: signal.Signals, tmp_path: Path, peer: SilentPeer) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = CronjobProcess("serve", _env(tmp_path, port), tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/healthcheck")
        schedule_id = _create(base, _due_now(
            {"type": "http.request", "method": "GET", "url": peer.url, "timeout_seconds": 120}))
        assert wait_until(lambda: peer.connections == 1, timeout=PROMPTLY * 2), serve.output()
        assert _shown(base, schedule_id)["status"] == "running"
        _signal_twice(serve, sig, WAITING_FOR_A_JOB)
        assert "second signal: not waiting for 1 running jobs and 0 requests in progress" in serve.output()
    finally:
        serve.stop(signal.SIGKILL)
    shown = _after_restart(tmp_path, port, schedule_id)
    # Released, as at the grace's end: due again at once, for any replica; no attempt counted.
    assert shown["status"] == "scheduled", shown
    assert shown["attempts"] == [] and shown["next_run_at"] == shown["send_at"]


def test_a_whatsapp_send_in_flight_at_a_second_signal_is_parked_as_unknown(
        tmp_path: Path, whatsapp: FakeWhatsApp) -> None:
    """Meta took the request and has not answered: it may be sent, and Meta has no idempotency
    key, so the cut-short run ends ``unknown`` (as at the grace's end), never sent again blindly."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    whatsapp.delay_next(GRACE + 10)
    serve = CronjobProcess("serve", _env(tmp_path, port, whatsapp), tmp_path / "serve.log").start()
    try:
        serve.wait_http(f"{base}/healthcheck")
        schedule_id = _create(base, _due_now(
            {"type": "whatsapp.text", "to": "5511999999999", "body": "Olá", "params": []}))
        whatsapp.wait_for(1, timeout=PROMPTLY * 2)
        _signal_twice(serve, signal.SIGTERM, WAITING_FOR_A_JOB)
    finally:
        serve.stop(signal.SIGKILL)
    shown = _after_restart(tmp_path, port, schedule_id)
    assert shown["status"] == "unknown", shown
    assert "shutdown" in shown["last_error"]["message"]
    assert len(whatsapp.requests) == 1


def test_a_second_signal_stops_waiting_for_a_request_in_progress(tmp_path: Path) -> None:
    """uvicorn gives a request in progress the grace too (here: a creation waiting for the store's
    write lock, which another process holds); a second SIGTERM makes it exit without waiting. (A
    request whose body is still coming is answered 503 at the first: test_slow_clients.)"""
    port = free_port()
    api = CronjobProcess("api", _env(tmp_path, port), tmp_path / "api.log").start()
    locker: Locker | None = None
    try:
        api.wait_ready(f"http://127.0.0.1:{port}")
        locker = Locker(tmp_path / "var" / "cronjob.sqlite3")
        body = b'{"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}, "schedule": "every 1 hour"}'
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(f"POST /v1/schedules HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_TOKEN}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            time.sleep(0.5)  # the request waits for the lock (up to the store's 10 s)
            api.send(signal.SIGTERM)
            wait_log(api, "Waiting for connections to close", timeout=PROMPTLY)  # uvicorn's
            time.sleep(1.0)
            assert api.running(), f"exited on the first SIGTERM:\n{api.output()}"
            api.send(signal.SIGTERM)
            # The server ends with the lock still held: the request is not waited for. (The store's
            # thread, which waits for the lock, is: the process exits once the lock is let go.)
            wait_log(api, "Finished server process", timeout=PROMPTLY)
            locker.release()
            locker = None
            assert api.process is not None and api.process.wait(timeout=PROMPTLY) == 0, api.output()
        assert "second signal: not waiting for 1 requests in progress" in api.output()
    finally:
        if locker is not None:
            locker.release()
        api.stop(signal.SIGKILL)
