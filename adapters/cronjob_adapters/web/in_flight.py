"""A pure-ASGI middleware that bounds the requests a process serves at once, so that a burst beyond
what it can serve is refused at once (503) instead of queueing until the probes time out."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from cronjob_adapters.web.problems import problem

#: The paths never refused nor counted: the probes, which Kubernetes restarts a process for when
#: they go unanswered (a busy process is not a broken one), and the metrics that show it is busy.
UNBOUNDED_PATHS = frozenset({"/livez", "/readyz", "/healthcheck", "/metrics"})
#: The setting the bound comes from, named in the answer.
SETTING = "CRONJOB_MAX_REQUESTS_IN_FLIGHT"
#: Its default, measured (``bench/overload_bench.py``, README "Slow clients, bursts and what a client
#: sees"): one process makes about 900 schedules a second, so 200 in flight are answered within a
#: few tenths of a second, and its probes within their timeouts while the rest is refused.
DEFAULT_MAX_REQUESTS_IN_FLIGHT = 200


class InFlightLimit:
    """Answers 503 problem+json with ``Retry-After`` to a request that comes while ``max_requests``
    others are in progress in this process (from the call of the app, once the request's headers
    are in, until its answer is sent), before anything reads its body or its token: it did nothing,
    and may be sent again as it was. ``refused`` is told of each (a metric). The paths in
    ``unbounded`` are always served and not counted."""

    def __init__(self, app: ASGIApp, max_requests: int, *, retry_after_seconds: int = 1,
                 refused: Callable[[], None] = lambda: None,
                 unbounded: frozenset[str] = UNBOUNDED_PATHS) -> None:
        if max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, not {max_requests}")
        self.app = app
        self.max_requests = max_requests
        self.retry_after = str(retry_after_seconds)
        self.refused = refused
        self.unbounded = unbounded
        #: The requests in progress now (counted ones only).
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.unbounded:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_requests:
            self.refused()
            response = problem(
                503, "Too many requests in flight",
                f"this process is serving {self.max_requests} requests already ({SETTING}); nothing was done: "
                f"send it again after Retry-After seconds (with the same Idempotency-Key, a creation is made once)",
                headers={"Retry-After": self.retry_after})
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
