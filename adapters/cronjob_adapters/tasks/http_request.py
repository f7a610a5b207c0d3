"""The ``http.request`` task type: one scheduled HTTP call (a sync with an external service, an alert).

:class:`HttpRequestHandler` makes the call when it is due. The payload's schema
(:class:`~cronjob_adapters.tasks.http_payload.HttpRequestPayload`) and its check when a schedule
is created are in :mod:`cronjob_adapters.tasks.http_payload`.

**Outcomes.** A status listed in ``expected_status`` (default: any 2xx) is a success. 408, 429 and
5xx are retryable :class:`DeliveryError` ``http_<status>`` carrying the ``Retry-After`` delay
(seconds or an HTTP date); any other status is a permanent ``http_<status>``. Connection refused,
connect timeouts and DNS failures are retryable (``connect_error``, ``connect_timeout``,
``dns_error``).

**Timeouts after the request was sent are retried, for every method** (``timeout``, and
``connection_lost`` when the peer hangs up before answering). Unlike WhatsApp, HTTP receivers are
ours to design: every request carries ``Idempotency-Key: <schedule id>:<occurrence>`` (the same
on every attempt and redirect hop of an occurrence) so the receiver can recognise a repeat and
drop it, and the callers of a scheduled sync or alert expect "at least once" rather than an
``unknown`` schedule that waits for an operator. A receiver that ignores the key may see a
POST or PATCH twice.

**Where requests may go** (SSRF, see :mod:`cronjob_adapters.tasks.ssrf`): loopback, private,
link-local, CGNAT, multicast, reserved and cloud metadata destinations are refused unless the
allow-list (``allow_hosts``) names the host or covers the address: refused before any connection,
as a permanent ``destination_refused``. The host is resolved once per hop, every address is
checked, and the connection goes to a checked address (pinning, below). Redirects are followed by
this module, never by httpx, so each hop goes through the same checks; a redirect to another
origin drops every header but ``Accept``, ``Accept-Language``, ``Content-Type``,
``Content-Language`` and ``User-Agent`` (the others may carry credentials), and a redirect from
https to http is refused.

**Pinning with httpx.** The request goes straight to an ``httpx.AsyncHTTPTransport`` (no
``AsyncClient``: no environment proxies, no cookies, no automatic redirects) with the URL's host
replaced by the checked IP address, so httpcore opens the TCP connection to that address and
makes no DNS query of its own. The ``Host`` header keeps the original ``host[:port]``, and for
https the request extension ``sni_hostname`` (read by httpcore 1.x, which httpx 0.28 uses) makes
the TLS handshake send the original name as SNI and verify the certificate against that name, not
against the IP. Each hop gets its own transport, closed after the answer, so a pooled connection
made for one name is never reused for another name on the same address.

**Logs** carry the method, the host, the status, the duration, the error code and the schedule
id: never a header value, a body, a path or a query string (they may hold tokens). Response
bodies are not read and not stored.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin

import httpx

from cronjob import __version__
from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError
from cronjob.domain.schedule import Schedule
from cronjob.ports.tasks import TaskHandler, TaskOutcome

from cronjob_adapters.retry_after import parse_retry_after, retryable_status
from cronjob_adapters.tasks.http_payload import (
    DEFAULT_TIMEOUT_SECONDS,
    IDEMPOTENCY_HEADER,
    MAX_REDIRECTS,
    SCHEDULE_HEADER,
    HttpRequestPayload,
    prepare_http_request_payload,
)
from cronjob_adapters.tasks.ssrf import (
    DestinationPolicy,
    DestinationRefused,
    IPAddress,
    ResolutionFailed,
    Target,
    parse_url,
    system_resolver,
)
from cronjob_adapters.tasks.validation import validate_stored

log = logging.getLogger(__name__)

TASK_TYPE = "http.request"

#: What survives a redirect to another origin (the other headers may carry credentials).
REDIRECT_SAFE_HEADERS: frozenset[str] = frozenset(
    {"accept", "accept-language", "content-type", "content-language", "user-agent"}
)
REDIRECT_STATUSES: frozenset[int] = frozenset({301, 302, 303, 307, 308})


def status_error(host: str, status: int, retry_after: str | None = None) -> DeliveryError:
    """The failure for an answer with an unexpected ``status`` from ``host``: ``http_<status>``,
    retryable for 408, 429 and 5xx (with the ``Retry-After`` delay), permanent otherwise."""
    retryable = retryable_status(status)
    return DeliveryError(
        f"http_{status}",
        f"{host} answered HTTP {status}, not one of the expected statuses",
        retryable=retryable, http_status=status,
        retry_after_seconds=parse_retry_after(retry_after) if retryable else None, details={"host": host},
    )


@dataclass(frozen=True, slots=True)
class _Hop:
    """One request of a run: the first, or one after a redirect."""

    method: str
    target: Target
    headers: tuple[tuple[str, str], ...]  # the payload's, as they stand after redirects
    content: bytes | None
    content_type: str | None  # the default Content-Type of ``content``
    scheduler_headers: bool = True  # add Idempotency-Key and Cronjob-Schedule-Id (not for :meth:`send`)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """The head of an answer: its status and the headers this module acts on."""

    status: int
    location: str | None
    retry_after: str | None


class HttpRequestHandler(TaskHandler):
    """Makes an ``http.request`` schedule's call (see the module's docstring for the rules).

    ``allow_hosts``: host names and addresses/CIDR blocks that may be reached although they are
    not public (a bad entry is a :class:`ValueError`). ``transport``: the httpx transport to send
    through (default: a new ``httpx.AsyncHTTPTransport`` per hop, closed after it; an injected
    one is shared and never closed here, and as it pools connections by address it suits tests
    and single destinations, not many names behind one address). ``resolver``: ``(host, port) -> [address, ...]``
    (default: ``loop.getaddrinfo``).
    """

    task_type = TASK_TYPE

    def __init__(
        self,
        *,
        allow_hosts: Collection[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Callable[[str, int], Awaitable[list[str]]] | None = None,
        user_agent: str = f"cronjob/{__version__}",
    ) -> None:
        self._policy = DestinationPolicy(allow_hosts)
        self._transport = transport
        self._resolver = resolver or system_resolver
        self._user_agent = user_agent
        self._ssl_context: ssl.SSLContext | None = None if transport is not None else httpx.create_ssl_context()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._policy!r})"

    def refusal(self, url: str) -> str | None:
        """Why every request to ``url`` (an URL :func:`parse_url` reads) would be refused as
        ``destination_refused`` whatever DNS answers, or None (see :meth:`DestinationPolicy.refusal`):
        for refusing it when it is given rather than when it is used."""
        return self._policy.refusal(parse_url(url))

    def prepare(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The ``http.request`` payload to store (:func:`prepare_http_request_payload`), unless
        its ``url`` would be refused whatever DNS answers (:meth:`refusal`: a literal private,
        loopback or link-local address, a metadata host, not on the allow-list): then the
        domain's :class:`ValidationError` naming ``url``, its message naming the host, never the
        URL's path or query (they may hold a token). A host name is checked when the request is
        made (what it resolves to may change)."""
        prepared = prepare_http_request_payload(payload)
        target = parse_url(prepared["url"])
        if (reason := self._policy.refusal(target)) is not None:
            raise ValidationError(f"requests to {target.authority} would be refused: {reason}; "
                                  "CRONJOB_HTTP_ALLOW_HOSTS names the private destinations that may be reached",
                                  field="url")
        return prepared

    async def run(self, schedule: Schedule) -> TaskOutcome:
        payload = validate_stored(HttpRequestPayload, schedule.payload)
        content, content_type = payload.encoded_body()
        hop = _Hop(payload.method, payload.target(), tuple(payload.headers.items()), content, content_type)
        started = time.monotonic()
        redirects = 0
        while True:
            answer = await self._send(hop, payload.timeout_seconds, schedule, started)
            if not (payload.follow_redirects and answer.status in REDIRECT_STATUSES and answer.location):
                break
            if redirects >= MAX_REDIRECTS:
                self._log_failure(hop, schedule, started, "too_many_redirects", answer.status)
                raise DeliveryError(
                    "too_many_redirects",
                    f"more than {MAX_REDIRECTS} redirects (the last from {hop.target.host})",
                    retryable=False, http_status=answer.status, details={"host": hop.target.host},
                )
            log.debug("http.request redirect: method=%s host=%s status=%s schedule=%s",
                      hop.method, hop.target.host, answer.status, schedule.id)
            hop = self._redirected(hop, answer, schedule, started)
            redirects += 1
        elapsed_ms = (time.monotonic() - started) * 1000
        host = hop.target.host
        if payload.accepts(answer.status):
            log.info("http.request done: method=%s host=%s status=%s duration_ms=%.0f redirects=%d schedule=%s",
                     hop.method, host, answer.status, elapsed_ms, redirects, schedule.id)
            result = {"status_code": str(answer.status)}
            if redirects:
                result["redirects"] = str(redirects)
            return TaskOutcome(result=result)
        error = status_error(host, answer.status, answer.retry_after)
        retryable = error.retryable
        log.warning("http.request failed: method=%s host=%s status=%s duration_ms=%.0f retryable=%s schedule=%s",
                    hop.method, host, answer.status, elapsed_ms, retryable, schedule.id)
        raise error

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        content: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        schedule: Schedule,
    ) -> HttpAnswer:
        """One request through the same guard as :meth:`run` (SSRF checks, IP pinning, timeouts),
        for other adapters that call user-given URLs (status webhooks): redirects are not followed,
        the headers are exactly ``headers`` plus ``Host`` (and ``User-Agent`` unless given), the
        body exactly ``content``. ``schedule`` names the run in logs.

        Returns the answer's head whatever its status (judge it with :func:`status_error`); a
        refused destination or a transport failure raises the :class:`DeliveryError` :meth:`run`
        would (``destination_refused`` permanent; ``timeout``, ``connect_error``, ... retryable).
        """
        try:
            target = parse_url(url)
        except ValueError as exc:
            raise DeliveryError("invalid_url", str(exc), retryable=False) from None
        hop = _Hop(method, target, tuple(headers), content, None, scheduler_headers=False)
        return await self._send(hop, timeout, schedule, time.monotonic())

    # -- one hop

    async def _send(self, hop: _Hop, timeout: float, schedule: Schedule, started: float) -> HttpAnswer:
        """Resolve, check, connect to a checked address and return the answer's head; every
        failure as the :class:`DeliveryError` the module's docstring lists."""
        host = hop.target.host
        resolving = True
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(hop.target, self._resolver)
                resolving = False
                for index, address in enumerate(addresses):
                    try:
                        return await self._exchange(self._request(hop, address, timeout, schedule))
                    except httpx.ConnectError:
                        if index == len(addresses) - 1:
                            raise
                        log.debug("http.request connect failed, next address: host=%s schedule=%s",
                                  host, schedule.id)
                raise AssertionError("unreachable: resolve() returns at least one address")
        except DestinationRefused as exc:
            self._log_failure(hop, schedule, started, "destination_refused", reason=exc.reason)
            raise DeliveryError(
                "destination_refused", f"refused to connect to {exc.host}: {exc.reason}",
                retryable=False, details={"host": exc.host},
            ) from None
        except ResolutionFailed as exc:
            code, message, retryable = "dns_error", f"{exc.host} {exc.reason}", True
            cause: BaseException = exc
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            code, message, retryable = "connect_timeout", f"no connection to {host} within {timeout:g} s", True
            cause = exc
        except httpx.ConnectError as exc:
            code, message, retryable = "connect_error", f"could not connect to {host} ({_describe(exc)})", True
            cause = exc
        except TimeoutError as exc:
            if resolving:
                code, message, retryable = "dns_error", f"{host} did not resolve within {timeout:g} s", True
            else:  # the deadline of the whole hop, like a read timeout below
                code, message, retryable = "timeout", _no_answer(host, timeout, hop), True
            cause = exc
        except httpx.TimeoutException as exc:
            # Sent, maybe processed: retried anyway, the Idempotency-Key lets the receiver dedupe.
            code, message, retryable = "timeout", _no_answer(host, timeout, hop), True
            cause = exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            code, message, retryable = "invalid_request", f"the request could not be made ({type(exc).__name__})", False
            cause = exc
        except httpx.TransportError as exc:
            code, retryable = "connection_lost", True
            message = f"{host} closed the connection before answering ({type(exc).__name__}); {_retried(hop)}"
            cause = exc
        self._log_failure(hop, schedule, started, code)
        raise DeliveryError(code, message, retryable=retryable, details={"host": host}) from cause

    def _request(self, hop: _Hop, address: IPAddress, timeout: float, schedule: Schedule) -> httpx.Request:
        """The request for ``hop`` pinned to ``address``: the URL names the address, ``Host``
        and (https) SNI the original host."""
        target = hop.target
        given = {name.lower() for name, _ in hop.headers}
        headers: list[tuple[str, str]] = [("Host", target.authority)]
        if "user-agent" not in given:
            headers.append(("User-Agent", self._user_agent))
        headers.extend(hop.headers)
        if hop.content is not None and hop.content_type and "content-type" not in given:
            headers.append(("Content-Type", hop.content_type))
        if hop.scheduler_headers:
            headers.append((IDEMPOTENCY_HEADER, schedule.delivery_key))
            headers.append((SCHEDULE_HEADER, schedule.id))
        extensions: dict[str, Any] = {
            "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout},
        }
        if target.scheme == "https" and target.address is None:
            extensions["sni_hostname"] = target.host
        return httpx.Request(
            hop.method, target.url_for(address), headers=headers, content=hop.content, extensions=extensions
        )

    async def _exchange(self, request: httpx.Request) -> HttpAnswer:
        """Send through the transport and keep the answer's head; the body is never read."""
        transport = self._transport
        if transport is None:
            transport = httpx.AsyncHTTPTransport(verify=self._ssl_context, trust_env=False, retries=0)
        try:
            response = await transport.handle_async_request(request)
            try:
                return HttpAnswer(
                    response.status_code, response.headers.get("location"), response.headers.get("retry-after")
                )
            finally:
                await response.aclose()
        finally:
            if transport is not self._transport:
                await transport.aclose()

    def _redirected(self, hop: _Hop, answer: HttpAnswer, schedule: Schedule, started: float) -> _Hop:
        """The next hop after a redirect ``answer`` (checked when it is sent, like the first)."""
        assert answer.location is not None
        try:
            target = parse_url(urljoin(hop.target.url, answer.location))
        except ValueError as exc:
            self._log_failure(hop, schedule, started, "invalid_redirect", answer.status)
            raise DeliveryError(
                "invalid_redirect", f"{hop.target.host} redirected to an unusable URL: {exc}",
                retryable=False, http_status=answer.status, details={"host": hop.target.host},
            ) from None
        if hop.target.scheme == "https" and target.scheme == "http":
            self._log_failure(hop, schedule, started, "redirect_refused", answer.status)
            raise DeliveryError(
                "redirect_refused", f"{hop.target.host} redirected from https to http ({target.host})",
                retryable=False, http_status=answer.status, details={"host": hop.target.host},
            )
        method, content, content_type, headers = hop.method, hop.content, hop.content_type, hop.headers
        if (answer.status == 303 and method != "HEAD") or (answer.status in (301, 302) and method == "POST"):
            method, content, content_type = "GET", None, None
            headers = tuple((n, v) for n, v in headers if n.lower() not in ("content-type", "content-language"))
        if target.origin != hop.target.origin:
            headers = tuple((n, v) for n, v in headers if n.lower() in REDIRECT_SAFE_HEADERS)
        return replace(hop, method=method, target=target, headers=headers, content=content, content_type=content_type)

    @staticmethod
    def _log_failure(hop: _Hop, schedule: Schedule, started: float, code: str, status: int | None = None,
                     reason: str | None = None) -> None:
        log.warning(
            "http.request failed: method=%s host=%s status=%s code=%s duration_ms=%.0f schedule=%s%s",
            hop.method, hop.target.host, status if status is not None else "-", code,
            (time.monotonic() - started) * 1000, schedule.id, f" reason={reason}" if reason else "",
        )


def _no_answer(host: str, timeout: float, hop: _Hop) -> str:
    return f"no answer from {host} within {timeout:g} s; {_retried(hop)}"


def _retried(hop: _Hop) -> str:
    """How a request that may have been processed is retried: with the same Idempotency-Key, when
    it carries one (a status webhook carries its event's id instead)."""
    if hop.scheduler_headers:
        return f"retried with the same {IDEMPOTENCY_HEADER} so that the receiver can drop a duplicate"
    return "retried"


def _describe(exc: httpx.ConnectError) -> str:
    """A connect error's kind without its text (which can name the pinned address and port)."""
    causes = _causes(exc)
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "TLS certificate not trusted"
    if any(isinstance(c, ssl.SSLError) for c in causes) or "SSL" in str(exc):
        return "TLS handshake failed"
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in str(exc).lower():
        return "connection refused"
    return type(exc).__name__


def _causes(exc: BaseException, limit: int = 32) -> list[BaseException]:
    """The exceptions behind ``exc`` (causes, contexts, and the members of exception groups):
    httpx wraps httpcore's error, which wraps anyio's "All connection attempts failed", whose cause
    is the OS's error (or a group of them, one per address)."""
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(found) < limit:
        current = pending.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
    return found
