"""A bulk change bounded by ``limit``: ``POST /v1/schedules:cancel``, ``:pause``, ``:resume`` and
``:retry`` change at most that many, answer ``more``, and the same request repeated goes on with
the rest; through the container's API on the in-memory and the SQLite store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from cronjob.domain.message import DeliveryError
from cronjob_adapters.memory.sender import RecordingMessageSender
from cronjob_bootstrap.container import Container
from tests.support.list_api import NOW, client, clock, container, create  # noqa: F401 (fixtures)

AT = "2025-06-22T09:00:00-03:00"
#: Each bulk route, the key of its answer that lists what it changed, and the status that follows.
ROUTES = [("/v1/schedules:pause", "paused", "paused"), ("/v1/schedules:resume", "resumed", "scheduled"),
          ("/v1/schedules:cancel", "cancelled", "cancelled")]


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def statuses(client: httpx.AsyncClient, schedule_ids: list[str]) -> set[str]:
    return {(await client.get(f"/v1/schedules/{i}")).json()["status"] for i in schedule_ids}


async def paused_if_resuming(client: httpx.AsyncClient, path: str, user: str) -> None:
    """Resuming needs paused schedules: pause them all first (no limit: every one at once)."""
    if path.endswith(":resume"):
        assert not (await post(client, "/v1/schedules:pause", {"userId": user}))["more"]


@pytest.mark.parametrize(("path", "key", "after"), ROUTES)
async def test_a_limit_changes_at_most_that_many_and_repeating_the_request_goes_on_with_the_rest(
        client: httpx.AsyncClient, path: str, key: str, after: str) -> None:
    mine = [await create(client, AT, userId="ana") for _ in range(25)]
    theirs = await create(client, AT, userId="bia")
    await paused_if_resuming(client, path, "ana")

    answers = [await post(client, path, {"userId": "ana", "limit": 10}) for _ in range(4)]

    assert [len(a[key]) for a in answers] == [10, 10, 5, 0]
    assert [a["more"] for a in answers] == [True, True, False, False]
    changed = [i for a in answers for i in a[key]]
    assert sorted(changed) == sorted(mine)  # each once, none twice, none left
    assert all(a["refused"] == [] for a in answers)
    assert await statuses(client, mine) == {after}
    assert await statuses(client, [theirs]) == {"scheduled"}


@pytest.mark.parametrize(("path", "key", "after"), ROUTES)
async def test_a_limit_met_by_the_last_match_says_there_is_no_more(
        client: httpx.AsyncClient, path: str, key: str, after: str) -> None:
    mine = [await create(client, AT, userId="ana") for _ in range(20)]
    await paused_if_resuming(client, path, "ana")
    first = await post(client, path, {"userId": "ana", "limit": 10})
    last = await post(client, path, {"userId": "ana", "limit": 10})
    assert (len(first[key]), first["more"]) == (10, True)
    assert (len(last[key]), last["more"]) == (10, False)
    assert await statuses(client, mine) == {after}
    everything = await post(client, path, {"userId": "ana", "limit": None})  # null: no limit, as left out
    assert (everything[key], everything["more"]) == ([], False)


async def test_a_limit_met_in_one_status_says_more_when_another_status_still_matches(
        client: httpx.AsyncClient) -> None:
    paused = [await create(client, AT, userId="ana", labels={"held": "yes"}) for _ in range(2)]
    waiting = [await create(client, AT, userId="ana") for _ in range(3)]
    assert len((await post(client, "/v1/schedules:pause", {"labels": {"held": "yes"}}))["paused"]) == 2

    first = await post(client, "/v1/schedules:cancel", {"userId": "ana", "limit": 2})
    assert sorted(first["cancelled"]) == sorted(paused)  # the paused ones are listed first
    assert first["more"]  # the waiting ones still match
    rest = await post(client, "/v1/schedules:cancel", {"userId": "ana", "limit": 3})
    assert sorted(rest["cancelled"]) == sorted(waiting) and not rest["more"]


async def test_what_is_refused_does_not_count_against_the_limit(
        client: httpx.AsyncClient, container: Container) -> None:  # noqa: F811
    sending = await create(client, "2025-06-21T13:00:00-03:00", userId="ana")  # due now...
    [claimed] = await container.repository().claim_due(now=NOW, owner="r", lease_for=timedelta(seconds=30),
                                                       limit=5)  # ...and being sent
    assert claimed.id == sending
    waiting = [await create(client, AT, userId="ana") for _ in range(3)]

    first = await post(client, "/v1/schedules:pause", {"userId": "ana", "limit": 2})
    assert (len(first["paused"]), first["refused"], first["more"]) == (2, [], True)
    second = await post(client, "/v1/schedules:pause", {"userId": "ana", "limit": 2})
    assert len(second["paused"]) == 1 and [r["id"] for r in second["refused"]] == [sending]
    assert not second["more"]  # what runs is refused, every time: repeating it ends
    assert sorted(first["paused"] + second["paused"]) == sorted(waiting)
    assert await statuses(client, [sending]) == {"running"}


async def test_a_redrive_is_bounded_by_its_limit_too(client: httpx.AsyncClient, container: Container,  # noqa: F811
                                                     clock: Any) -> None:  # noqa: F811
    dead = [await create(client, "2025-06-21T13:00:00-03:00", userId="ana") for _ in range(3)]
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(*[DeliveryError("190", "Session has expired", retryable=False)] * 3)
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():
        pass
    await dispatcher.drain(5)
    assert await statuses(client, dead) == {"dead"}

    first = await post(client, "/v1/schedules:retry", {"status": "dead", "limit": 2})
    second = await post(client, "/v1/schedules:retry", {"status": "dead", "limit": 2})
    assert (len(first["retried"]), first["more"]) == (2, True)
    assert (len(second["retried"]), second["more"]) == (1, False)
    assert sorted(first["retried"] + second["retried"]) == sorted(dead)
    assert await statuses(client, dead) == {"scheduled"}


async def test_a_redrive_repeated_with_each_answer_s_cursor_goes_on_with_the_rest(
        client: httpx.AsyncClient, container: Container, clock: Any) -> None:  # noqa: F811
    """The token is still expired: what a limited redrive retried fails again at once. The same
    request repeated lists newest first again, so it retries those again and never gets to the
    rest; repeated with the answer's ``next_cursor``, it goes on after them."""
    dead = [await create(client, "2025-06-21T13:00:00-03:00", userId="ana") for _ in range(5)]
    sender = container.sender()
    assert isinstance(sender, RecordingMessageSender)
    sender.fail_with(*[DeliveryError("190", "Session has expired", retryable=False)] * 20)
    dispatcher = container.dispatcher()

    async def run_what_is_due() -> None:
        clock.advance(1)
        while await dispatcher.dispatch_due():
            pass
        await dispatcher.drain(5)

    await run_what_is_due()
    assert await statuses(client, dead) == {"dead"}

    first = await post(client, "/v1/schedules:retry", {"status": "dead", "limit": 2})
    assert len(first["retried"]) == 2 and first["more"] and first["next_cursor"]
    await run_what_is_due()  # they fail again
    same = await post(client, "/v1/schedules:retry", {"status": "dead", "limit": 2})
    assert sorted(same["retried"]) == sorted(first["retried"])  # the same two again: never the rest
    await run_what_is_due()

    answers = [first]
    while answers[-1]["more"]:
        answers.append(await post(client, "/v1/schedules:retry",
                                  {"status": "dead", "limit": 2, "cursor": answers[-1]["next_cursor"]}))
        await run_what_is_due()
    assert [(len(a["retried"]), a["more"], a["next_cursor"] is None) for a in answers] == [
        (2, True, False), (2, True, False), (1, False, True)]
    assert sorted(i for a in answers for i in a["retried"]) == sorted(dead)  # each once


@pytest.mark.parametrize("cursor", ["nope", "", "eyJvIjoiZHVlIn0", "x" * 1025])
async def test_a_redrive_cursor_that_is_not_a_next_cursor_is_a_422_naming_it(
        client: httpx.AsyncClient, cursor: str) -> None:
    answer = await client.post("/v1/schedules:retry", json={"status": "dead", "cursor": cursor})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["cursor"]


async def test_a_redrive_refuses_a_cursor_of_a_list_in_due_time_order(client: httpx.AsyncClient) -> None:
    for _ in range(2):
        await create(client, AT, userId="ana")
    page = (await client.get("/v1/schedules", params={"limit": 1, "due_after": "2025-06-21T00:00:00Z"})).json()
    answer = await client.post("/v1/schedules:retry", json={"status": "dead", "cursor": page["next_cursor"]})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["cursor"]


@pytest.mark.parametrize("path", ["/v1/schedules:cancel", "/v1/schedules:pause", "/v1/schedules:resume",
                                  "/v1/schedules:retry"])
@pytest.mark.parametrize("limit", [0, -1, 10_001, "10", 1.5, 10.0, True, [5], {}])
async def test_a_limit_that_is_not_one_is_a_422_naming_it_and_changes_nothing(
        client: httpx.AsyncClient, path: str, limit: Any) -> None:
    schedule = await create(client, AT, userId="ana")
    body = {"userId": "ana"} if path != "/v1/schedules:retry" else {"status": "dead"}
    refused = await client.post(path, json={**body, "limit": limit})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in refused.json()["errors"]] == ["limit"]
    assert await statuses(client, [schedule]) == {"scheduled"}


async def test_the_openapi_document_describes_the_limit_and_more(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for request in ("SelectRequest", "BulkRetryRequest"):  # :cancel, :pause and :resume take SelectRequest
        limit = schemas[request]["properties"]["limit"]
        assert limit["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 10_000}, request
        assert "repeated until `more` is false" in limit["description"]
    for view in ("BulkCancellationView", "BulkPauseView", "BulkResumeView", "BulkRetryView"):
        assert schemas[view]["properties"]["more"]["type"] == "boolean"
        assert "more" in schemas[view]["required"]
        assert "repeat the same request" in schemas[view]["properties"]["more"]["description"]
    for path in ("/v1/schedules:cancel", "/v1/schedules:pause", "/v1/schedules:resume", "/v1/schedules:retry"):
        assert "`more`" in spec["paths"][path]["post"]["description"], path
