"""A request cut short by the process's stop (its shutdown grace over, or a second signal) gets a
503 problem+json, not uvicorn's plain-text 500."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Receive, Scope, Send

from cronjob_adapters.web.limits import TrackedSend
from cronjob_adapters.web.problems import problem, status_title

#: What a client whose request was cut is told: whether it was carried out is not known.
CUT = ("this process stopped before the request was answered: it may or may not have been carried out; "
       "send it again (with the same Idempotency-Key, a creation is made once)")


class CutRequestAnswer:
    """Answers 503 problem+json (``Retry-After: 1``, the connection closed) to a request whose task
    is cancelled before its answer started: uvicorn cancels the requests still in progress when the
    shutdown grace ends, and the runtime at a second signal, and would otherwise answer a plain
    "Internal Server Error" and log the cancellation as an error of the app. The request ends
    answered, its cancellation taken back; one whose answer had started is left to uvicorn."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if tracked.started or task is None:
                raise
            task.uncancel()
            response = problem(503, status_title(503), CUT, headers={"Connection": "close", "Retry-After": "1"})
            with contextlib.suppress(Exception):  # the connection may be gone too
                await response(scope, receive, send)
