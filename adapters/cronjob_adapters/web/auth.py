"""Bearer-token authentication, compared in constant time: full tokens, and read-only ones.

No ``from __future__ import annotations`` here: FastAPI must see the dependency's annotation
(which names a local) as an object, not a string."""


import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cronjob_adapters.web.problems import problem_response

#: Where :func:`bearer_tokens` leaves the fingerprint of the token a request was admitted with
#: (``request.state``), for the events the request causes (see :mod:`cronjob_adapters.web.actors`).
FINGERPRINT_STATE = "token_fingerprint"

#: The methods a read-only token may use: those that change nothing (HEAD is answered as GET).
READ_METHODS = frozenset({"GET", "HEAD"})

#: The ``detail`` of the 403 a read-only token gets on a route that changes something.
READ_ONLY_DETAIL = ("this token is read-only (CRONJOB_API_READ_TOKENS): it may only read (GET); a token from "
                    "CRONJOB_API_TOKENS may make changes")

#: What the 403 of a route that changes something means, for its OpenAPI description.
READ_ONLY_RESPONSE = ("The token is read-only (one of `CRONJOB_API_READ_TOKENS`), which may only read (`GET`): "
                      "nothing was done. Changes need a token of `CRONJOB_API_TOKENS`.")


def token_fingerprint(token: str) -> str:
    """What names ``token`` in an audit trail without giving it away: ``token:`` and the first 12
    hex digits of its SHA-256 (``printf %s "$TOKEN" | sha256sum | cut -c1-12``), never the token or
    a part of it."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _listed(tokens: Sequence[str]) -> list[str]:
    return [t.strip() for t in tokens if t.strip()]


def bearer_tokens(tokens: Sequence[str], read_tokens: Sequence[str] = ()) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that admits a request carrying one of ``tokens`` (full tokens), and
    a ``GET`` (or ``HEAD``) carrying one of ``read_tokens`` (read-only tokens).

    Every configured token of both lists is compared (``hmac.compare_digest``), so the time taken
    does not tell which one was close, nor whether one of either list was. A missing or wrong
    token is a 401 with ``WWW-Authenticate: Bearer``; a read-only token on any other method is a
    403 saying so (the token is right: the client must not be told to change it), before the
    route's other dependencies and its body's fields are checked. The scheme is declared through ``HTTPBearer`` so
    that the OpenAPI description shows it. The :func:`token_fingerprint` of the token that
    matched is left in ``request.state`` (:data:`FINGERPRINT_STATE`), so that the events a
    request causes name which token made it.
    A token in both lists is a ``ValueError``: a token is either full or read-only.
    """
    full, read = _listed(tokens), _listed(read_tokens)
    if not full:
        raise ValueError("at least one API token is required")
    if set(full) & set(read):
        raise ValueError("a token is both a full and a read-only API token")
    expected = [(t.encode(), token_fingerprint(t), False) for t in full]
    expected += [(t.encode(), token_fingerprint(t), True) for t in read]
    scheme = HTTPBearer(auto_error=False, description="A token from CRONJOB_API_TOKENS, or for reading only "
                                                      "(GET) from CRONJOB_API_READ_TOKENS.")

    async def require_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode()
        found: tuple[str, bool] | None = None
        for token, fingerprint, read_only in expected:
            if hmac.compare_digest(given, token):
                found = fingerprint, read_only
        if found is None:
            raise HTTPException(401, "invalid bearer token",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        fingerprint, read_only = found
        setattr(request.state, FINGERPRINT_STATE, fingerprint)
        if read_only and request.method not in READ_METHODS:
            raise HTTPException(403, READ_ONLY_DETAIL)

    return require_token


def document_read_only_refusal(document: dict[str, Any]) -> None:
    """Add the 403 a read-only token gets to every operation of an OpenAPI ``document`` that is
    behind the token (has a ``security`` requirement) and may change something (any method but
    GET and HEAD), as :func:`bearer_tokens` answers it."""
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method.upper() in _OPERATION_METHODS - READ_METHODS and operation.get("security"):
                operation["responses"].setdefault("403", problem_response(403, READ_ONLY_RESPONSE))


#: The members of an OpenAPI path item that are operations (the others: parameters, summary, ...).
_OPERATION_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})
