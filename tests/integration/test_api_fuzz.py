"""The HTTP API fuzzed from its own OpenAPI document with Schemathesis (property-based), in memory
through the container (store=memory, sender=recording, WhatsApp webhook configured), over
Schemathesis's ASGI transport: no server, no network.

Every operation of ``/openapi.json`` is one test, run in Schemathesis's ``examples`` (the documented
examples), ``coverage`` (boundary values, missing/extra parameters, unexpected methods) and
``fuzzing`` phases, with data that matches the document (positive) and data that violates it
(negative). The responses must satisfy these checks:

- ``not_a_server_error``: never a 5xx (the probes' documented 503 needs a store down: it is up here,
  and the store is marked initialised as the runtime does, so ``/readyz`` answers 200).
- ``status_code_conformance``, ``content_type_conformance``, ``response_schema_conformance``,
  ``response_headers_conformance``: the answer is one the document describes.
- ``negative_data_rejection``: a request that violates the document is refused with a 4xx. 413
  counts as a refusal: the body limit (``max_body_bytes``) is checked before the fields are.
- ``missing_required_header``, ``unsupported_method``, ``allow_header_conformance``: a required
  header left out, or a method the path does not have, is a 4xx (405 for the method, whose
  ``Allow`` lists every method of the path).
- ``ignored_auth``: an operation that declares the bearer scheme refuses a request without it.
- and the project's own rule (:func:`assert_clear_problem`): every 4xx is ``application/problem+json``
  (RFC 9457) with a title, the status and a detail, and a 400/422 lists ``errors`` that each name a
  field (a dotted path of the request, not an empty string or a character offset) with a message.

Left out, because they fail on correct behaviour of this API:

- ``positive_data_acceptance`` (a schema-valid request must be accepted): the document describes
  the shape, the services the meaning. A ``send_at`` more than 300 s in the past, ``{{n}}``
  placeholders that do not match ``params``, a ``schedule`` that is free text but must be one of the
  README's forms, an ``email`` task on a server without SMTP, a callback URL that is not http(s):
  all are valid by the schema and rightly refused with a 422 naming the field.
- the stateful checks (``use_after_free``, ``ensure_resource_availability``): they need the
  stateful phase, which ``parametrize`` does not run, and ``DELETE /v1/schedules/{id}`` cancels a
  schedule, which stays readable, so ``use_after_free`` would flag the documented behaviour.

Every request to the webhook's POST is signed with the app secret (``X-Hub-Signature-256``), so
that the fuzzed bodies (from the document's schema of Meta's notification) reach the parser. A
positive request to the verification handshake that has a ``hub.challenge`` carries the right
mode and verify token, so that its 200 is reached too.

A longer exploratory run (1,000 examples per operation and mode, another seed) once reported a
"schema-violating" webhook body that was accepted. It was not a false alarm: the document's
``oneOf`` of the two kinds of change matched every ``messages`` change twice, so it called every
real notification invalid (and a text timestamp, as Meta sends it, too), which hid the webhook's
real leniencies (a bool taken as a number). All three are fixed; see
``test_the_documented_body_takes_meta_s_notifications``. Schemathesis is pinned so that the cases
stay the same.

Runs are bounded (``MAX_EXAMPLES`` per operation and mode) and deterministic: Hypothesis is
derandomized, with no example database, and Schemathesis's seed is fixed, so that CI sees the same
cases on every run (about 35 s for the file on two cores when every check passes). None can pass
vacuously: once a test's cases have run, its fixture checks (an error at teardown otherwise) that
its operation was called and, for valid data, answered past authentication and, where the fuzzer
can reach one, with a 2xx. The probes take no input (``NO_INPUT``): they have no invalid-data test.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.transport import Response

from cronjob_adapters.web.whatsapp_webhook import PATH as WEBHOOK, SIGNATURE_HEADER
from tests.support.app import AUTH, TOKEN, make_container
from tests.support.clock import FixedClock

#: The documented example of ``POST /schedule-message`` is due at 17:00 UTC that day: in the future.
NOW = datetime(2025, 6, 21, 16, 0, tzinfo=UTC)
APP_SECRET = "meta-app-secret-for-fuzzing"
VERIFY_TOKEN = "verify-me-please"
MAX_EXAMPLES = 100
SEED = 20250621

CHECKS: dict[str, dict[str, Any]] = {
    "not_a_server_error": {"enabled": True},
    "status_code_conformance": {"enabled": True},
    "content_type_conformance": {"enabled": True},
    "response_schema_conformance": {"enabled": True},
    "response_headers_conformance": {"enabled": True},
    "negative_data_rejection": {"enabled": True, "expected-statuses": [
        400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]},
    "missing_required_header": {"enabled": True},
    "unsupported_method": {"enabled": True},
    "ignored_auth": {"enabled": True},
    "positive_data_acceptance": {"enabled": False},
    "allow_header_conformance": {"enabled": True},
    "use_after_free": {"enabled": False},
    "ensure_resource_availability": {"enabled": False},
}

#: What each operation must have answered, besides a call past authentication: a 2xx where the
#: fuzzer can reach one (the rest need an existing schedule id or a known task type name; a
#: routine's name is the path parameter's documented example).
MUST_SUCCEED = {
    "GET /healthcheck", "GET /livez", "GET /readyz", "GET /metrics",
    "POST /schedule-message", "POST /v1/schedules", "GET /v1/schedules", "GET /v1/task-types", "GET /v1/stats",
    "GET /v1/rules/preview", "GET /v1/routines", "GET /v1/routines/{name}",
    f"GET {WEBHOOK}", f"POST {WEBHOOK}",
}


def _app() -> Any:
    container = make_container(FixedClock(NOW), whatsapp_app_secret=APP_SECRET,
                               whatsapp_verify_token=VERIFY_TOKEN)
    return container.app()


APP = _app()
DOCUMENT = APP.openapi()


def _schema(mode: str) -> Any:
    """The document as Schemathesis reads it, generating ``mode`` (positive or negative) data."""
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": mode, "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "checks": CHECKS,
        "auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}},
    })
    loaded = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=config)
    loaded.app = APP
    return loaded


#: Operations that take no input at all (no parameter, no body, no token): no request to them can
#: violate the document, so they have no invalid-data test.
NO_INPUT = ["GET /healthcheck", "GET /livez", "GET /readyz"]

positive = _schema("positive")
negative = _schema("negative").exclude(name=NO_INPUT)


class MetaSignature(requests.auth.AuthBase):
    """Signs the body as it is sent, as Meta does: ``sha256=<hex HMAC-SHA256(app secret, body)>``."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        digest = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        request.headers[SIGNATURE_HEADER] = f"sha256={digest}"
        return request


def assert_clear_problem(response: Response, case: Case) -> None:
    """A 4xx is an RFC 9457 problem naming what is wrong (the project's rule for bad input)."""
    if not 400 <= response.status_code < 500:
        return
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    assert response.headers.get("content-type", [""])[0] == "application/problem+json", where
    problem = json.loads(response.content)
    assert isinstance(problem, dict), where
    assert problem.get("status") == response.status_code, where
    assert isinstance(problem.get("title"), str) and problem["title"] and problem["title"] != "Error", where
    assert isinstance(problem.get("detail"), str) and problem["detail"], where
    if response.status_code == 422 or (response.status_code == 400 and "errors" in problem):
        errors = problem.get("errors")
        assert isinstance(errors, list) and errors, where
        for error in errors:
            field, message = error.get("field"), error.get("message")
            assert isinstance(field, str) and field, f"an error names no field: {where}"
            # A position is no field name, except a name the client sent: a query parameter
            # (``?0=``) or a body member (``{"0": ...}``) that the API does not know.
            if message not in ("unknown query parameter", "unknown field"):
                assert not field.split(".")[0].isdigit(), f"an error names a position, not a field: {where}"
            assert isinstance(message, str) and message, where


@dataclass
class Answers:
    """The status codes one operation answered, and whether a check failed on one of them."""

    codes: Counter[int] = field(default_factory=Counter)
    failed: bool = False

    def past_authentication(self) -> bool:
        return bool(set(self.codes) - {401, 403})

    def succeeded(self) -> bool:
        return any(200 <= code < 300 for code in self.codes)


def exercise(case: Case, answers: Answers) -> None:
    """Send ``case`` (signed or with the verify token where the webhook needs it), check the answer."""
    kwargs: dict[str, Any] = {}
    if case.path == WEBHOOK and case.method == "POST":
        kwargs["auth"] = MetaSignature()
    generated_positive = case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE
    if case.path == WEBHOOK and case.method == "GET" and generated_positive and isinstance(case.query, dict) \
            and case.query.get("hub.challenge") is not None:
        case.query.update({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN})
    response = case.call(**kwargs)
    if case.method.upper() == case.operation.method.upper():  # not the coverage phase's other methods
        answers.codes[response.status_code] += 1
    try:
        case.validate_response(response, transport_kwargs=kwargs or None)
        assert_clear_problem(response, case)
    except BaseException:
        answers.failed = True
        raise


def _operation(request: pytest.FixtureRequest) -> str:
    return request.node.name.partition("[")[2].rstrip("]")  # e.g. "GET /livez"


@pytest.fixture
def positive_answers(request: pytest.FixtureRequest) -> Iterator[Answers]:
    """Checked once all the cases have run: called, past authentication, and a 2xx where reachable."""
    answers = Answers()
    yield answers
    operation = _operation(request)
    if not answers.failed:  # a failing test says more than this
        assert answers.codes, f"{operation}: no case was generated"
        assert answers.past_authentication(), f"{operation}: never past authentication: {dict(answers.codes)}"
        if operation in MUST_SUCCEED:
            assert answers.succeeded(), f"{operation}: never succeeded: {dict(answers.codes)}"


@pytest.fixture
def negative_answers(request: pytest.FixtureRequest) -> Iterator[Answers]:
    """Checked once all the cases have run: some invalid request was sent, and got past
    authentication (a refusal at the token alone says nothing of the checks behind it)."""
    answers = Answers()
    yield answers
    operation = _operation(request)
    if not answers.failed:
        assert answers.codes, f"{operation}: no invalid case was generated"
        assert answers.past_authentication(), f"{operation}: never past authentication: {dict(answers.codes)}"


HYPOTHESIS = settings(deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much,
    HealthCheck.data_too_large])


@positive.parametrize()
@HYPOTHESIS
def test_valid_requests_get_documented_answers(case: Case, positive_answers: Answers) -> None:
    exercise(case, positive_answers)


@negative.parametrize()
@HYPOTHESIS
def test_invalid_requests_get_a_documented_clear_4xx(case: Case, negative_answers: Answers) -> None:
    exercise(case, negative_answers)


@pytest.mark.parametrize(
    ("path", "change", "field"),
    [
        ("/schedule-message", {"send_at": "9999-12-31T23:59:59-14:00"}, "send_at"),
        ("/schedule-message", {"send_at": "0001-01-01T00:00:00+14:00"}, "send_at"),
        ("/schedule-message", {"send_at": "9999-12-31T23:59:59", "timezone": "America/Sao_Paulo"}, "send_at"),
        ("/schedule-message", {"send_by": "9999-12-31T23:59:59-14:00"}, "send_by"),
        ("/v1/schedules", {"schedule": "once @ 9999-12-31 23:59"}, "schedule"),
        ("/v1/schedules", {"schedule": "once @ 0001-01-01 00:00", "timezone": "Etc/GMT-14"}, "schedule"),
        ("/v1/schedules", {"send_by": "9999-12-31T23:59:59-14:00"}, "send_by"),
    ],
)
def test_dates_beyond_the_calendar_in_utc_are_a_422_not_a_500(path: str, change: dict[str, Any],
                                                                field: str) -> None:
    """Found by fuzzing: a date-time whose UTC instant falls outside years 1..9999 (its offset
    pushes it over) is refused naming the field, like any other unusable date."""
    base: dict[str, Any] = (
        {"to": "5511999999999", "body": "Olá, {{1}}!", "type": "template", "templateName": "x",
         "params": ["a"], "send_at": "2025-06-21T14:00:00-03:00"} if path == "/schedule-message" else
        {"task": {"type": "whatsapp.text", "to": "5511999999999", "body": "Oi", "params": []},
         "schedule": "every 10 minutes", "timezone": "America/Sao_Paulo"})
    case = positive[path]["POST"].Case(body={**base, **change})
    response = case.call(headers=AUTH)
    assert response.status_code == 422, response.text
    assert_clear_problem(response, case)
    assert field in [e["field"] for e in json.loads(response.content)["errors"]], response.text
