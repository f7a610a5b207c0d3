"""Bearer-token authentication, compared in constant time.

No ``from __future__ import annotations`` here: FastAPI must see the dependency's annotation
(which names a local) as an object, not a string."""


import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

#: Where :func:`bearer_tokens` leaves the fingerprint of the token a request was admitted with
#: (``request.state``), for the events the request causes (see :mod:`cronjob_adapters.web.actors`).
FINGERPRINT_STATE = "token_fingerprint"


def token_fingerprint(token: str) -> str:
    """What names ``token`` in an audit trail without giving it away: ``token:`` and the first 12
    hex digits of its SHA-256 (``printf %s "$TOKEN" | sha256sum | cut -c1-12``), never the token or
    a part of it."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def bearer_tokens(tokens: Sequence[str]) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that admits a request carrying one of ``tokens``.

    Every configured token is compared (``hmac.compare_digest``), so the time taken does not
    tell which one was close. A missing or wrong token is a 401 with ``WWW-Authenticate: Bearer``.
    The scheme is declared through ``HTTPBearer`` so that the OpenAPI description shows it.
    The :func:`token_fingerprint` of the token that matched is left in ``request.state``
    (:data:`FINGERPRINT_STATE`), so that the events a request causes name which token made it.
    """
    expected = [(t.strip().encode(), token_fingerprint(t.strip())) for t in tokens if t.strip()]
    if not expected:
        raise ValueError("at least one API token is required")
    scheme = HTTPBearer(auto_error=False, description="A token from CRONJOB_API_TOKENS.")

    async def require_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode()
        found: str | None = None
        for token, fingerprint in expected:
            if hmac.compare_digest(given, token):
                found = fingerprint
        if found is None:
            raise HTTPException(401, "invalid bearer token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        setattr(request.state, FINGERPRINT_STATE, found)

    return require_token
