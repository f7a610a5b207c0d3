"""Bearer-token authentication, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


class BearerTokens:
    """A FastAPI dependency that admits a request carrying one of ``tokens``.

    Every configured token is compared (``hmac.compare_digest``), so the time taken does not
    tell which one was close. A missing or wrong token is a 401 with ``WWW-Authenticate: Bearer``.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        cleaned = [t.strip() for t in tokens if t.strip()]
        if not cleaned:
            raise ValueError("at least one API token is required")
        self._tokens = [t.encode() for t in cleaned]
        self._scheme = HTTPBearer(auto_error=False, description="A token from CRONJOB_API_TOKENS")

    async def __call__(self, request: Request) -> None:
        credentials: HTTPAuthorizationCredentials | None = await self._scheme(request)
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode()
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(given, token)
        if not matched:
            raise HTTPException(401, "invalid bearer token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
