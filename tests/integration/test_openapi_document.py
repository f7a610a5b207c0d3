"""``/openapi.json`` read as an integrator reads it, who has nothing else: a client generated from
it must be able to read every answer, error answers included, and what the document shows must be
what the service does. Through the container (store=memory, a clock the test drives), in memory
via httpx's ASGI transport; each answer is checked against the document's own schemas with
``jsonschema``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema

from cronjob.services.health import HealthService
from cronjob_adapters.web.probes import create_probe_app
from cronjob_adapters.web.auth import bearer_tokens
from tests.support.app import AUTH, TOKEN, api_client, make_container
from tests.support.builders import SEED
from tests.support.clock import FixedClock
from tests.support.memory_api import client, clock, container  # noqa: F401 - fixtures

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
PROBLEM_JSON = "application/problem+json"
METHODS = {"get", "post", "put", "patch", "delete"}


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every operation of ``document``, named ``METHOD path``."""
    return [(f"{method.upper()} {path}", operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


def conforms(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    """What in ``instance`` does not fit ``schema``, whose ``$ref`` point into ``document``."""
    validator = jsonschema.Draft202012Validator({**schema, "components": document["components"]})
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(instance)]


def problem_answers_described(document: dict[str, Any]) -> None:
    """Every error answer of ``document`` is problem+json with the ``Problem`` schema, a 503
    with its ``Retry-After``."""
    assert "Problem" in document["components"]["schemas"]
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400 or name in {"GET /healthcheck", "GET /livez", "GET /readyz"}:
                continue  # (the probes answer their 503 with their own report)
            assert response["content"] == {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}, (
                name, status)
            assert response["description"] != "A problem+json document (RFC 9457).", (name, status)
            if status == "503":
                assert response["headers"]["Retry-After"]["required"] is True, name


async def test_every_error_answer_has_the_problem_schema_and_answers_fit_it(client: httpx.AsyncClient) -> None:
    """Without a schema, a generated client reads every error as nothing: not the fields that a
    422 names, nor the detail of a 404 or a 409."""
    document = (await client.get("/openapi.json")).json()
    problem_answers_described(document)
    schema = {"$ref": "#/components/schemas/Problem"}
    bearer_401 = document["paths"]["/v1/schedules/{schedule_id}"]["get"]["responses"]["401"]
    assert "WWW-Authenticate" in bearer_401["headers"]

    created = (await client.post("/schedule-message", json={**SEED, "send_at": "2030-06-21T14:00:00-03:00"},
                                 headers=AUTH)).json()
    answers = {
        401: await client.get("/v1/schedules"),
        404: await client.get("/v1/schedules/nope", headers=AUTH),
        409: await client.post(f"/v1/schedules/{created['id']}/retry", headers=AUTH),  # it has not ended
        413: await client.post("/v1/schedules", content=b"{" + b" " * 70_000 + b"}",
                               headers={**AUTH, "Content-Type": "application/json"}),
        415: await client.post("/v1/schedules", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"}),
        422: await client.post("/v1/schedules:batch", headers=AUTH, json={"schedules": [
            {"task": {"type": "whatsapp.text", "to": "1", "body": "x"}, "schedule": "daily at 10:00"}] * 101}),
    }
    for status, answer in answers.items():
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert not conforms(document, schema, answer.json()), (status, conforms(document, schema, answer.json()))
    assert answers[401].headers["www-authenticate"] == "Bearer"
    assert answers[422].json()["errors_total"] == 101 and len(answers[422].json()["errors"]) == 100

    starting = make_container(FixedClock(NOW), initialized=False)
    async with api_client(starting, AUTH) as http:
        unavailable = await http.get("/v1/schedules")
    assert unavailable.status_code == 503 and int(unavailable.headers["retry-after"]) >= 0
    assert not conforms(document, schema, unavailable.json())


async def test_the_scheduler_s_own_document_describes_its_errors_too() -> None:
    """``cronjob scheduler`` serves its probes and ``/metrics`` with a document of their own."""
    container = make_container(FixedClock(NOW))
    health = HealthService(container.repository(), container.clock())

    async def render() -> tuple[bytes, str]:
        return b"", "text/plain"

    app = create_probe_app(health, render, bearer_tokens([TOKEN]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        document = (await http.get("/openapi.json")).json()
        refused = await http.get("/metrics")
    problem_answers_described(document)
    assert refused.status_code == 401
    assert not conforms(document, {"$ref": "#/components/schemas/Problem"}, refused.json())


async def test_a_bulk_selection_is_one_model_whose_rule_is_the_service_s(client: httpx.AsyncClient) -> None:
    """"userId, labels or both" was a top-level ``anyOf`` of two ``required`` lists: a generated
    client read the body of ``:cancel``, ``:pause`` and ``:resume`` as no model at all
    (openapi-python-client) or as a union of two (datamodel-code-generator), and ``{"userId":
    null}`` fitted it though the service refuses it. The rule is now the ``not`` of neither, which
    generators leave to the service and a validator reads as the service does."""
    document = (await client.get("/openapi.json")).json()
    bodies = dict.fromkeys(("POST /v1/schedules:cancel", "POST /v1/schedules:pause", "POST /v1/schedules:resume"),
                           "SelectRequest")
    for name, operation in operations(document):
        if name in bodies:
            assert operation["requestBody"]["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{bodies[name]}"}
    for schema in {bodies[name] for name in bodies}:
        defined = document["components"]["schemas"][schema]
        assert defined["type"] == "object" and not {"anyOf", "oneOf", "allOf"} & set(defined), schema
    cases = [({"userId": "nobody"}, True), ({"labels": {"order": "1"}}, True),
             ({"userId": None, "labels": {"order": "1"}}, True), ({"userId": "nobody", "labels": None}, True),
             ({}, False), ({"userId": None}, False), ({"labels": None}, False), ({"userId": None, "labels": None}, False),
             ({"type": ["whatsapp.text"]}, False)]
    for path, schema in bodies.items():
        for body, valid in cases:
            fits = not conforms(document, {"$ref": f"#/components/schemas/{schema}"}, body)
            answer = await client.post(path.split(" ", 1)[1], json=body, headers=AUTH)
            assert (fits, answer.status_code) == (valid, 200 if valid else 422), (path, body, answer.text)


async def test_a_schedule_s_status_is_typed_as_the_statuses_it_can_be(client: httpx.AsyncClient) -> None:
    """A generated client types a status as the ``ScheduleStatus`` enum (the list's ``status``
    filter had it), not as any text: in a schedule, its upcoming runs and its webhook deliveries."""
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    statuses = schemas["ScheduleStatus"]["enum"]
    for view in ("ScheduleView", "UpcomingView", "DeliveryView"):
        assert schemas[view]["properties"]["status"]["$ref"] == "#/components/schemas/ScheduleStatus", view
    created = (await client.post("/schedule-message", json={**SEED, "send_at": "2030-06-21T14:00:00-03:00"},
                                 headers=AUTH)).json()
    paused = (await client.post(f"/v1/schedules/{created['id']}/pause", headers=AUTH)).json()
    upcoming = (await client.get(f"/v1/schedules/{created['id']}/upcoming", headers=AUTH)).json()
    assert (created["status"], paused["status"], upcoming["status"]) == ("scheduled", "paused", "paused")
    assert {created["status"], paused["status"]} <= set(statuses)
    for answer, view in ((paused, "ScheduleView"), (upcoming, "UpcomingView")):
        assert not conforms(document, {"$ref": f"#/components/schemas/{view}"}, answer), view


def examples_with_schemas(node: Any, path: str = "") -> list[tuple[str, dict[str, Any], Any]]:
    """Every ``examples`` entry under ``node`` with the schema it illustrates (that schema
    without its ``examples``), named by where it is."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("examples"), list) and not path.endswith("/properties"):
            schema = {key: value for key, value in node.items() if key != "examples"}
            found += [(f"{path}#{index}", schema, example) for index, example in enumerate(node["examples"])]
        for key, value in node.items():
            if key != "examples" or path.endswith("/properties"):
                found += examples_with_schemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += examples_with_schemas(value, f"{path}/{index}")
    return found


async def test_every_example_fits_its_own_schema(client: httpx.AsyncClient) -> None:
    """FastAPI writes its document without any ``null``, inside examples too: the routines'
    examples lost their required ``timeout_seconds: null`` and no longer fitted their schema
    (and the detail's example ``args_schema`` refused the ``args`` of its own example body)."""
    document = (await client.get("/openapi.json")).json()
    found = examples_with_schemas(document)
    assert len(found) >= 50
    for where, schema, example in found:
        assert not conforms(document, schema, example), (where, conforms(document, schema, example))
    [routine] = document["components"]["schemas"]["RoutineDetail"]["examples"]
    assert routine["timeout_seconds"] is None
    assert not conforms(document, routine["args_schema"], routine["example"]["task"]["args"])


async def test_every_request_example_is_taken_by_the_service(client: httpx.AsyncClient) -> None:
    """What /docs offers to "Try it out" is accepted as it stands: each body example of each
    operation, on a fresh service (a move on a schedule made by the creation example)."""
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    made = (await client.post("/schedule-message", json=schemas["ScheduleMessageRequest"]["examples"][0],
                              headers=AUTH)).json()
    recurring = (await client.post("/v1/schedules", json=schemas["CreateScheduleRequest"]["examples"][0],
                                   headers=AUTH)).json()
    tried = 0
    for name, operation in operations(document):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body is None or "$ref" not in body:
            continue
        method, path = name.split(" ", 1)
        for example in schemas[body["$ref"].rsplit("/", 1)[-1]].get("examples", []):
            target = made if "send_at" in example else recurring
            answer = await client.request(method, path.replace("{schedule_id}", target["id"]), json=example,
                                          headers=AUTH)
            assert answer.status_code in (200, 201), (name, example, answer.text)
            tried += 1
    batch = await client.post("/v1/schedules:batch", json={"schedules": schemas["BatchScheduleItem"]["examples"]},
                              headers=AUTH)
    assert batch.status_code == 200 and batch.json()["created"] == 1, batch.text
    routine = schemas["RoutineDetail"]["examples"][0]["example"]
    assert (await client.post("/v1/schedules", json=routine, headers=AUTH)).status_code == 201
    assert tried >= 15


def test_every_operation_and_parameter_is_described() -> None:
    """A generated client's docstrings and /docs say what each operation does and what each of
    its parameters is: the schedule id of nine routes, the creations' and run-now's
    `Idempotency-Key`, the list's `status` and `limit` and a task type's name said nothing."""
    app = make_container(FixedClock(NOW), whatsapp_app_secret="secret", whatsapp_verify_token="token").app()
    undescribed = []
    for name, operation in operations(app.openapi()):
        if not (operation.get("summary") and operation.get("description")):
            undescribed.append(name)
        undescribed += [f"{name} {parameter['in']} {parameter['name']}" for parameter in operation.get("parameters", [])
                        if not parameter.get("description")]
    assert undescribed == []


async def test_a_creation_documents_its_location(client: httpx.AsyncClient) -> None:
    """Both creations answer the new schedule's path in `Location` (201, and 200 for a replay)."""
    document = (await client.get("/openapi.json")).json()
    for path, body in (("/schedule-message", {**SEED, "send_at": "2030-06-21T14:00:00-03:00"}),
                       ("/v1/schedules", document["components"]["schemas"]["CreateScheduleRequest"]["examples"][0])):
        responses = document["paths"][path]["post"]["responses"]
        for status in (201, 200):
            assert responses[str(status)]["headers"]["Location"]["required"] is True, (path, status)
            answer = await client.post(path, json=body, headers={**AUTH, "Idempotency-Key": path})
            assert answer.status_code == status, answer.text
            assert answer.headers["location"] == f"/v1/schedules/{answer.json()['id']}"


def undescribed_response_properties(document: dict[str, Any]) -> list[str]:
    """Every property, named ``Schema.property``, of a schema reachable from a response of
    ``document`` (through ``$ref``, ``items``, ``anyOf``/``oneOf``/``allOf`` and
    ``additionalProperties``) that has no description; one that is only a ``$ref`` is described
    by the schema it names."""
    schemas = document["components"]["schemas"]

    def referenced(node: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = node["$ref"].rsplit("/", 1)[-1]
        return name, schemas[name]

    seen: set[str] = set()
    undescribed: list[str] = []

    def walk(node: Any, owner: str) -> None:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name, schema = referenced(node)
            if name not in seen:
                seen.add(name)
                walk(schema, name)
        for key, prop in node.get("properties", {}).items():
            if not (prop.get("description") or ("$ref" in prop and referenced(prop)[1].get("description"))):
                undescribed.append(f"{owner}.{key}")
            walk(prop, owner)
        for key in ("items", "additionalProperties"):
            walk(node.get(key), owner)
        for key in ("anyOf", "oneOf", "allOf"):
            for member in node.get(key, []):
                walk(member, owner)

    for _, operation in operations(document):
        for response in operation["responses"].values():
            for media in response.get("content", {}).values():
                walk(media.get("schema"), "(inline)")
    return sorted(set(undescribed))


def test_every_field_of_every_answer_is_described() -> None:
    """A generated client's models and /docs say what each field of an answer holds: most of an
    attempt's, an event's, an error's, a retry or misfire policy's and the list wrappers' fields
    said nothing (not their units, nor what null means)."""
    app = make_container(FixedClock(NOW), whatsapp_app_secret="secret", whatsapp_verify_token="token").app()
    document = app.openapi()
    assert {"ScheduleView", "AttemptView", "EventView", "BatchView", "Receipt", "Problem"} <= set(
        document["components"]["schemas"])
    assert undescribed_response_properties(document) == []


def test_a_generated_client_s_classes_are_named_as_the_document_names_its_schemas() -> None:
    """Generators name a class after a schema's ``title``: the ``EmailTask`` and
    ``HttpRequestTask`` schemas were titled ``EmailPayload`` and ``HttpRequestPayload`` (their
    payload models' explicit titles, which the task models derived from them inherited), so a
    client's classes had other names than the document's schemas."""
    app = make_container(FixedClock(NOW), whatsapp_app_secret="secret", whatsapp_verify_token="token").app()
    schemas = app.openapi()["components"]["schemas"]
    assert {"EmailTask", "HttpRequestTask", "WhatsappTextTask", "PythonTask"} <= set(schemas)
    assert {name: schema["title"] for name, schema in schemas.items()
            if schema.get("title", name) != name} == {}


def test_no_two_schemas_of_the_document_are_the_same() -> None:
    """``:cancel`` took a ``CancelRequest`` that was ``SelectRequest`` (``:pause``'s and
    ``:resume``'s) under another name: a generated client had two identical classes for one
    body. Schemas that differ only by their title and description are the same to a client."""
    app = make_container(FixedClock(NOW), whatsapp_app_secret="secret", whatsapp_verify_token="token").app()
    schemas = app.openapi()["components"]["schemas"]
    by_content: dict[str, list[str]] = {}
    for name, schema in schemas.items():
        content = {key: value for key, value in schema.items() if key not in {"title", "description"}}
        by_content.setdefault(json.dumps(content, sort_keys=True), []).append(name)
    assert [names for names in by_content.values() if len(names) > 1] == []
    assert len(by_content) == len(schemas) > 50
