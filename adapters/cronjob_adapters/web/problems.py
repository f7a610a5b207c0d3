"""RFC 9457 problem+json responses, and the handlers that turn errors into them."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from cronjob.domain.errors import InvalidTransition, ValidationError
from cronjob.ports.repository import StoreUnavailable
from cronjob.services.scheduling import ScheduleConflict, ScheduleNotFound

from cronjob_adapters.tasks.validation import error_field
from cronjob_adapters.web.openapi_document import extend_openapi

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


#: The most ``errors`` a problem lists: a batch of 1,000 wrong items would otherwise be answered
#: with every one of its errors (about 240 KB); the count of all is ``errors_total`` then.
MAX_LISTED_ERRORS = 100


class ProblemField(BaseModel):
    """One wrong field of a request."""

    field: str = Field(description="The field, as a dotted path in the request: `task.to`, `schedules.3.send_at`, "
                                   "`labels.order`, a query parameter (`due_after`), or `body` for the body "
                                   "as a whole.")
    message: str = Field(description="What is wrong with it.")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class Problem(BaseModel):
    """An error, as every error of the API is answered: RFC 9457 problem details
    (`application/problem+json`)."""

    type: str = Field(description="`about:blank`: the `status` says what kind of error it is.")
    title: str = Field(description="The status's reason phrase: `Invalid request`, `Not found`, `Conflict`, ...")
    status: int = Field(description="The HTTP status code, as the response has it.")
    detail: str = Field(description="What went wrong in this request, for a person (a 422: each field and "
                                    "what is wrong with it).")
    errors: list[ProblemField] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default,
        description="A 422: each wrong field (the first 100, in the order of the request); left out "
                    "otherwise.")
    errors_total: Annotated[int, Field(gt=MAX_LISTED_ERRORS)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_no_default,
        description="How many fields were wrong in all, given only when there were more than `errors` lists.")


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    errors_total: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; ``errors`` lists ``{"field", "message"}`` pairs for validation,
    ``errors_total`` (an extension member, given when ``errors`` lists only the first ones) how
    many there were in all."""
    body = Problem(type="about:blank", title=title, status=status, detail=detail, errors=errors or None,
                   errors_total=errors_total)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON,
                        headers=headers)


#: Where a request value comes from: the first part of a FastAPI error's ``loc``.
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
#: FastAPI's 400 for a body it could not parse (not UTF-8, nested too deeply): said more clearly.
_UNPARSABLE_BODY = "There was an error parsing the body"


#: What pydantic puts in a ``loc`` to say which member of a plain union (``int | str``) an error is
#: about: not a field of the request (``expected_status.2.constrained-int`` is ``expected_status.2``,
#: ``body.dict[str,any]`` is ``body``).
_PYDANTIC_TAG = re.compile(r"^(constrained-|function-|lax-|strict-|json-or-python\[|nullable\[|tagged-union\[|dict\[|list\[)"
                           r"|^(int|str|float|bool)$")


def _field(loc: tuple[Any, ...]) -> str:
    """The field an error is about, as a dotted path: the request's source (``body``, ``query``,
    ...) is dropped, except when the error is about the body as a whole (then ``body``). Only
    the first part is a source: ``("body", "body")`` is the ``body`` field of the body."""
    parts = [str(p) for p in loc if not _PYDANTIC_TAG.match(str(p))]
    if len(parts) > 2 and parts[-1] == "[key]":  # about an object's key (``labels.bad key``), not its value
        parts = parts[:-1]
    if len(parts) > 1 and parts[0] in _SOURCES:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _without_union_tags(loc: tuple[Any, ...], body: Any) -> tuple[Any, ...]:
    """``loc`` without the tags pydantic adds for a member of a discriminated union: the error of
    ``{"task": {"type": "http.request", "url": 1}}`` is at ``task.url``, not ``task.http.request.url``.
    A tag is recognised by walking ``body``: a part before the last that is not a key of the
    object it is read from (the last one may be a missing field), or a last part that is not a
    key but the object's ``type`` (an error about the whole member: ``task``). A part that is both
    the object's ``type`` and one of its keys is a tag when the part after it is a key too (the
    error of ``{"type": "text", "text": ""}`` is at ``header.text``, not ``header.text.text``)."""
    if not loc or loc[0] != "body":
        return loc
    kept: list[Any] = [loc[0]]
    node = body
    last = len(loc) - 1
    for index, part in enumerate(loc[1:], start=1):
        if isinstance(node, dict) and part not in node and (index < last or part == node.get("type")):
            continue  # (the last part is the tag of an error about the member as a whole)
        if isinstance(node, dict) and index < last and part == node.get("type") and loc[index + 1] in node:
            continue  # a tag that is also a field's name: ``{"type": "text", "text": ...}``
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(kept)


#: What each problem+json status means wherever it is answered (an operation's own description
#: says when, for it).
_MEANINGS = {
    400: "The body could not be read: not UTF-8, or not JSON a parser can read (a number of more than 4,300 "
         "digits, nesting too deep).",
    401: "No `Authorization: Bearer <token>`, or a token that is not one of `CRONJOB_API_TOKENS` "
         "or `CRONJOB_API_READ_TOKENS` (`WWW-Authenticate` says which).",
    403: "Refused.",
    404: "No such resource: `detail` names what was not found.",
    408: "The body did not arrive within `CRONJOB_BODY_TIMEOUT_SECONDS` of the request's headers (fewer bytes "
         "than its `Content-Length`, or sent too slowly): nothing was done, and the connection is closed. "
         "Send it again (with the same `Idempotency-Key`, a creation is not made twice).",
    409: "The schedule is not in a state that allows this, or it kept changing under other writes (try "
         "again): `detail` says which.",
    413: "The body is larger than the service takes (`CRONJOB_MAX_BODY_BYTES`; a batch: "
         "`CRONJOB_MAX_BATCH_BODY_BYTES`).",
    415: "The body was not sent as JSON (`Content-Type: application/json`).",
    422: "Invalid input: `errors` names each wrong field and what is wrong with it.",
    503: "The schedule store does not answer, the service is starting and is setting it up, or this process "
         "is serving as many requests at once as it takes (`CRONJOB_MAX_REQUESTS_IN_FLIGHT`: nothing was done): "
         "`detail` says which. Try again after `Retry-After` seconds (with the same `Idempotency-Key`, a "
         "creation is not made twice).",
}
#: The headers some problems always carry.
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer`, or `Bearer error=\"invalid_token\"` for a token that is "
                                              "not known.", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "Seconds to wait before trying again.", "required": True,
                          "schema": {"type": "integer", "minimum": 0}}},
}
#: The name of :class:`Problem`'s schema in the OpenAPI document.
PROBLEM_SCHEMA = "Problem"


def problem_response(status: int, description: str | None = None,
                     headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI ``responses`` entry of a problem+json answer with ``status``: the
    :class:`Problem` schema, what the status means (or ``description``) and the headers it
    carries (``headers``, else those it always carries)."""
    entry: dict[str, Any] = {
        "description": description or _MEANINGS.get(status, "An error."),
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA}"}}},
    }
    if (headers := _HEADERS.get(status) if headers is None else headers):
        entry["headers"] = headers
    return entry


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of problem+json answers with ``statuses``."""
    return {status: problem_response(status) for status in statuses}


def document_problems(document: dict[str, Any]) -> None:
    """Add :class:`Problem`'s schema (which the ``responses`` of :func:`problem_response` name) to
    an OpenAPI ``document``."""
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in [*schema.pop("$defs", {}).items(), (PROBLEM_SCHEMA, schema)]:
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"the OpenAPI document already has another schema called {name}")


def validation_problem(errors: Sequence[dict[str, Any]], body: Any = None) -> JSONResponse:
    """A 422 naming each field, from pydantic-style errors (``loc``, ``msg``, ``type``) about
    ``body`` (the request's parsed body, when there is one): the first :data:`MAX_LISTED_ERRORS`
    of them, in the order they come (a list's items in order), and, when there were more, how
    many in all (``errors_total``, also said in the detail)."""
    listed = []
    for err in errors[:MAX_LISTED_ERRORS]:
        kind, loc = err.get("type"), _without_union_tags(tuple(err.get("loc", ())), body)
        if kind == "json_invalid":  # loc is ("body", <character offset>): not a field
            reason = (err.get("ctx") or {}).get("error", "")
            at = f" at character {loc[-1]}" if len(loc) > 1 else ""
            listed.append({"field": "body", "message": f"not valid JSON{at}" + (f": {reason}" if reason else "")})
            continue
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")  # pydantic's, for a ValueError
        if kind == "extra_forbidden":
            message = "unknown query parameter" if loc[:1] == ("query",) else "unknown field"
        listed.append({"field": error_field(_field(loc), err), "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in listed)
    if len(errors) <= MAX_LISTED_ERRORS:
        return problem(422, "Invalid request", detail, errors=listed)
    return problem(422, "Invalid request", f"{len(errors):,} errors, of which only the first {len(listed)} are "
                                           f"listed: {detail}", errors=listed, errors_total=len(errors))


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(exc.errors(), exc.body)


async def _domain_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return problem(422, "Invalid request", f"{exc.field or 'body'}: {exc.message}",
                   errors=[{"field": exc.field, "message": exc.message}])


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return problem(404, "Not found", str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return problem(409, "Conflict", str(exc))


class StoreNotReady(StoreUnavailable):
    """The service is starting: its store is not set up yet (the API waits for its indexes).
    Its message is the client's detail."""


async def _starting(_: Request, exc: Exception) -> JSONResponse:
    return problem(503, "Store unavailable", str(exc), headers={"Retry-After": "5"})


async def _store_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("store unavailable: %s: %s", type(exc).__name__, exc)  # why: a full disk, a lock, a host down
    return problem(503, "Store unavailable", "the schedule store did not answer; try again shortly",
                   headers={"Retry-After": "5"})


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _method_table(document: dict[str, Any]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each documented path (its ``{parameters}`` as one segment each) with its methods."""
    table = []
    for template, operations in document.get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        table.append((re.compile(pattern), frozenset(m.upper() for m in operations if m in _HTTP_METHODS)))
    return table


def _allowed_methods(request: Request, starlette_allow: str | None) -> str | None:
    """Every documented method of the request's path (else those Starlette names: a path left
    out of the document, such as ``/``), and HEAD with GET, for a 405's ``Allow`` (Starlette's
    own names only the methods of the first route that matched the path)."""
    state = request.app.state
    table = getattr(state, "method_table", None)
    if table is None:
        table = state.method_table = _method_table(request.app.openapi())
    path = request.url.path
    methods = {method for pattern, found in table if pattern.fullmatch(path) for method in found}
    if not methods and starlette_allow:
        methods = {method.strip().upper() for method in starlette_allow.split(",") if method.strip()}
    if "GET" in methods:
        methods.add("HEAD")  # answered wherever GET is (web.head), though not in the document
    return ", ".join(sorted(methods)) or None


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request, headers.get("Allow"))):
        headers["Allow"] = allowed
    detail = str(exc.detail)
    if exc.status_code == 400 and detail == _UNPARSABLE_BODY:
        detail = ("the body could not be parsed: it must be UTF-8 JSON, nested less than about 1,000 levels "
                  "deep, with numbers of at most 4,300 digits")
    return problem(exc.status_code, status_title(exc.status_code), detail, headers=headers)


#: Titles fixed here rather than taken from ``http.HTTPStatus``, whose phrases for these differ
#: between Python versions (413 is "Content Too Large" from 3.13 on).
_TITLES = {413: "Payload too large"}


def status_title(status: int) -> str:
    """The problem's title: the reason phrase of ``status``, in the API's sentence case."""
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase.capitalize()
    except ValueError:
        return "Error"


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return problem(500, "Internal error", "an unexpected error occurred; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error the API can raise to a problem+json response, and describe it in the
    app's OpenAPI document (:func:`document_problems`)."""
    extend_openapi(app, document_problems)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _domain_validation)
    app.add_exception_handler(ScheduleNotFound, _not_found)
    app.add_exception_handler(ScheduleConflict, _conflict)
    app.add_exception_handler(InvalidTransition, _conflict)
    app.add_exception_handler(StoreNotReady, _starting)  # the more specific class wins
    app.add_exception_handler(StoreUnavailable, _store_down)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
