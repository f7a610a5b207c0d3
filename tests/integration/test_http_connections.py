"""The API's connections, as a client or a proxy in front holds them: the connections the
listening socket (``runtime.listen``) accepts answer without Nagle's delay (uvicorn serves it
through ``loop.create_server(sock=...)``, as the first test does; the option is read from the
accepted socket itself, no timing), and an idle kept-alive connection stays open as long as
``CRONJOB_KEEP_ALIVE_SECONDS`` says (the service's own server, on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from cronjob.ports.clock import SystemClock
from cronjob_bootstrap.runtime import listen
from cronjob_bootstrap.settings import Settings
from tests.support.app import TOKEN, make_container
from tests.support.processes import free_port
from tests.support.serving import serving
from tests.support.waiting import PROMPTLY


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


def test_an_idle_connection_outlives_an_ingress_s_by_default() -> None:
    # ingress-nginx keeps an idle connection to a pod 60 s: the pod must keep it longer, or the
    # proxy may send a request on a connection the pod has just closed (a 502 for the client).
    assert Settings().keep_alive_seconds > 60


async def _exchange(connection: socket.socket) -> bytes:
    """One ``GET /livez`` on ``connection``; the start of the answer, or b"" once it was closed."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError):
        await loop.sock_sendall(connection, b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n")
    try:
        return await asyncio.wait_for(loop.sock_recv(connection, 65536), PROMPTLY)
    except ConnectionError:
        return b""


@pytest.mark.parametrize(("keep_alive", "kept"), [(0.5, False), (30.0, True)])
async def test_an_idle_kept_alive_connection_stays_open_as_long_as_configured(keep_alive: float, kept: bool) -> None:
    port = free_port()
    settings = Settings(api_tokens=TOKEN, port=port, keep_alive_seconds=keep_alive)
    async with serving(make_container(SystemClock()), settings):
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setblocking(False)
        try:
            assert (await _exchange(connection)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(1.5)  # idle: past 0.5 s, well within 30 s (uvicorn's default: 5 s)
            answer = await _exchange(connection)
            assert answer.startswith(b"HTTP/1.1 200") if kept else answer == b"", answer
        finally:
            connection.close()
