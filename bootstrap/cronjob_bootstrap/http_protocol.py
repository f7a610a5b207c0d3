"""uvicorn's HTTP/1.1 protocol (h11) with a time limit on a request's headers.

uvicorn times nothing before a request's headers are complete: a connection that sends nothing, or
trickles its headers a byte at a time, stays open for as long as its client likes, each holding a
file descriptor. Enough of them (a slowloris, or clients that leak connections) and the process
cannot accept another one: the probes go unanswered and the pod is restarted, to fill up again.
Here a request's headers must be complete ``header_timeout`` seconds after the connection was
made or, on a kept-alive connection, after the first byte of the request (an idle kept-alive
connection stays governed by uvicorn's ``timeout_keep_alive`` alone). The time counts from that
point, not from the last byte, so trickling does not extend it. The body's time is the app's
(``cronjob_adapters.web.limits.BodyTimeLimit``), which answers within the request as any other.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from cronjob_adapters.web.problems import status_title


def _problem_answer(status: int, detail: str) -> bytes:
    """A problem+json answer ``status`` that closes the connection, written on the socket as is
    (the request it answers could not be read, or not in time)."""
    body = json.dumps({"type": "about:blank", "title": status_title(status), "status": status, "detail": detail},
                      separators=(",", ":")).encode()
    head = (b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, HTTPStatus(status).phrase.encode(), len(body)))
    return head + body


def _timeout_answer(seconds: float) -> bytes:
    """The 408 problem+json written to a client whose headers came too slowly."""
    return _problem_answer(408, f"the request headers did not arrive within {seconds:g} s")


#: The detail of the 400 for a request that h11 cannot read (uvicorn says only "Invalid HTTP
#: request received."): its line or headers are malformed, or its head is too large for h11's buffer
#: (16 KiB, or as much as came in one read: asyncio reads up to 256 KiB at once).
UNREADABLE = ("the request is not valid HTTP/1.1: a malformed request line or header, or a request line "
              "and headers too large")


class HeaderTimeLimitedH11(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request headers are not complete within
    ``header_timeout`` seconds: with a 408 problem+json when part of a request came, silently when
    nothing did (there is no request to answer, as when an idle kept-alive connection is closed).
    A request h11 cannot read gets a 400 problem+json, as every other refusal, not uvicorn's
    plain text."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, header_timeout: float) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_problem_answer(400, UNREADABLE))
        self.transport.close()

    def _watch_headers(self) -> None:
        """Arm the timer while the connection waits for a request's headers, unless it is already
        armed; stop it once a request is being handled or the connection idles kept alive.

        Idle kept alive: a request was answered and nothing of the next one has come. That is
        also so once the rest of a body answered early (a 413 by its ``Content-Length``) has come,
        whose bytes stopped uvicorn's keep-alive timer without arming it again: armed here."""
        handling = self.cycle is not None and not self.cycle.response_complete
        if handling or self.transport.is_closing():
            self._stop_header_timer()
            return
        if self.cycle is not None and self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self._stop_header_timer()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                    self.timeout_keep_alive_handler)
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_timed_out)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        partial, _ = self.conn.trailing_data
        if self.conn.their_state is h11.IDLE and partial:
            self.transport.write(_timeout_answer(self.header_timeout))
        self.transport.close()
