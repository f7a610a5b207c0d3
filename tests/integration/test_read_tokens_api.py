"""Read-only API tokens (``CRONJOB_API_READ_TOKENS``), through the real app over HTTP on the
in-memory and the SQLite store: every route behind the token that changes something (each
operation of ``/openapi.json`` but GET, read from the document so that a new route is covered)
answers a read token 403, naming the variable that gives write access, documents it, and changes
nothing; every GET behind the token admits it, ``/metrics`` of the scheduler's own app too; a full
token still does everything; a wrong token is still a 401; every token of both lists is compared
in constant time."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from cronjob.domain.message import DeliveryError
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.app import api_client, set_up
from tests.support.builders import seed_request
from tests.support.clock import FixedClock

NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)
FULL = "full-token-3c9d1e7a55"
OTHER_FULL = "full-token-rotated-8b02"
READER = "reader-token-0f4e6b2d91"
OTHER_READER = "reader-token-rotated-77aa"
TOKENS = {"api_tokens": f"{FULL}, {OTHER_FULL}", "api_read_tokens": f"{READER},{OTHER_READER}"}
F = {"Authorization": f"Bearer {FULL}"}
R = {"Authorization": f"Bearer {READER}"}
TASK = {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi"}
EXPIRED = DeliveryError("190", "Error validating access token", retryable=False)
READ_METHODS = {"get", "head"}
OPERATIONS = {"get", "put", "post", "patch", "delete", "options", "head", "trace"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(params=["memory", "sqlite"])
async def container(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> AsyncIterator[Container]:
    async with set_up(clock, request.param, tmp_path, **TOKENS) as built:
        yield built


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(container) as http:
        yield http


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def secured(document: dict[str, Any], read: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """``(method, path, operation)`` of every operation of ``document`` behind the token that
    reads (GET, HEAD) or, not ``read``, any other."""
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items()
            if method in OPERATIONS and operation.get("security") and (method in READ_METHODS) == read]


class Scene:
    """Schedules of one user for every write route to act on: one that waits, one paused and one
    dead (``by_status``), made with the full token."""

    def __init__(self, user: str, by_status: dict[str, str]) -> None:
        self.user = user
        self.by_status = by_status

    def request(self, method: str, path: str) -> tuple[str, dict[str, Any] | None]:
        """The address and body of a request to the write route ``method path`` that a full token
        makes with success on this scene."""
        status = {"/resume": "paused", "/retry": "dead"}.get(path[path.rfind("/"):], "scheduled")
        address = path.replace("{schedule_id}", self.by_status[status])
        later = (NOW + timedelta(days=2)).isoformat()
        bodies: dict[str, dict[str, Any]] = {
            "POST /schedule-message": seed_request(NOW + timedelta(days=3)),
            "POST /v1/schedules": {"task": TASK, "schedule": f"once @ {later}", "userId": self.user},
            "PATCH /v1/schedules/{schedule_id}": {"labels": {"moved": "yes"}},
            "POST /v1/schedules:cancel": {"userId": self.user},
            "POST /v1/schedules:pause": {"userId": self.user},
            "POST /v1/schedules:resume": {"userId": self.user},
            "POST /v1/schedules:retry": {"status": "dead", "userId": self.user},
            "POST /v1/schedules:batch": {"schedules": [{"task": TASK, "schedule": "every 1 hours",
                                                        "userId": self.user}]},
        }
        return address, bodies.get(f"{method.upper()} {path}")


async def scene(client: httpx.AsyncClient, container: Container, clock: FixedClock, user: str) -> Scene:
    def message(at: datetime) -> dict[str, Any]:
        return {**seed_request(at), "userId": user}

    dying = ok(await client.post("/schedule-message", json=message(clock.now() + timedelta(minutes=1)),
                                 headers=F), 201)["id"]
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(*[EXPIRED] * 10)  # (and what a run now of an earlier scene made due)
    clock.set(clock.now() + timedelta(minutes=1))
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():
        pass
    await dispatcher.drain(5)
    waiting = ok(await client.post("/schedule-message", json=message(clock.now() + timedelta(days=1)),
                                   headers=F), 201)["id"]
    paused = ok(await client.post("/schedule-message", json=message(clock.now() + timedelta(days=1, hours=1)),
                                  headers=F), 201)["id"]
    ok(await client.post(f"/v1/schedules/{paused}/pause", headers=F))
    assert ok(await client.get(f"/v1/schedules/{dying}", headers=F))["status"] == "dead"
    return Scene(user, {"scheduled": waiting, "paused": paused, "dead": dying})


async def everything(client: httpx.AsyncClient, events: bool = True) -> list[Any]:
    """Every schedule as the API shows it (a change moves its ``updated_at``), with its events
    unless not ``events``."""
    listed = ok(await client.get("/v1/schedules", params={"limit": 500}, headers=F))
    assert not listed["has_more"]
    if not events:
        return listed["items"]  # type: ignore[no-any-return]
    return [(item, ok(await client.get(f"/v1/schedules/{item['id']}/events", headers=F)))
            for item in listed["items"]]


async def test_every_route_that_changes_something_refuses_a_read_token_and_changes_nothing(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    document = ok(await client.get("/openapi.json"))
    writes = secured(document, read=False)
    assert len(writes) >= 13  # the document lists them: not an empty loop
    problem = {"$ref": "#/components/schemas/Problem", "components": document["components"]}
    shown = await scene(client, container, clock, "reader-scene")
    before = await everything(client)
    for method, path, operation in writes:
        address, body = shown.request(method, path)
        assert (body is not None) == ("requestBody" in operation), (
            f"{method.upper()} {path}: give it a body that a full token makes with success here")
        for token in (READER, OTHER_READER):
            answer = await client.request(method, address, json=body, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": f"{method}{path}"})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert "www-authenticate" not in answer.headers  # the token is right: nothing to change there
            assert answer.json()["detail"] == ("this token is read-only (CRONJOB_API_READ_TOKENS): it may only "
                                               "read (GET); a token from CRONJOB_API_TOKENS may make changes")
            jsonschema.validate(answer.json(), problem)
            assert "Forbidden" == answer.json()["title"]
        documented = operation["responses"]["403"]
        assert "CRONJOB_API_READ_TOKENS" in documented["description"], (method, path)
        assert documented["content"] == {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/Problem"}}}, (method, path)
    assert await everything(client) == before


async def test_a_full_token_still_makes_every_change(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    """The same requests as the read token's, each on a scene of its own: each changes something
    (so the read token's 403s were the token's, not a request that could not have worked)."""
    document = ok(await client.get("/openapi.json"))
    for index, (method, path, _) in enumerate(secured(document, read=False)):
        token = (FULL, OTHER_FULL)[index % 2]
        shown = await scene(client, container, clock, f"writer-{index}")
        before = await everything(client, events=False)
        address, body = shown.request(method, path)
        answer = await client.request(method, address, json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code in (200, 201), (method, path, answer.text)
        assert await everything(client, events=False) != before, (method, path)


async def test_every_route_that_reads_admits_a_read_token(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    document = ok(await client.get("/openapi.json"))
    reads = secured(document, read=True)
    assert {path for _, path, _ in reads} >= {"/metrics", "/v1/schedules", "/v1/stats", "/v1/rules/preview"}
    shown = await scene(client, container, clock, "reader-reads")
    values = {"schedule_id": shown.by_status["scheduled"], "task_type": "whatsapp.text",
              "name": "cronjob.purge_runs", "schedule": "every 1 hours"}
    before = await everything(client)
    for method, path, operation in reads:
        address = path
        query = {}
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                address = address.replace(f"{{{parameter['name']}}}", values[parameter["name"]])
            elif parameter.get("required"):
                query[parameter["name"]] = values[parameter["name"]]
        for token in (READER, OTHER_READER):
            for verb in ("GET", "HEAD"):
                answer = await client.request(verb, address, params=query,
                                              headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == 200, (verb, path, answer.text)
        if path not in ("/metrics", "/v1/stats"):  # (a scrape counts itself; stats say when read)
            read = await client.get(address, params=query, headers=R)
            assert read.json() == (await client.get(address, params=query, headers=F)).json(), path
    assert await everything(client) == before


async def test_a_wrong_or_missing_token_is_still_a_401(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer reader-token"}, {"Authorization": f"Bearer {READER}x"},
                    {"Authorization": f"Basic {READER}"}):
        for method, path in (("GET", "/v1/schedules"), ("DELETE", "/v1/schedules/x"), ("GET", "/metrics"),
                             ("POST", "/v1/schedules:cancel")):
            answer = await client.request(method, path, headers=headers, json={"userId": "u"})
            assert answer.status_code == 401, (headers, method, path, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_the_scheduler_s_metrics_admit_a_read_token(container: Container) -> None:
    """``cronjob scheduler`` serves only its probes and ``/metrics``, with the tokens the API takes."""
    transport = httpx.ASGITransport(app=container.probe_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
        for headers, status in ((R, 200), (F, 200), ({"Authorization": "Bearer nope"}, 401), ({}, 401)):
            assert (await http.get("/metrics", headers=headers)).status_code == status, headers


async def test_every_token_of_both_lists_is_compared_in_constant_time(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every configured token, full or read-only, is compared with ``hmac.compare_digest``, whichever
    matched (none stops the comparisons early): the time taken does not tell which list a token
    is in, nor which token was close."""
    compared: list[bytes] = []
    original: Callable[..., bool] = hmac.compare_digest

    def counted(given: Any, expected: Any) -> bool:
        compared.append(expected)
        return original(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", counted)
    configured = sorted(t.encode() for t in (FULL, OTHER_FULL, READER, OTHER_READER))
    for token in (FULL, OTHER_FULL, READER, OTHER_READER, "wrong"):
        compared.clear()
        await client.get("/v1/task-types", headers={"Authorization": f"Bearer {token}"})
        assert sorted(compared) == configured, token
