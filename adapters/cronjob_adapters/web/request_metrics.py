"""A pure-ASGI middleware that measures every API request: its route, method, status and duration."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronjob.ports.metrics import Metrics

#: The route of a request that matched none (a scanner's probe, a typo): one label for them all.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Tells ``metrics`` of each HTTP request once its answer is sent (or it failed): the
    method (another than the standard ones as ``OTHER``), the route's path template
    (``/v1/schedules/{schedule_id}``, never the path itself, so that ids and scanners' paths do
    not make a label each; :data:`UNMATCHED` when no route matched), the status (500 when the app
    raised before answering) and the seconds it took."""

    def __init__(self, app: ASGIApp, metrics: Metrics, timer: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.metrics = metrics
        self.timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = self.timer()
        status = 500

        async def measured_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        finally:
            method = scope.get("method", "")
            self.metrics.http_request(method if method in _METHODS else "OTHER",
                                      route_template(scope) or UNMATCHED, status, self.timer() - began)


def route_template(scope: Scope) -> str | None:
    """The path template of the route that answered ``scope``, ``None`` when none did.

    FastAPI's routes put themselves in the scope (``route``); its plain Starlette routes (the
    OpenAPI document, ``/docs``, ``/redoc``) leave only their ``endpoint`` there, so that one is
    looked up among the application's routes: a request for ``/openapi.json`` has a route."""
    path = getattr(scope.get("route"), "path", None)
    endpoint = scope.get("endpoint")
    if path is None and endpoint is not None:
        routes = getattr(scope.get("app"), "routes", ())
        path = next((getattr(route, "path", None) for route in routes
                     if getattr(route, "endpoint", None) is endpoint), None)
    return path
