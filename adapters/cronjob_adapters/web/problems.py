"""RFC 9457 problem+json responses, and the handlers that turn errors into them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cronjob.domain.errors import InvalidTransition, ValidationError
from cronjob.ports.repository import StoreUnavailable
from cronjob.services.scheduling import ScheduleConflict, ScheduleNotFound

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response; ``errors`` lists ``{"field", "message"}`` pairs for validation."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts)


#: The OpenAPI ``responses`` entry of a problem+json answer.
PROBLEM_RESPONSE: dict[str, Any] = {"content": {PROBLEM_JSON: {}}, "description": "A problem+json document (RFC 9457)."}


def validation_problem(errors: Sequence[dict[str, Any]]) -> JSONResponse:
    """A 422 naming each field, from pydantic-style errors (``loc``, ``msg``, ``type``)."""
    listed = []
    for err in errors:
        message = "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
        listed.append({"field": _field(tuple(err.get("loc", ()))), "message": message})
    detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in listed)
    return problem(422, "Invalid request", detail, errors=listed)


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_problem(exc.errors())


async def _domain_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return problem(422, "Invalid request", f"{exc.field or 'body'}: {exc.message}",
                   errors=[{"field": exc.field, "message": exc.message}])


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return problem(404, "Not found", str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return problem(409, "Conflict", str(exc))


async def _store_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("store unavailable: %s", type(exc).__name__)
    return problem(503, "Store unavailable", "the schedule store did not answer; try again shortly",
                   headers={"Retry-After": "5"})


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = {401: "Unauthorized", 404: "Not found", 405: "Method not allowed", 413: "Payload too large"}
    return problem(exc.status_code, title.get(exc.status_code, "Error"), str(exc.detail),
                   headers=dict(exc.headers or {}))


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return problem(500, "Internal error", "an unexpected error occurred; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error the API can raise to a problem+json response."""
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _domain_validation)
    app.add_exception_handler(ScheduleNotFound, _not_found)
    app.add_exception_handler(ScheduleConflict, _conflict)
    app.add_exception_handler(InvalidTransition, _conflict)
    app.add_exception_handler(StoreUnavailable, _store_down)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
