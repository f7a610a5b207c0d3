"""Who made a request, for the events it causes: the fingerprint of the bearer token that
admitted it and its ``X-Request-ID`` (``data.by``, ``data.request_id``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cronjob.domain.actor import Actor

from cronjob_adapters.observability.logs import request_id
from cronjob_adapters.web.auth import FINGERPRINT_STATE


def request_actor(request: Request) -> Actor:
    """A FastAPI dependency of the routes behind the bearer token: the :class:`Actor` of the
    request, named by the fingerprint the token check left (never the token) and by the id
    :class:`~cronjob_adapters.web.request_id.RequestId` gave it."""
    fingerprint = getattr(request.state, FINGERPRINT_STATE, None)
    if fingerprint is None:  # a route outside the token check: a mistake of this code, not the client's
        raise RuntimeError("request_actor needs the bearer token dependency to run first")
    return Actor(by=fingerprint, request_id=request_id.get())


#: A route's parameter that takes the request's :class:`Actor` (see :func:`request_actor`).
RequestActor = Annotated[Actor, Depends(request_actor)]
