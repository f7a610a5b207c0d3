"""Pure-ASGI middlewares that bound a request body: in size (413), streamed or not, and in the time
its client takes to send it (408, or 503 once the process stops)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronjob_adapters.web.problems import problem, status_title


class _TooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so that FastAPI's body parsing lets it through."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body exceeds {max_bytes} bytes")


class TrackedSend:
    """``send``, noting whether the response has started (after which no problem can replace it)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BodySizeLimit:
    """Answers 413 problem+json when ``Content-Length`` or the bytes actually received exceed
    ``max_bytes`` (for the paths in ``larger``, their own limit); nothing beyond the limit is buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await self._reject(scope, receive, send, max_bytes)
                return
        received = 0
        tracked = TrackedSend(send)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _TooLarge(max_bytes)
            return message

        try:
            await self.app(scope, limited_receive, tracked)
        except _TooLarge:
            if not tracked.started:
                await self._reject(scope, receive, send, max_bytes)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem(413, "Payload too large", f"request body exceeds {max_bytes} bytes")
        await response(scope, receive, send)


class _TooSlow(HTTPException):
    """Raised from ``receive``, as :class:`_TooLarge` is. The connection is closed with the answer:
    the rest of the body, if it ever comes, is no request."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} s",
                         headers={"Connection": "close"})


class _Stopping(HTTPException):
    """Raised from ``receive`` when the process stops while a request's body is still coming."""

    def __init__(self) -> None:
        super().__init__(503, "this process is stopping and the request's body had not all come: nothing was "
                              "done; send it again", headers={"Connection": "close", "Retry-After": "1"})


class BodyWaits:
    """The requests of a process that wait for their bodies now (:class:`BodyTimeLimit`), so that
    a stopping process need not wait for them: :meth:`cut` ends their waits at once."""

    def __init__(self) -> None:
        self._waits: set[asyncio.Timeout] = set()
        self.cut_off = False

    def cut(self) -> None:
        """The process stops: every wait for a body, now or later, ends at once (a 503)."""
        self.cut_off = True
        now = asyncio.get_running_loop().time()
        for wait in self._waits:
            wait.reschedule(now)

    def add(self, wait: asyncio.Timeout) -> None:
        if self.cut_off:
            # At once, unless what it waits for has come (then it returns before the cut acts).
            wait.reschedule(asyncio.get_running_loop().time())
        self._waits.add(wait)

    def discard(self, wait: asyncio.Timeout) -> None:
        self._waits.discard(wait)

    def __len__(self) -> int:
        """How many requests wait for their bodies now."""
        return len(self._waits)


class BodyTimeLimit:
    """Answers 408 problem+json (and closes the connection) when the whole body has not arrived
    ``seconds`` after the request's headers: a client that sends less than its ``Content-Length``,
    or trickles it, holds its request no longer than that. Once the body is in, ``receive`` is
    left alone (what it answers then, a disconnect, may take as long as the response does).

    Once ``waits`` is cut (the process stops), a request still waiting for its body is answered
    503 at once instead (nothing was done: it may be sent again), so that it does not hold the
    process's stop for as long as its client takes."""

    def __init__(self, app: ASGIApp, seconds: float, waits: BodyWaits | None = None) -> None:
        self.app = app
        self.seconds = seconds
        self.waits = waits if waits is not None else BodyWaits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_in = False
        tracked = TrackedSend(send)

        async def timed_receive() -> Message:
            nonlocal body_in
            if body_in:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline) as wait:
                    self.waits.add(wait)
                    try:
                        message = await receive()
                    finally:
                        self.waits.discard(wait)
            except TimeoutError:
                raise (_Stopping() if self.waits.cut_off else _TooSlow(self.seconds)) from None
            body_in = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        try:
            await self.app(scope, timed_receive, tracked)
        except (_TooSlow, _Stopping) as exc:
            if not tracked.started:
                response = problem(exc.status_code, status_title(exc.status_code), exc.detail, headers=exc.headers)
                await response(scope, receive, send)
