"""``GET /v1/routines`` and ``GET /v1/routines/{name}`` through the container (store=memory, a
clock the test drives), in memory via httpx's ASGI transport. Most tests give the container a
routine registry of their own, so that what is listed is known to come from the one the
``python`` task type runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field

from cronjob_adapters.tasks.python import RoutineContext, RoutineRegistry, routine
from cronjob_adapters.tasks.registry import TaskRegistry
from cronjob_bootstrap.container import Container
from tests.support.app import AUTH, api_client, make_container
from tests.support.clock import FixedClock

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


class WeeklyArgs(BaseModel):
    """Who gets the weekly report."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"team": ""},  # refused by the model: not offered as the example
        {"team": "ops", "weeks": 2},
    ]})

    team: Annotated[str, Field(min_length=1, description="The team.")]
    weeks: Annotated[int, Field(default=1, ge=1, le=52)] = 1


class CleanupArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_days: int = 7
    dry_run: bool = False


class NeedsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str


#: What each routine of :func:`own_routines` was called with.
CALLS: list[tuple[str, BaseModel]] = []


def own_routines() -> RoutineRegistry:
    """A registry of this test's routines: none of the built-ins, dotted names."""
    registry = RoutineRegistry()

    @routine("acme.reports.weekly", WeeklyArgs, description="Weekly report per team.", registry=registry)
    async def weekly(args: WeeklyArgs, context: RoutineContext) -> dict[str, str]:
        CALLS.append(("acme.reports.weekly", args))
        return {"team": args.team}

    @routine("zeta.cleanup", CleanupArgs, timeout=timedelta(minutes=10), registry=registry)
    async def cleanup(args: CleanupArgs, context: RoutineContext) -> None:
        """Deletes what is older than ``keep_days``.

        Indented, as docstrings are.
        """
        CALLS.append(("zeta.cleanup", args))

    @routine("acme.needs_args", NeedsArgs, description="Needs a target.", registry=registry)
    async def needs(args: NeedsArgs, context: RoutineContext) -> None:
        CALLS.append(("acme.needs_args", args))

    return registry


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def container(clock: FixedClock) -> Container:
    built = make_container(clock)
    built.routines.override(own_routines())
    return built


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(container, AUTH) as http:
        yield http


async def run_due(container: Container) -> None:
    dispatcher = container.dispatcher()
    while await dispatcher.dispatch_due():
        await dispatcher.drain(10)


async def test_the_deployment_s_routines_are_listed_by_name(client: httpx.AsyncClient) -> None:
    listed = await client.get("/v1/routines")
    assert listed.status_code == 200, listed.text
    assert listed.json() == [
        {"name": "acme.needs_args", "description": "Needs a target.",
         "schema_url": "/v1/routines/acme.needs_args", "timeout_seconds": None},
        {"name": "acme.reports.weekly", "description": "Weekly report per team.",
         "schema_url": "/v1/routines/acme.reports.weekly", "timeout_seconds": None},
        # its docstring, as Markdown (the API's descriptions are): no indentation, RST's ``x`` as `x`
        {"name": "zeta.cleanup", "description": "Deletes what is older than `keep_days`.\n\nIndented, as docstrings are.",
         "schema_url": "/v1/routines/zeta.cleanup", "timeout_seconds": 600.0},  # its own run time limit
    ]


async def test_a_routine_s_detail_has_its_args_schema_and_a_body_that_schedules_it(
        client: httpx.AsyncClient, container: Container, clock: FixedClock) -> None:
    listed = (await client.get("/v1/routines")).json()
    details = {}
    for item in listed:
        detail = await client.get(item["schema_url"])
        assert detail.status_code == 200, detail.text
        details[item["name"]] = detail.json()
        assert {k: detail.json()[k] for k in item} == item
    assert details["acme.reports.weekly"]["args_schema"] == WeeklyArgs.model_json_schema()
    assert details["zeta.cleanup"]["args_schema"] == CleanupArgs.model_json_schema()
    assert details["acme.needs_args"]["args_schema"] == NeedsArgs.model_json_schema()
    # The first of the schema's examples the model accepts; else the defaults; else none.
    assert details["acme.reports.weekly"]["example"] == {
        "task": {"type": "python", "routine": "acme.reports.weekly", "args": {"team": "ops", "weeks": 2}},
        "schedule": "daily at 03:00"}
    assert details["zeta.cleanup"]["example"]["task"]["args"] == {"keep_days": 7, "dry_run": False}
    assert details["acme.needs_args"]["example"] is None
    # Each example is a request the API takes, and its routine runs with those arguments.
    CALLS.clear()
    for name in ("acme.reports.weekly", "zeta.cleanup"):
        created = await client.post("/v1/schedules", json=details[name]["example"])
        assert created.status_code == 201, created.text
    clock.set(datetime(2030, 3, 2, 6, 0, 1, tzinfo=UTC))  # 03:00 in the default zone, São Paulo
    await run_due(container)
    assert sorted(CALLS, key=lambda call: call[0]) == [
        ("acme.reports.weekly", WeeklyArgs(team="ops", weeks=2)), ("zeta.cleanup", CleanupArgs())]


async def test_an_unknown_routine_is_a_404_naming_it(client: httpx.AsyncClient) -> None:
    for name in ("acme.reports", "cronjob.purge_runs"):  # a prefix; a built-in this deployment lacks
        answer = await client.get(f"/v1/routines/{name}")
        assert answer.status_code == 404, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == (f"unknown routine {name!r}; registered: acme.needs_args, "
                                           "acme.reports.weekly, zeta.cleanup")
    too_long = await client.get("/v1/routines/" + "a" * 201)
    assert too_long.status_code == 422, too_long.text
    assert [e["field"] for e in too_long.json()["errors"]] == ["name"]


async def test_the_routes_need_the_token(container: Container) -> None:
    async with api_client(container) as anonymous:
        for path in ("/v1/routines", "/v1/routines/zeta.cleanup"):
            answer = await anonymous.get(path)
            assert answer.status_code == 401, answer.text
            assert answer.headers["content-type"] == "application/problem+json"


async def test_the_shipped_routines_are_listed_with_bodies_that_schedule_them(clock: FixedClock) -> None:
    async with api_client(make_container(clock), AUTH) as http:
        listed = (await http.get("/v1/routines")).json()
        assert [r["name"] for r in listed] == ["cronjob.daily_report", "cronjob.purge_runs"]
        assert all(item["description"] and "``" not in item["description"] for item in listed), listed
        for item in listed:
            example = (await http.get(item["schema_url"])).json()["example"]
            created = await http.post("/v1/schedules", json=example)  # without SMTP: the report by webhook
            assert created.status_code == 201, (item["name"], created.text)


async def test_without_the_python_task_type_no_routine_is_listed(clock: FixedClock) -> None:
    container = make_container(clock)
    container.task_registry.override(TaskRegistry([t for t in container.task_registry() if t.name != "python"]))
    async with api_client(container, AUTH) as http:
        assert (await http.get("/v1/routines")).json() == []
        answer = await http.get("/v1/routines/cronjob.purge_runs")
        assert answer.status_code == 404, answer.text
        assert answer.json()["detail"] == "unknown routine 'cronjob.purge_runs'; registered: none"


async def test_openapi_describes_both_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    listing = spec["paths"]["/v1/routines"]["get"]
    detail = spec["paths"]["/v1/routines/{name}"]["get"]
    listed = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert (listed["type"], listed["items"]) == ("array", {"$ref": "#/components/schemas/RoutineView"})
    assert detail["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RoutineDetail"}
    assert "404" in detail["responses"] and listing["security"] and detail["security"]
    [name] = detail["parameters"]
    assert (name["in"], name["schema"]["maxLength"], name["schema"]["examples"]) == (
        "path", 200, ["cronjob.purge_runs"])
    schemas = spec["components"]["schemas"]
    assert set(schemas["RoutineDetail"]["properties"]) == {"name", "description", "schema_url", "timeout_seconds",
                                                           "args_schema", "example"}
    for model in ("RoutineView", "RoutineDetail"):
        assert schemas[model]["description"] and schemas[model]["examples"]
        assert all(field.get("description") for field in schemas[model]["properties"].values()), model


async def test_a_routine_registered_after_the_app_was_built_is_listed(client: httpx.AsyncClient,
                                                                     container: Container) -> None:
    """The process-wide registry is filled as modules are imported: the list is read at each request."""
    assert [r["name"] for r in (await client.get("/v1/routines")).json()][-1] == "zeta.cleanup"

    @routine("zz.late", CleanupArgs, description="Late.", registry=container.routines())
    async def late(args: CleanupArgs, context: RoutineContext) -> None:
        return None

    assert [r["name"] for r in (await client.get("/v1/routines")).json()][-1] == "zz.late"
    assert (await client.get("/v1/routines/zz.late")).status_code == 200


def test_a_routine_whose_arguments_have_no_json_schema_is_not_registered() -> None:
    class Opaque:
        """A type Pydantic checks by isinstance, and cannot describe."""

    class OpaqueArgs(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)

        thing: Opaque | None = None

    registry = RoutineRegistry()
    with pytest.raises(ValueError, match="routine 'acme.opaque': its arguments have no JSON Schema"):
        routine("acme.opaque", OpaqueArgs, registry=registry)(lambda args, context: None)  # type: ignore[arg-type,return-value]
    assert registry.names() == []  # so GET /v1/routines/{name} never meets one it cannot describe


@pytest.mark.parametrize("name", ["reports/weekly", "", "..", "-.", "weekly report", "relatório", "a?b", "x" * 101])
def test_a_routine_name_the_detail_route_cannot_reach_is_not_registered(name: str) -> None:
    registry = RoutineRegistry()
    with pytest.raises(ValueError, match="use letters, digits and . _ - only"):
        routine(name, CleanupArgs, registry=registry)(lambda args, context: None)  # type: ignore[arg-type,return-value]
    assert registry.names() == []


async def test_every_registrable_name_is_reachable_at_its_detail_route(client: httpx.AsyncClient,
                                                                     container: Container) -> None:
    for name in ["a", "A-1_b.c", "x" * 100, "_.-9"]:
        routine(name, CleanupArgs, registry=container.routines())(lambda args, context: None)  # type: ignore[arg-type,return-value]
        response = await client.get(f"/v1/routines/{name}")
        assert response.status_code == 200, (name, response.text)
        assert response.json()["name"] == name
