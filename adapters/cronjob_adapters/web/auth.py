"""Bearer-token authentication, compared in constant time.

No ``from __future__ import annotations`` here: FastAPI must see the dependency's annotation
(which names a local) as an object, not a string."""


import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


def bearer_tokens(tokens: Sequence[str]) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that admits a request carrying one of ``tokens``.

    Every configured token is compared (``hmac.compare_digest``), so the time taken does not
    tell which one was close. A missing or wrong token is a 401 with ``WWW-Authenticate: Bearer``.
    The scheme is declared through ``HTTPBearer`` so that the OpenAPI description shows it.
    """
    expected = [t.strip().encode() for t in tokens if t.strip()]
    if not expected:
        raise ValueError("at least one API token is required")
    scheme = HTTPBearer(auto_error=False, description="A token from CRONJOB_API_TOKENS.")

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode()
        matched = False
        for token in expected:
            matched |= hmac.compare_digest(given, token)
        if not matched:
            raise HTTPException(401, "invalid bearer token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    return require_token
