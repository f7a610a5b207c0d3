"""HEAD wherever GET is (RFC 9110, section 9.3.2): uptime checkers and caches ask with it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """A pure-ASGI middleware: a HEAD request is answered as the GET of the same address, with
    the same status and headers (``Content-Length`` included) and no body. FastAPI's routes
    answer GET only (405 to HEAD); a route without GET still answers 405 with its ``Allow``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
