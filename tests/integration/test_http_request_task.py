"""HttpRequestHandler against real HTTP(S) servers on 127.0.0.1: outcomes, redirects, pinning, SSRF.

Only loopback traffic: the local servers listen on 127.0.0.1, names are resolved by an injected
resolver (a table), and the tests whose URLs name other addresses send through
:class:`LoopbackOnlyTransport`, a real transport that fails the test instead of connecting
anywhere but loopback. ``httpx.MockTransport`` appears only in the request-building section.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import trustme

from cronjob import __version__
from cronjob.domain.message import DeliveryError
from cronjob.domain.schedule import Schedule
from cronjob.domain.trigger import OnceTrigger
from cronjob_adapters.tasks.http_payload import MAX_REDIRECTS
from cronjob_adapters.tasks.http_request import HttpRequestHandler

SECRET = "sk-live-0123456789-do-not-log"
DUE = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


# -- a real local HTTP(S) server ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str  # with the query
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(slots=True)
class _Script:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    drop: bool = False


class LocalPeer:
    """An HTTP/1.1 server on 127.0.0.1 (an ephemeral port) serving from a thread: records every
    request, answers 200 ``ok`` unless ``answer`` scripted the path. ``tls``: serve https with
    this server context (the SNI names the clients sent are in ``sni``)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str, _Script] = {}
        self._stopping = threading.Event()
        self.sni: list[str | None] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalPeer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except OSError:
                    self.close_connection = True

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                received = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with peer._lock:
                    peer._received.append(received)
                    script = peer._scripts.get(self.path.split("?")[0], _Script())
                if script.delay and peer._stopping.wait(script.delay):
                    script = _Script(drop=True)
                if script.drop:
                    self.close_connection = True
                    return
                self.send_response(script.status)
                for name, value in script.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(script.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(script.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self._tls is not None:
            self._tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment]
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> LocalPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def answer(self, path: str, status: int = 200, *, headers: dict[str, str] | None = None,
               body: bytes = b"ok", delay: float = 0.0, drop: bool = False) -> None:
        with self._lock:
            self._scripts[path] = _Script(status, dict(headers or {}), body, delay, drop)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)


@pytest.fixture
def peer() -> Iterator[LocalPeer]:
    with LocalPeer() as server:
        yield server


@pytest.fixture
def other_peer() -> Iterator[LocalPeer]:
    with LocalPeer() as server:
        yield server


# -- resolvers and a guard transport -----------------------------------------------------------


class TableResolver:
    """Answers from a table and records every lookup; a name not in the table does not resolve."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = dict(table or {})
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


class LoopbackOnlyTransport(httpx.AsyncBaseTransport):
    """A real transport that refuses (and records) any request whose URL is not a loopback
    address: the tests that name other addresses use it, so a broken check fails the test
    instead of sending traffic off the machine."""

    def __init__(self, **kwargs: Any) -> None:
        self.inner = httpx.AsyncHTTPTransport(**kwargs)
        self.refused: list[httpx.URL] = []
        self.sent: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not ipaddress.ip_address(request.url.host).is_loopback:
            self.refused.append(request.url)
            raise AssertionError(f"the handler tried to connect to {request.url.host}")
        self.sent.append(request.url)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def guard() -> AsyncIterator[LoopbackOnlyTransport]:
    transport = LoopbackOnlyTransport()
    yield transport
    await transport.aclose()


def schedule_for(payload: dict[str, Any]) -> Schedule:
    return Schedule.create(
        id=uuid.uuid4().hex, task_type="http.request", payload=payload, trigger=OnceTrigger(DUE),
        timezone="UTC", first_run_at=DUE, now=DUE - timedelta(minutes=1),
    )


async def failure(handler: HttpRequestHandler, schedule: Schedule) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await handler.run(schedule)
    return caught.value


LOCAL = ["127.0.0.1"]


# -- what goes out, and success ----------------------------------------------------------------


async def test_a_post_with_a_json_body_succeeds_with_its_expected_status(peer: LocalPeer) -> None:
    peer.answer("/sync", 201, body=b'{"id": 1}')
    schedule = schedule_for({
        "method": "POST", "url": peer.url("/sync?since=2030-01-01"), "body": {"order": 42, "name": "Ação"},
        "headers": {"Authorization": f"Bearer {SECRET}", "X-Trace": "t-1"}, "expected_status": [201],
    })

    outcome = await HttpRequestHandler(allow_hosts=LOCAL).run(schedule)

    assert outcome.result == {"status_code": "201"}
    [request] = peer.received
    assert (request.method, request.path) == ("POST", "/sync?since=2030-01-01")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"order": 42, "name": "Ação"}
    assert request.headers["host"] == f"127.0.0.1:{peer.port}"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.headers["x-trace"] == "t-1"
    assert request.headers["user-agent"] == f"cronjob/{__version__}"


async def test_the_idempotency_key_and_schedule_id_arrive_and_stay_the_same_across_attempts(
    peer: LocalPeer,
) -> None:
    schedule = schedule_for({"method": "PUT", "url": peer.url("/resource/7"), "body": "v=1"})
    handler = HttpRequestHandler(allow_hosts=LOCAL)
    peer.answer("/resource/7", 503)
    assert (await failure(handler, schedule)).retryable
    peer.answer("/resource/7", 204, body=b"")

    assert (await handler.run(schedule)).result == {"status_code": "204"}

    first, second = peer.received
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == schedule.delivery_key
    assert first.headers["cronjob-schedule-id"] == schedule.id
    assert first.headers["content-type"] == "text/plain; charset=utf-8" and first.body == b"v=1"


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
async def test_methods_without_a_body_send_none(peer: LocalPeer, method: str) -> None:
    outcome = await HttpRequestHandler(allow_hosts=LOCAL).run(schedule_for({"method": method, "url": peer.url("/x")}))

    assert outcome.result == {"status_code": "200"}
    [request] = peer.received
    assert request.method == method and request.body == b""


async def test_a_status_class_and_exact_statuses_can_be_mixed(peer: LocalPeer) -> None:
    handler = HttpRequestHandler(allow_hosts=LOCAL)
    peer.answer("/gone", 410)
    peer.answer("/accepted", 202)
    peer.answer("/no-content", 204)

    assert (await handler.run(schedule_for({"url": peer.url("/gone"), "expected_status": ["2xx", 410]}))
            ).result == {"status_code": "410"}
    assert (await handler.run(schedule_for({"url": peer.url("/accepted"), "expected_status": [200, 202]}))
            ).result == {"status_code": "202"}
    error = await failure(handler, schedule_for({"url": peer.url("/no-content"), "expected_status": [200]}))
    assert (error.code, error.retryable, error.http_status) == ("http_204", False, 204)


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_5xx_and_408_are_retryable(peer: LocalPeer, status: int) -> None:
    peer.answer("/", status)

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL), schedule_for({"url": peer.url("/")}))

    assert (error.code, error.retryable, error.http_status) == (f"http_{status}", True, status)
    assert error.retry_after_seconds is None


async def test_429_waits_for_retry_after_in_seconds(peer: LocalPeer) -> None:
    peer.answer("/", 429, headers={"Retry-After": "7"})

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL), schedule_for({"url": peer.url("/")}))

    assert (error.code, error.retryable, error.retry_after_seconds) == ("http_429", True, 7.0)


async def test_503_waits_for_retry_after_as_an_http_date(peer: LocalPeer) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    peer.answer("/", 503, headers={"Retry-After": format_datetime(when, usegmt=True)})

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL), schedule_for({"url": peer.url("/")}))

    assert error.retryable and error.retry_after_seconds is not None
    assert 100 <= error.retry_after_seconds <= 121


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_4xx_are_permanent(peer: LocalPeer, status: int) -> None:
    peer.answer("/", status, headers={"Retry-After": "5"})

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL), schedule_for({"url": peer.url("/")}))

    assert (error.code, error.retryable, error.http_status) == (f"http_{status}", False, status)
    assert error.retry_after_seconds is None
    assert "127.0.0.1" in error.message


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
async def test_a_timeout_after_sending_is_retryable_for_every_method(peer: LocalPeer, method: str) -> None:
    peer.answer("/slow", delay=5)
    body = {"body": {"a": 1}} if method != "GET" else {}
    started = time.monotonic()

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL),
                          schedule_for({"method": method, "url": peer.url("/slow"), "timeout_seconds": 0.3, **body}))

    assert time.monotonic() - started < 3
    assert (error.code, error.retryable) == ("timeout", True)
    assert "Idempotency-Key" in error.message
    assert len(peer.received) == 1  # it was sent: the receiver deduplicates by the key


async def test_a_connection_closed_without_an_answer_is_retryable(peer: LocalPeer) -> None:
    peer.answer("/drop", drop=True)

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL),
                          schedule_for({"method": "POST", "url": peer.url("/drop"), "body": "x"}))

    assert (error.code, error.retryable) == ("connection_lost", True)


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL), schedule_for({"url": f"http://127.0.0.1:{port}/"}))

    assert (error.code, error.retryable) == ("connect_error", True)
    # Said as such, not as the wrapper's class name: httpx wraps httpcore's error, which wraps
    # anyio's "All connection attempts failed", whose cause is the OS's ConnectionRefusedError.
    assert error.message == "could not connect to 127.0.0.1 (connection refused)"


async def test_a_name_whose_every_address_refuses_says_so() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    resolver = TableResolver({"down.test": ["127.0.0.1", "127.0.0.2"]})

    error = await failure(HttpRequestHandler(allow_hosts=["down.test"], resolver=resolver),
                          schedule_for({"url": f"http://down.test:{port}/"}))

    assert (error.code, error.retryable) == ("connect_error", True)
    assert error.message == "could not connect to down.test (connection refused)"


async def test_a_name_that_does_not_resolve_is_retryable(guard: LoopbackOnlyTransport) -> None:
    resolver = TableResolver()

    error = await failure(HttpRequestHandler(transport=guard, resolver=resolver),
                          schedule_for({"url": "https://api.example.com/x"}))

    assert (error.code, error.retryable) == ("dns_error", True)
    assert resolver.calls == [("api.example.com", 443)] and guard.refused == guard.sent == []


async def test_an_invalid_stored_payload_is_permanent_and_not_echoed() -> None:
    error = await failure(HttpRequestHandler(), schedule_for({"url": "http://x.example/", "headers": {"X-Key": f"{SECRET}\r\nX: y"}}))

    assert (error.code, error.retryable) == ("invalid_payload", False)
    assert "headers" in error.message and SECRET not in error.message


# -- pinning: the connection goes to the checked address ---------------------------------------


async def test_an_allowed_name_is_resolved_once_and_the_connection_goes_to_that_address(peer: LocalPeer) -> None:
    resolver = TableResolver({"api.internal.test": ["127.0.0.1"]})

    outcome = await HttpRequestHandler(allow_hosts=["api.internal.test"], resolver=resolver).run(
        schedule_for({"url": peer.url("/ping", host="api.internal.test")}))

    # The name exists nowhere but in the table: httpx made no lookup of its own.
    assert outcome.result == {"status_code": "200"}
    assert resolver.calls == [("api.internal.test", peer.port)]
    [request] = peer.received
    assert request.headers["host"] == f"api.internal.test:{peer.port}"


async def test_an_address_that_refuses_the_connection_is_skipped_for_the_next_checked_one(peer: LocalPeer) -> None:
    resolver = TableResolver({"dual.test": ["::1", "127.0.0.1"]})  # the peer listens on 127.0.0.1 only

    outcome = await HttpRequestHandler(allow_hosts=["dual.test"], resolver=resolver).run(
        schedule_for({"url": peer.url("/", host="dual.test")}))

    assert outcome.result == {"status_code": "200"} and len(peer.received) == 1


async def test_a_second_resolver_answer_cannot_change_the_destination(peer: LocalPeer, guard: LoopbackOnlyTransport) -> None:
    class Rebinding(TableResolver):
        async def __call__(self, host: str, port: int) -> list[str]:
            self.calls.append((host, port))
            return ["127.0.0.1"] if len(self.calls) == 1 else ["10.0.0.7"]

    resolver = Rebinding()
    handler = HttpRequestHandler(allow_hosts=["127.0.0.1"], transport=guard, resolver=resolver)
    url = peer.url("/", host="rebind.test")

    assert (await handler.run(schedule_for({"url": url}))).result == {"status_code": "200"}
    assert guard.sent == [httpx.URL(peer.url("/"))] and len(resolver.calls) == 1
    error = await failure(handler, schedule_for({"url": url}))  # the next run sees the new answer, checked
    assert error.code == "destination_refused" and "10.0.0.7" in error.message
    assert guard.refused == [] and len(peer.received) == 1


@pytest.fixture(scope="module")
def tls() -> Any:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("pinned.test").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def test_https_sends_the_host_name_as_sni_and_verifies_the_certificate_against_it(tls: Any) -> None:
    server_context, client_context = tls
    resolver = TableResolver({"pinned.test": ["127.0.0.1"]})
    transport = httpx.AsyncHTTPTransport(verify=client_context)
    try:
        with LocalPeer(tls=server_context) as peer:
            handler = HttpRequestHandler(allow_hosts=["pinned.test"], transport=transport, resolver=resolver)
            outcome = await handler.run(schedule_for({"url": peer.url("/secure", host="pinned.test")}))

            assert outcome.result == {"status_code": "200"}
            assert peer.sni == ["pinned.test"]  # not the IP the connection went to
            assert peer.received[0].headers["host"] == f"pinned.test:{peer.port}"

            # The same server under a name its certificate does not carry: verified against the name, refused.
            resolver.table["other.test"] = ["127.0.0.1"]
            handler = HttpRequestHandler(allow_hosts=["other.test"], transport=transport, resolver=resolver)
            error = await failure(handler, schedule_for({"url": peer.url("/secure", host="other.test")}))
            assert (error.code, error.retryable) == ("connect_error", True)
            assert "certificate" in error.message and len(peer.received) == 1
    finally:
        await transport.aclose()


# -- redirects ---------------------------------------------------------------------------------


async def test_a_redirect_is_not_followed_unless_asked(peer: LocalPeer) -> None:
    peer.answer("/start", 302, headers={"Location": "/final"})

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL), schedule_for({"url": peer.url("/start")}))

    assert (error.code, error.retryable) == ("http_302", False)
    assert [r.path for r in peer.received] == ["/start"]


async def test_a_redirect_is_followed_when_asked_with_the_same_idempotency_key(peer: LocalPeer) -> None:
    peer.answer("/start", 301, headers={"Location": "/final?step=2"})

    outcome = await HttpRequestHandler(allow_hosts=LOCAL).run(
        schedule_for({"url": peer.url("/start"), "follow_redirects": True}))

    assert outcome.result == {"status_code": "200", "redirects": "1"}
    first, second = peer.received
    assert second.path == "/final?step=2"
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


async def test_a_303_continues_as_a_get_and_a_307_repeats_the_post(peer: LocalPeer) -> None:
    peer.answer("/see-other", 303, headers={"Location": "/done"})
    peer.answer("/temporary", 307, headers={"Location": "/done"})
    handler = HttpRequestHandler(allow_hosts=LOCAL)
    post = {"method": "POST", "body": {"a": 1}, "follow_redirects": True}

    await handler.run(schedule_for({**post, "url": peer.url("/see-other")}))
    await handler.run(schedule_for({**post, "url": peer.url("/temporary")}))

    hops = [(r.method, r.path, r.body, r.headers.get("content-type")) for r in peer.received]
    assert hops == [
        ("POST", "/see-other", b'{"a":1}', "application/json"), ("GET", "/done", b"", None),
        ("POST", "/temporary", b'{"a":1}', "application/json"), ("POST", "/done", b'{"a":1}', "application/json"),
    ]


async def test_a_redirect_to_another_origin_keeps_no_credentials(peer: LocalPeer, other_peer: LocalPeer) -> None:
    peer.answer("/start", 308, headers={"Location": other_peer.url("/landing")})

    await HttpRequestHandler(allow_hosts=LOCAL).run(schedule_for({
        "url": peer.url("/start"), "follow_redirects": True,
        "headers": {"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET, "Accept": "application/json"},
    }))

    [first], [second] = peer.received, other_peer.received
    assert first.headers["authorization"] == f"Bearer {SECRET}"
    assert "authorization" not in second.headers and "x-api-key" not in second.headers
    assert second.headers["accept"] == "application/json"
    assert second.headers["idempotency-key"] == first.headers["idempotency-key"]
    assert second.headers["host"] == f"127.0.0.1:{other_peer.port}"


async def test_too_many_redirects_fail(peer: LocalPeer) -> None:
    peer.answer("/loop", 302, headers={"Location": "/loop"})

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL),
                          schedule_for({"url": peer.url("/loop"), "follow_redirects": True}))

    assert (error.code, error.retryable) == ("too_many_redirects", False)
    assert len(peer.received) == MAX_REDIRECTS + 1


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://10.0.0.1/admin",
    "http://[::ffff:10.0.0.1]/admin",
])
async def test_a_redirect_to_a_refused_destination_is_refused_before_connecting(
    peer: LocalPeer, guard: LoopbackOnlyTransport, location: str
) -> None:
    peer.answer("/start", 302, headers={"Location": location})
    resolver = TableResolver()

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL, transport=guard, resolver=resolver),
                          schedule_for({"url": peer.url("/start"), "follow_redirects": True}))

    assert (error.code, error.retryable) == ("destination_refused", False)
    assert [r.path for r in peer.received] == ["/start"]
    assert guard.refused == [] and resolver.calls == []


async def test_a_redirect_to_a_name_that_resolves_inside_is_refused(peer: LocalPeer, guard: LoopbackOnlyTransport) -> None:
    peer.answer("/start", 302, headers={"Location": "http://wiki.corp.example/"})
    resolver = TableResolver({"wiki.corp.example": ["10.20.30.40"]})

    error = await failure(HttpRequestHandler(allow_hosts=LOCAL, transport=guard, resolver=resolver),
                          schedule_for({"url": peer.url("/start"), "follow_redirects": True}))

    assert error.code == "destination_refused"
    assert "wiki.corp.example" in error.message and "10.20.30.40" in error.message
    assert resolver.calls == [("wiki.corp.example", 80)] and guard.refused == []


async def test_a_redirect_from_an_allowed_name_to_an_address_not_on_the_list_is_refused(peer: LocalPeer) -> None:
    resolver = TableResolver({"hooks.test": ["127.0.0.1"]})
    peer.answer("/start", 302, headers={"Location": peer.url("/internal")})  # http://127.0.0.1:<port>/internal

    error = await failure(HttpRequestHandler(allow_hosts=["hooks.test"], resolver=resolver),
                          schedule_for({"url": peer.url("/start", host="hooks.test"), "follow_redirects": True}))

    assert error.code == "destination_refused" and "loopback" in error.message
    assert [r.path for r in peer.received] == ["/start"]


async def test_a_redirect_from_https_to_http_is_refused(tls: Any, peer: LocalPeer) -> None:
    server_context, client_context = tls
    transport = httpx.AsyncHTTPTransport(verify=client_context)
    try:
        with LocalPeer(tls=server_context) as secure:
            secure.answer("/start", 302, headers={"Location": peer.url("/plain")})
            handler = HttpRequestHandler(allow_hosts=["pinned.test", "127.0.0.1"], transport=transport,
                                         resolver=TableResolver({"pinned.test": ["127.0.0.1"]}))
            error = await failure(handler, schedule_for({"url": secure.url("/start", host="pinned.test"),
                                                         "follow_redirects": True}))
    finally:
        await transport.aclose()

    assert (error.code, error.retryable) == ("redirect_refused", False)
    assert peer.received == []


# -- SSRF: refused without the allow-list, before any connection -------------------------------


LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://2130706433:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::]:{port}/",
]


@pytest.mark.parametrize("template", LOOPBACK_FORMS)
async def test_every_form_of_a_loopback_url_is_refused_without_the_allow_list(peer: LocalPeer, template: str) -> None:
    url = template.format(port=peer.port)

    # The system resolver (localhost comes from /etc/hosts) and the default transport: if a check
    # let one through, the request would land on the local server.
    error = await failure(HttpRequestHandler(), schedule_for({"url": url}))

    assert (error.code, error.retryable) == ("destination_refused", False)
    assert "loopback" in error.message or "unspecified" in error.message
    assert peer.received == []


async def test_a_localhost_name_is_refused_for_every_address_it_has(peer: LocalPeer) -> None:
    resolver = TableResolver({"localhost": ["127.0.0.1", "::1"]})

    error = await failure(HttpRequestHandler(resolver=resolver), schedule_for({"url": peer.url("/", host="localhost")}))

    assert error.code == "destination_refused" and "localhost" in error.message
    assert resolver.calls == [("localhost", peer.port)] and peer.received == []


@pytest.mark.parametrize(("url", "why"), [
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.170.2/v2/credentials", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://METADATA.google.internal./computeMetadata/v1/", "metadata"),
    ("http://169.254.10.10/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[64:ff9b::a00:1]/", "NAT64"),
    ("http://[2002:a00:1::]/", "6to4"),
    ("http://167772161/", "private"),  # 10.0.0.1 as one decimal number
    ("https://012.0.0.1/", "private"),  # 10.0.0.1 with an octal first part
])
async def test_internal_destinations_are_refused_without_connecting(
    guard: LoopbackOnlyTransport, url: str, why: str
) -> None:
    resolver = TableResolver()

    error = await failure(HttpRequestHandler(transport=guard, resolver=resolver), schedule_for({"url": url}))

    assert (error.code, error.retryable) == ("destination_refused", False)
    assert why in error.message
    assert resolver.calls == []  # addresses and metadata names need no lookup
    assert guard.refused == guard.sent == []


async def test_a_name_with_one_public_and_one_private_address_is_refused(guard: LoopbackOnlyTransport) -> None:
    resolver = TableResolver({"evil.example": ["93.184.216.34", "10.0.0.5"]})

    error = await failure(HttpRequestHandler(transport=guard, resolver=resolver),
                          schedule_for({"url": "https://evil.example/steal"}))

    assert (error.code, error.retryable) == ("destination_refused", False)
    assert "evil.example" in error.message and "10.0.0.5" in error.message and "steal" not in error.message
    assert resolver.calls == [("evil.example", 443)]
    assert guard.refused == guard.sent == []


@pytest.mark.parametrize("answer", [["::ffff:127.0.0.1"], ["169.254.169.254"], ["0.0.0.0"]])
async def test_a_name_resolving_to_a_disguised_internal_address_is_refused(
    guard: LoopbackOnlyTransport, answer: list[str]
) -> None:
    resolver = TableResolver({"cdn.example": answer})

    error = await failure(HttpRequestHandler(transport=guard, resolver=resolver),
                          schedule_for({"url": "http://cdn.example/"}))

    assert error.code == "destination_refused" and guard.refused == guard.sent == []


async def test_an_allowed_name_does_not_open_cloud_metadata(guard: LoopbackOnlyTransport) -> None:
    resolver = TableResolver({"sync.partner.test": ["169.254.169.254"]})

    error = await failure(HttpRequestHandler(allow_hosts=["sync.partner.test", "169.254.0.0/16"], transport=guard,
                                             resolver=resolver),
                          schedule_for({"url": "http://sync.partner.test/"}))

    assert error.code == "destination_refused" and "metadata" in error.message
    assert guard.refused == guard.sent == []


def test_a_bad_allow_list_entry_stops_construction() -> None:
    with pytest.raises(ValueError, match="allow-list"):
        HttpRequestHandler(allow_hosts=["not a host/name"])


# -- logs --------------------------------------------------------------------------------------


async def test_logs_name_method_host_and_status_never_secrets(
    peer: LocalPeer, guard: LoopbackOnlyTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cronjob_adapters.tasks")
    peer.answer(f"/hook/{SECRET}", 500, body=SECRET.encode())
    handler = HttpRequestHandler(allow_hosts=LOCAL)
    schedule = schedule_for({
        "method": "POST", "url": peer.url(f"/hook/{SECRET}?token={SECRET}"), "body": {"password": SECRET},
        "headers": {"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET},
    })

    error = await failure(handler, schedule)
    refused = await failure(HttpRequestHandler(transport=guard), schedule_for({"url": f"http://10.0.0.1/?token={SECRET}"}))

    assert SECRET not in caplog.text and SECRET not in error.message and SECRET not in refused.message
    assert "method=POST" in caplog.text and "host=127.0.0.1" in caplog.text and "status=500" in caplog.text
    assert "duration_ms=" in caplog.text and "destination_refused" in caplog.text


# -- request building (httpx.MockTransport: no network at all) ---------------------------------


async def test_a_public_name_is_pinned_host_and_sni_carry_the_name() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    resolver = TableResolver({"api.partner.example": ["93.184.216.34"]})
    handler = HttpRequestHandler(transport=httpx.MockTransport(answer), resolver=resolver, user_agent="ua/1")
    schedule = schedule_for({"method": "PATCH", "url": "https://API.partner.example/v1/items?x=1#frag",
                             "body": [1, 2], "headers": {"Content-Type": "application/merge-patch+json"},
                             "timeout_seconds": 3})

    assert (await handler.run(schedule)).result == {"status_code": "200"}

    [request] = seen
    assert str(request.url) == "https://93.184.216.34/v1/items?x=1"
    assert request.headers["host"] == "api.partner.example"
    assert request.extensions["sni_hostname"] == "api.partner.example"
    assert request.extensions["timeout"] == {"connect": 3, "read": 3, "write": 3, "pool": 3}
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert request.headers["user-agent"] == "ua/1"
    assert request.headers["idempotency-key"] == schedule.delivery_key
    assert request.headers["cronjob-schedule-id"] == schedule.id
    assert request.content == b"[1,2]"


async def test_an_ipv6_destination_is_pinned_in_brackets_and_an_ip_url_sends_no_sni() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(204))
    resolver = TableResolver({"v6.example": ["2606:2800:220:1:248:1893:25c8:1946"]})
    handler = HttpRequestHandler(transport=transport, resolver=resolver)

    await handler.run(schedule_for({"url": "https://v6.example:8443/"}))
    await handler.run(schedule_for({"url": "https://93.184.216.34/"}))

    assert str(seen[0].url) == "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/"
    assert seen[0].headers["host"] == "v6.example:8443"
    assert "sni_hostname" not in seen[1].extensions and seen[1].headers["host"] == "93.184.216.34"


@pytest.mark.parametrize(("allow", "url", "allowed"), [
    (["169.254.0.0/16"], "http://169.254.1.1/", True),
    (["169.254.0.0/16"], "http://169.254.169.254/", False),
    (["169.254.169.254"], "http://169.254.169.254/", True),
    (["metadata.google.internal"], "http://metadata.google.internal/", True),
    (["10.0.0.0/8"], "http://10.1.2.3/", True),
    (["10.0.0.0/8"], "http://[::ffff:10.1.2.3]/", True),
    (["10.0.0.0/8"], "http://192.168.0.1/", False),
    (["fd00::/8"], "http://[fd12::1]/", True),
    (["internal.test"], "http://INTERNAL.test./", True),
    (["internal.test"], "http://10.0.0.9/", False),
])
async def test_the_allow_list_opens_only_what_it_names(allow: list[str], url: str, allowed: bool) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200))
    resolver = TableResolver({"metadata.google.internal": ["169.254.169.254"], "internal.test": ["10.0.0.9"]})
    handler = HttpRequestHandler(allow_hosts=allow, transport=transport, resolver=resolver)

    if allowed:
        assert (await handler.run(schedule_for({"url": url}))).result == {"status_code": "200"}
        assert len(seen) == 1
    else:
        assert (await failure(handler, schedule_for({"url": url}))).code == "destination_refused"
        assert seen == []


async def test_a_slow_resolver_counts_against_the_timeout() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return ["93.184.216.34"]

    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    error = await failure(HttpRequestHandler(transport=transport, resolver=slow),
                          schedule_for({"url": "http://slow-dns.example/", "timeout_seconds": 0.2}))

    assert (error.code, error.retryable) == ("dns_error", True)
