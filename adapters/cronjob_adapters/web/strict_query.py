"""Unknown query parameters are refused, as unknown body fields are.

``GET /v1/schedules?stauts=dead`` would otherwise answer with every schedule, unfiltered: a typo
must not widen what a request reads or acts on.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters of ``dependant`` and of its dependencies, by the name a client sends."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


async def refuse_unknown_query_parameters(request: Request) -> None:
    """A FastAPI dependency: a 422 naming each query parameter the route does not declare."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)  # a few fields: cheaper than any cache keyed by route
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        raise RequestValidationError([
            {"type": "extra_forbidden", "loc": ("query", name), "msg": "unknown query parameter", "input": None}
            for name in unknown
        ])
