"""A real status webhook receiver for the tests: an HTTP server on 127.0.0.1 (a thread) that
verifies every ``Cronjob-Signature`` with ``signing.verify``, records what it got, and answers as
scripted, or only once released (a receiver that hangs); a path may take unsigned POSTs (a task's peer)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cronjob_adapters.webhooks.signing import verify


@dataclass(frozen=True, slots=True)
class Delivery:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def type(self) -> str:
        return str(self.event["type"])


class _QuietServer(ThreadingHTTPServer):
    """Does not print a traceback when a client drops a kept-alive connection (teardown), and
    queues as many connections as a dispatcher opens at once (socketserver's default is 5)."""

    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Receiver:
    """An HTTP server on 127.0.0.1 (a thread) that checks each POST's ``Cronjob-Signature`` with
    ``signing.verify`` and ``secret`` at ``now()``: 401 when it does not verify, else the next
    scripted status of the path (200 once the script is used up). A held path answers only once
    it is released (a receiver that hangs)."""

    def __init__(self, secret: str, now: Callable[[], float]) -> None:
        self.secret = secret
        self.now = now
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._scripts: dict[str, list[int]] = {}
        self._held: dict[str, threading.Event] = {}
        self._unsigned: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = verify(headers.get("cronjob-signature", ""), body, receiver.secret, now=receiver.now())
                with receiver._lock:
                    receiver._deliveries.append(Delivery(self.path, headers, body, verified))
                    script = receiver._scripts.get(self.path)
                    status = script.pop(0) if script else 200
                    held = receiver._held.get(self.path)
                    unsigned = self.path in receiver._unsigned
                if held is not None:
                    held.wait(timeout=30)
                if not verified and not unsigned:
                    status = 401
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for held in self._held.values():
            held.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None

    def url(self, path: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def script(self, path: str, *statuses: int) -> None:
        with self._lock:
            self._scripts[path] = list(statuses)

    def hold(self, path: str) -> threading.Event:
        """Leave the POSTs to ``path`` unanswered until the event returned is set."""
        with self._lock:
            return self._held.setdefault(path, threading.Event())

    def take_unsigned(self, path: str) -> None:
        """Answer the POSTs to ``path`` as scripted though they carry no signature (a task's
        peer, such as an ``http.request``'s, beside the webhook receiver)."""
        with self._lock:
            self._unsigned.add(path)

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self._deliveries if d.path == path]

    @property
    def all(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)
