"""A pure-ASGI middleware that gives every request an id (``X-Request-ID``), for logs and clients."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronjob_adapters.observability.logs import request_id

_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestId:
    """Uses the client's ``X-Request-ID`` when it is short and plain, else a new one; echoes it back
    and makes it visible to the log formatter for the duration of the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), b"").decode("latin-1")
        rid = given if _SAFE.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
