"""The API's listening socket (``runtime.listen``): the connections it accepts answer without
Nagle's delay. uvicorn serves it through ``loop.create_server(sock=...)``, as these tests do, on
loopback; the option is read from the accepted socket itself (no timing)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cronjob_bootstrap.runtime import listen


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")),
])
async def test_accepted_connections_have_nagle_s_algorithm_off(host: str) -> None:
    loop = asyncio.get_running_loop()
    nodelay: asyncio.Future[int] = loop.create_future()

    class Accepted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted: socket.socket = transport.get_extra_info("socket")
            nodelay.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    sock = listen(host, 0)
    server = await loop.create_server(Accepted, sock=sock)
    try:
        _, writer = await asyncio.open_connection(host, sock.getsockname()[1])
        # Nonzero: a response written in two parts (headers, then body) is not held back until
        # the client acknowledges the first, which on a kept-alive connection took ~40 ms.
        assert await asyncio.wait_for(nodelay, 10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
