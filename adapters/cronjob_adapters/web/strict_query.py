"""Unknown query parameters are refused, as unknown body fields are.

``GET /v1/schedules?stauts=dead`` would otherwise answer with every schedule, unfiltered: a typo
must not widen what a request reads or acts on. Nor is a parameter of one value taken twice.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Annotated, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def takes_several(annotation: object) -> bool:
    """Whether a query parameter of type ``annotation`` takes every value given (a list, tuple or
    set, optional or annotated or not) rather than one. (FastAPI has such a test, but in a
    private module.)"""
    origin = get_origin(annotation)
    if origin is Annotated:
        return takes_several(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(takes_several(arg) for arg in get_args(annotation) if arg is not type(None))
    kind = origin or annotation
    return isinstance(kind, type) and (issubclass(kind, (Sequence, set, frozenset))
                                       and not issubclass(kind, (str, bytes, bytearray)))


def _query_names(dependant: Dependant) -> dict[str, bool]:
    """The query parameters of ``dependant`` and of its dependencies, by the name a client sends,
    each with whether it may be repeated (a list)."""
    names = {param.alias: takes_several(param.field_info.annotation) for param in dependant.query_params}
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
    # A parameter of one value given twice (``?status=dead&status=missed``) would silently mean
    # its last value only: refused too. (Lists, such as ``type``, take every value.)
    repeated = sorted({name for name in request.query_params
                       if not known.get(name, True) and len(request.query_params.getlist(name)) > 1})
    if unknown or repeated:
        raise RequestValidationError([
            *({"type": "extra_forbidden", "loc": ("query", name), "msg": "unknown query parameter",
               "input": None} for name in unknown),
            *({"type": "too_long", "loc": ("query", name), "msg": "given more than once; it takes one value",
               "input": None} for name in repeated),
        ])
