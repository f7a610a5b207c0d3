"""Task types through the API and the engine: schemas, http.request, email, python routines."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from cronjob.domain.schedule import ScheduleStatus
from cronjob_bootstrap.container import RUNNABLE_TASK_TYPES, Container
from cronjob_bootstrap.tasks import HTTP_RETRY
from tests.support.app import AUTH
from tests.support.app import make_container as app_container
from tests.support.clock import FixedClock
from tests.support.processes import free_port

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records what it gets."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.bodies.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver()
    yield peer
    peer.server.shutdown()
    peer.server.server_close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def make_container(clock: FixedClock, **settings: Any) -> Container:
    """The shared test container (``tests.support.app``), loopback HTTP targets allowed."""
    return app_container(clock, http_allow_hosts="127.0.0.1", **settings)


@pytest.fixture
async def api(clock: FixedClock, mailbox: tuple[Mailbox, int]) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    container = make_container(clock, smtp_host="127.0.0.1", smtp_port=mailbox[1], smtp_starttls=False,
                               smtp_from="cronjob@example.com")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
        yield http, container


def names(reported: str, field: str) -> bool:
    """Whether the dotted path ``reported`` contains the dotted path ``field`` as whole segments."""
    have, want = reported.split("."), field.split(".")
    return any(have[i:i + len(want)] == want for i in range(len(have)))


async def run_due(container: Container) -> None:
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():
        await dispatcher.drain(10)


async def test_task_types_are_published_with_their_schemas(api: tuple[httpx.AsyncClient, Container]) -> None:
    http, _ = api
    listed = (await http.get("/v1/task-types", headers=AUTH)).json()
    assert [t["type"] for t in listed] == ["email", "http.request", "python", "whatsapp.template", "whatsapp.text"]
    assert all(t["version"] == 1 and t["schema_url"] == f"/v1/task-types/{t['type']}" for t in listed)
    detail = (await http.get("/v1/task-types/http.request", headers=AUTH)).json()
    assert {"method", "url", "headers", "body", "timeout_seconds"} <= set(detail["schema"]["properties"])
    assert (await http.get("/v1/task-types/fax", headers=AUTH)).status_code == 404
    spec = (await http.get("/openapi.json")).json()
    task = spec["components"]["schemas"]["CreateScheduleRequest"]["properties"]["task"]
    assert set(task["discriminator"]["mapping"]) == {"email", "http.request", "python", "whatsapp.template",
                                                     "whatsapp.text"}


def test_the_task_types_settings_may_name_are_those_the_scheduler_runs(clock: FixedClock) -> None:
    # CRONJOB_TYPE_LIMITS is checked against them at start-up, before the registry is built.
    assert sorted(make_container(clock).handlers()) == list(RUNNABLE_TASK_TYPES)


async def test_an_http_request_runs_with_its_idempotency_key(api: tuple[httpx.AsyncClient, Container],
                                                            receiver: Receiver, clock: FixedClock) -> None:
    http, container = api
    created = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "POST", "url": f"{receiver.url}/sync", "body": {"n": 1}},
        "schedule": "every 1 hours"})
    assert created.status_code == 201, created.text
    clock.advance(timedelta(hours=1))
    await run_due(container)
    [(path, headers, body)] = receiver.bodies
    assert path == "/sync" and json.loads(body) == {"n": 1}
    assert headers["idempotency-key"].startswith(created.json()["id"] + ":")
    shown = (await http.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)).json()
    assert shown["status"] == "scheduled" and shown["attempts"][0]["outcome"] == "succeeded"


@pytest.mark.parametrize(("task", "field"), [
    ({"type": "http.request", "method": "GET", "url": "ftp://x/"}, "url"),
    ({"type": "http.request", "method": "TRACE", "url": "http://x/"}, "method"),
    # Spaces or tabs at either end of a value: the HTTP client would refuse every run.
    ({"type": "http.request", "url": "http://x/", "headers": {"X-A": " v"}}, "headers"),
    ({"type": "http.request", "url": "http://x/", "headers": {"X-A": "v\t"}}, "headers"),
    ({"type": "email", "to": ["not-an-address"], "subject": "s", "text": "t"}, "to"),
    ({"type": "email", "to": ["a@example.com"], "subject": "a\nBcc: x@y.z", "text": "t"}, "subject"),
    ({"type": "python", "routine": "nope"}, "routine"),
    ({"type": "python", "routine": "cronjob.purge_runs", "args": {"older_than_days": 0}}, "args.older_than_days"),
    ({"type": "python", "routine": "cronjob.daily_report", "args": {"email_to": ["not-an-address"]}},
     "args.email_to"),
    ({"type": "python", "routine": "cronjob.daily_report", "args": {"webhook_url": "https://user:pw@hooks.example/"}},
     "args.webhook_url"),
])
async def test_payloads_are_checked_per_type(api: tuple[httpx.AsyncClient, Container], task: dict[str, Any],
                                             field: str) -> None:
    http, _ = api
    response = await http.post("/v1/schedules", headers=AUTH, json={"task": task, "schedule": "daily at 09:00"})
    assert response.status_code == 422, response.text
    assert any(names(e["field"], field) for e in response.json()["errors"]), response.json()


@pytest.mark.parametrize("url", [
    "http://10.0.0.5/sync?token=SECRET123",
    "http://[::1]:8080/admin",
    "http://169.254.169.254/latest/meta-data/",
    "http://0x0a.1/",  # 10.0.0.1 written in hex
    "http://metadata.google.internal/computeMetadata/v1/",
])
async def test_an_http_request_the_guard_would_always_refuse_is_a_422_when_scheduled(
        clock: FixedClock, url: str) -> None:
    """Its every run would end ``destination_refused``: refused when given, as a callback_url is."""
    strict = app_container(clock, http_allow_hosts="")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=strict.app()), base_url="http://t") as http:
        response = await http.post("/v1/schedules", headers=AUTH, json={
            "task": {"type": "http.request", "url": url}, "schedule": "daily at 09:00"})
        listed = (await http.get("/v1/schedules", headers=AUTH)).json()["items"]
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert names(error["field"], "url") and "would be refused" in error["message"], error
    assert "CRONJOB_HTTP_ALLOW_HOSTS" in error["message"] and "SECRET123" not in response.text
    assert listed == []


async def test_a_host_name_or_an_allowed_address_is_checked_when_the_request_is_made(clock: FixedClock) -> None:
    allowing = app_container(clock, http_allow_hosts="10.0.0.0/8")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=allowing.app()), base_url="http://t") as http:
        for url, status in [("http://10.0.0.5/sync", 201), ("http://localhost:9/sync", 201),
                            ("http://169.254.169.254/", 422)]:  # a metadata address: on the list by itself only
            response = await http.post("/v1/schedules", headers=AUTH, json={
                "task": {"type": "http.request", "url": url}, "schedule": "daily at 09:00"})
            assert response.status_code == status, (url, response.text)


async def test_a_leading_plus_is_dropped_from_whatsapp_numbers_on_both_routes(
        api: tuple[httpx.AsyncClient, Container]) -> None:
    http, _ = api
    seed = await http.post("/schedule-message", headers=AUTH, json={
        "to": "+5511999999999", "body": "Oi", "type": "text", "send_at": (NOW + timedelta(hours=1)).isoformat()})
    task = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "whatsapp.text", "to": "+5511988887777", "body": "Oi"}, "schedule": "daily at 09:00"})
    assert seed.status_code == task.status_code == 201, (seed.text, task.text)
    assert seed.json()["to"] == "5511999999999" and task.json()["to"] == "5511988887777"


async def test_a_retry_override_may_leave_out_any_field_and_is_shown_with_the_schedule(
        api: tuple[httpx.AsyncClient, Container]) -> None:
    http, _ = api
    created = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "GET", "url": "https://api.example.com/sync"},
        "schedule": "daily at 09:00", "retry": {"initial_delay_seconds": 5}})
    assert created.status_code == 201, created.text
    assert created.json()["retry"] == {
        "max_attempts": HTTP_RETRY.max_attempts, "initial_delay_seconds": 5.0,
        "max_delay_seconds": HTTP_RETRY.max_delay.total_seconds(),
        "max_age_seconds": HTTP_RETRY.max_age.total_seconds()}
    shown = await http.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)
    assert shown.json()["retry"] == created.json()["retry"]
    plain = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "GET", "url": "https://api.example.com/sync"},
        "schedule": "daily at 09:00"})
    assert plain.json()["retry"] is None  # the type's default, as GET /v1/task-types/http.request shows
    default = (await http.get("/v1/task-types/http.request", headers=AUTH)).json()["default_retry"]
    assert default == {"max_attempts": HTTP_RETRY.max_attempts,
                       "initial_delay_seconds": HTTP_RETRY.initial_delay.total_seconds(),
                       "max_delay_seconds": HTTP_RETRY.max_delay.total_seconds(),
                       "max_age_seconds": HTTP_RETRY.max_age.total_seconds()}


async def test_a_partial_retry_override_keeps_its_type_s_defaults_for_the_rest(
        api: tuple[httpx.AsyncClient, Container]) -> None:
    http, container = api
    created = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "GET", "url": "https://api.example.com/sync"},
        "schedule": "daily at 09:00", "retry": {"max_attempts": 9, "max_delay_seconds": 60}})
    assert created.status_code == 201, created.text
    stored = await container.repository().get(created.json()["id"])
    assert stored is not None and stored.retry == replace(HTTP_RETRY, max_attempts=9, max_delay=timedelta(seconds=60))


SYNC = {"type": "http.request", "method": "GET", "url": "https://api.example.com/sync"}


@pytest.mark.parametrize(("retry", "field", "message"), [
    # A first delay past the type's maximum age: most of its retries would be given up at once.
    ({"initial_delay_seconds": 86_400, "max_delay_seconds": 86_400}, "retry.initial_delay_seconds",
     "initial_delay_seconds (86400 s) is longer than the http.request retries' maximum age (43200 s, "
     "max_age_seconds): no retry starts later than that after the first attempt"),
    # What the request gave is named, with the type's default it clashes with.
    ({"initial_delay_seconds": 3600}, "retry.initial_delay_seconds",
     "initial_delay_seconds (3600 s) is above the http.request default max_delay_seconds (900 s): "
     "give a max_delay_seconds at least as long"),
    ({"max_delay_seconds": 2}, "retry.max_delay_seconds",
     "max_delay_seconds (2 s) is below the http.request default initial_delay_seconds (5 s)"),
    ({"initial_delay_seconds": 60, "max_delay_seconds": 30}, "retry.max_delay_seconds",
     "max_delay_seconds (30 s) is below initial_delay_seconds (60 s)"),
])
async def test_a_retry_override_that_cannot_work_is_refused_naming_the_field_it_gave(
        api: tuple[httpx.AsyncClient, Container], retry: dict[str, Any], field: str, message: str) -> None:
    http, _ = api
    for path, body in (("/v1/schedules", {"task": SYNC, "schedule": "daily at 09:00", "retry": retry}),
                       ("/v1/schedules:batch", {"schedules": [{"task": SYNC, "schedule": "daily at 09:00",
                                                               "retry": retry}]})):
        response = await http.post(path, headers=AUTH, json=body)
        if path.endswith(":batch"):
            assert response.status_code == 200, response.text
            [item] = response.json()["results"]
            assert item["status"] == 422 and item["errors"] == [{"field": f"schedules.0.{field}", "message": message}]
        else:
            assert response.status_code == 422, response.text
            assert response.json()["errors"] == [{"field": field, "message": message}]
    assert (await http.get("/v1/schedules", headers=AUTH)).json()["items"] == []


async def test_a_first_delay_up_to_the_maximum_age_is_taken(api: tuple[httpx.AsyncClient, Container]) -> None:
    http, container = api
    age = HTTP_RETRY.max_age.total_seconds()
    created = await http.post("/v1/schedules", headers=AUTH, json={
        "task": SYNC, "schedule": "daily at 09:00",
        "retry": {"initial_delay_seconds": age, "max_delay_seconds": 7 * 86_400}})
    assert created.status_code == 201, created.text
    stored = await container.repository().get(created.json()["id"])
    assert stored is not None and stored.retry == replace(
        HTTP_RETRY, initial_delay=HTTP_RETRY.max_age, max_delay=timedelta(days=7))


async def test_an_email_is_sent_over_smtp(api: tuple[httpx.AsyncClient, Container],
                                          mailbox: tuple[Mailbox, int], clock: FixedClock) -> None:
    http, container = api
    created = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "email", "to": ["ops@example.com"], "subject": "Olá {{1}}", "text": "Relatório de {{1}}",
                 "params": ["março"]},
        "schedule": "once @ 2030-03-01 09:30"})
    assert created.status_code == 201, created.text
    clock.advance(timedelta(minutes=31))
    await run_due(container)
    [message] = mailbox[0].messages
    assert message["Subject"] == "Olá março" and message["To"] == "ops@example.com"
    assert (await http.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)).json()["status"] == "succeeded"


async def test_secret_looking_headers_and_query_parameters_are_masked_when_shown(api: tuple[httpx.AsyncClient, Container]) -> None:
    http, container = api
    secret = {"Authorization": "Bearer a", "Authentication": "b", "X-Auth": "c", "X-Api-Key": "d",
              "Private-Token": "e", "X-Credentials": "f", "X-Api-Pass": "g", "X-JWT": "h", "X-Bearer": "i",
              "Cookie": "j", "X-Session-Id": "k", "X-Hub-Signature-256": "l", "X-Client-Secret": "m"}
    plain = {"Accept": "application/json", "User-Agent": "cronjob-test", "X-Request-Source": "nightly",
             "Content-Language": "pt-BR"}
    created = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "url": "https://api.example.com/sync?api_key=K1&page=2",
                 "headers": {**secret, **plain}},
        "callback_url": "https://hooks.example/cb?access_token=T1&source=cron&sig=S1", "schedule": "daily at 09:00"})
    assert created.status_code == 201, created.text
    for shown in (created.json(), (await http.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)).json(),
                  (await http.get("/v1/schedules", headers=AUTH)).json()["items"][0]):
        assert shown["payload"]["headers"] == {**{name: "***" for name in secret}, **plain}
        # Credentials in a query are masked as in a header; the rest of the address stays.
        assert shown["payload"]["url"] == "https://api.example.com/sync?api_key=***&page=2"
        assert shown["callback_url"] == "https://hooks.example/cb?access_token=***&source=cron&sig=***"
    stored = await container.repository().get(created.json()["id"])
    assert stored is not None and stored.payload["headers"]["X-Auth"] == "c"  # kept and sent as given
    assert stored.payload["url"].endswith("api_key=K1&page=2") and stored.callback_url.endswith("T1&source=cron&sig=S1")


async def test_credentials_in_a_request_body_or_a_routine_s_args_are_masked_when_shown(
        api: tuple[httpx.AsyncClient, Container]) -> None:
    """A token endpoint's body (OAuth's client_secret) and a routine's password are credentials as
    much as a header is; keys that merely contain such a word (keywords, passengers) are data."""
    http, container = api
    body = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "S1",
            "nested": [{"apiKey": "S2", "keywords": ["a"], "passengers": 2, "design": "x", "token_count": 3}],
            "db.password": "S3", "refresh-token": "S4", "key": "S5", "monkey": "banana", "pin": None}
    json_sync = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "POST", "url": "https://auth.example.com/oauth/token", "body": body},
        "schedule": "daily at 09:00"})
    form_sync = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "POST", "url": "https://auth.example.com/oauth/token",
                 "headers": {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
                 "body": "grant_type=password&username=ana&password=S6&client_secret=S7"},
        "schedule": "daily at 09:00"})
    text_sync = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "POST", "url": "https://api.example.com/notes",
                 "body": "password=this is a note, not a form"},
        "schedule": "daily at 09:00"})
    for created in (json_sync, form_sync, text_sync):
        assert created.status_code == 201, created.text
    masked = {**body, "client_secret": "***", "db.password": "***", "refresh-token": "***", "key": "***",
              "nested": [{**body["nested"][0], "apiKey": "***"}]}
    for shown in (json_sync.json(), (await http.get(f"/v1/schedules/{json_sync.json()['id']}", headers=AUTH)).json()):
        assert shown["payload"]["body"] == masked
    assert form_sync.json()["payload"]["body"] == "grant_type=password&username=ana&password=***&client_secret=***"
    assert text_sync.json()["payload"]["body"] == "password=this is a note, not a form"  # no form: as it is
    stored = await container.repository().get(json_sync.json()["id"])
    assert stored is not None and stored.payload["body"] == body  # kept and sent as given


async def test_urls_in_a_routine_s_args_or_a_request_body_are_masked_as_the_request_s_url_is(
        api: tuple[httpx.AsyncClient, Container]) -> None:
    """A report's webhook_url holds its receiver's token in the query as an http.request url
    does, and the http.request the report hands it to shows it masked: so does the report's own
    view. So does a link in a body (a pre-signed URL), and a URL's password."""
    http, container = api
    report = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "python", "routine": "cronjob.daily_report",
                 "args": {"webhook_url": "https://hooks.example/report?token=T1&team=ops"}},
        "schedule": "daily at 08:00"})
    body = {"links": ["https://files.example/a.pdf?X-Amz-Signature=S2&X-Amz-Expires=60",
                      "https://ana:S3@dav.example/inbox", "https://example.com/plain?page=2"],
            "note": "see https://x.example/?token=not-a-url-alone"}
    upload = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "http.request", "method": "POST", "url": "https://api.example.com/mail", "body": body},
        "schedule": "daily at 09:00"})
    for created in (report, upload):
        assert created.status_code == 201, created.text
    listed = {item["id"]: item for item in (await http.get("/v1/schedules", headers=AUTH)).json()["items"]}
    for shown in (report.json(), (await http.get(f"/v1/schedules/{report.json()['id']}", headers=AUTH)).json(),
                  listed[report.json()["id"]]):
        assert shown["payload"]["args"]["webhook_url"] == "https://hooks.example/report?token=***&team=ops"
    for shown in (upload.json(), listed[upload.json()["id"]]):
        assert shown["payload"]["body"] == {
            "links": ["https://files.example/a.pdf?X-Amz-Signature=***&X-Amz-Expires=60",
                      "https://ana:***@dav.example/inbox", "https://example.com/plain?page=2"],
            "note": "see https://x.example/?token=not-a-url-alone"}  # a text that holds a URL is left as it is
    stored = await container.repository().get(report.json()["id"])
    assert stored is not None and stored.payload["args"]["webhook_url"].endswith("token=T1&team=ops")  # sent as given


async def test_email_is_refused_at_scheduling_when_not_configured(clock: FixedClock) -> None:
    container = make_container(clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=container.app()), base_url="http://t") as http:
        response = await http.post("/v1/schedules", headers=AUTH, json={
            "task": {"type": "email", "to": ["a@example.com"], "subject": "s", "text": "t"},
            "schedule": "daily at 09:00"})
        assert response.status_code == 422 and "not configured" in response.json()["detail"]
        assert [e["field"] for e in response.json()["errors"]] == ["task.type"]
        # So is a report by e-mail: every run would fail to hand it on.
        report = await http.post("/v1/schedules", headers=AUTH, json={
            "task": {"type": "python", "routine": "cronjob.daily_report",
                     "args": {"email_to": ["ops@example.com"], "webhook_url": "https://hooks.example/r"}},
            "schedule": "daily at 08:00"})
        assert report.status_code == 422, report.text
        assert [e["field"] for e in report.json()["errors"]] == ["task.args.email_to"]
        assert "not configured" in report.json()["detail"]
        webhook_only = await http.post("/v1/schedules", headers=AUTH, json={
            "task": {"type": "python", "routine": "cronjob.daily_report",
                     "args": {"webhook_url": "https://hooks.example/r"}},
            "schedule": "daily at 08:00"})
        assert webhook_only.status_code == 201, webhook_only.text


async def test_the_daily_report_routine_sends_counts_by_email_and_webhook(
        api: tuple[httpx.AsyncClient, Container], mailbox: tuple[Mailbox, int], receiver: Receiver,
        clock: FixedClock) -> None:
    http, container = api
    created = await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "python", "routine": "cronjob.daily_report",
                 "args": {"email_to": ["boss@example.com"], "webhook_url": f"{receiver.url}/report"}},
        "schedule": "daily at 08:00", "timezone": "UTC"})
    assert created.status_code == 201, created.text
    clock.set(datetime(2030, 3, 2, 8, 0, 1, tzinfo=UTC))
    await run_due(container)
    shown = (await http.get(f"/v1/schedules/{created.json()['id']}", headers=AUTH)).json()
    assert shown["attempts"][0]["outcome"] == "succeeded" and shown["next_run_at"] == "2030-03-03T08:00:00.000Z"
    [message] = mailbox[0].messages
    assert message["Subject"] == "cronjob report 2030-03-02"
    assert "python" in message.get_content()
    [(path, _, body)] = receiver.bodies
    report = json.loads(body)
    assert path == "/report" and {"status": "running", "task_type": "python", "count": 1} in report["counts"]  # itself


async def test_the_purge_routine_deletes_old_finished_runs(api: tuple[httpx.AsyncClient, Container],
                                                           clock: FixedClock) -> None:
    http, container = api
    old = (await http.post("/schedule-message", headers=AUTH, json={
        "to": "5511999999999", "body": "Oi", "type": "text", "send_at": NOW.isoformat()})).json()
    await run_due(container)
    assert (await http.get(f"/v1/schedules/{old['id']}", headers=AUTH)).json()["status"] == "succeeded"
    clock.advance(timedelta(days=31))
    purge = (await http.post("/v1/schedules", headers=AUTH, json={
        "task": {"type": "python", "routine": "cronjob.purge_runs", "args": {"older_than_days": 30}},
        "schedule": f"once @ {clock.now().isoformat()}"})).json()
    await run_due(container)
    assert (await http.get(f"/v1/schedules/{old['id']}", headers=AUTH)).status_code == 404
    done = (await http.get(f"/v1/schedules/{purge['id']}", headers=AUTH)).json()
    assert done["status"] == "succeeded" and done["result"]["deleted"] == "1"
    counts = await container.repository().count_by_status()
    assert counts.get(ScheduleStatus.SUCCEEDED) == 1  # the purge itself
