"""Meta's error answers -> :class:`DeliveryError`, with Meta's rules for what is worth retrying. Pure.

A Graph error body is ``{"error": {"message", "type", "code", "error_subcode", "error_data":
{"details"}, "fbtrace_id", "is_transient"}}``. Meta asks clients to decide on ``code`` (not the
HTTP status, not the deprecated subcode): rate limits come back as HTTP 400 with codes 4, 80007,
130429 or 131056, so the status alone would call them permanent.

Meta's texts are kept (``message`` and ``details`` are what tells an operator what to fix) but
they are shown wherever a schedule is (its ``last_error``, its events, the status webhooks to
``callback_url``), and Graph quotes the access token it could not read (code 190, ``Malformed
access token <token>``): :func:`error_from_response` replaces the ``secrets`` it is given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cronjob.domain.message import DeliveryError
from cronjob_adapters.retry_after import parse_retry_after, retryable_status

#: Throttling codes and what is throttled: wait and send again.
RATE_LIMIT_SCOPES: dict[int, str] = {
    4: "app",  # API Too Many Calls
    17: "user",  # User request limit reached (Graph)
    80007: "business_account",  # WABA rate limit
    130429: "phone_number",  # Cloud API throughput reached
    131056: "recipient",  # (business, consumer) pair rate limit: only this recipient waits
}

#: Temporary failures on Meta's side ("try again").
TRANSIENT_CODES: frozenset[int] = frozenset({
    2,  # API Service: downtime or overload
    131000,  # Something went wrong (unknown error, "try again")
    131016,  # Service unavailable
    131057,  # Business account in maintenance mode
    133004,  # Server temporarily unavailable
})

#: Failures that sending the same message again cannot fix (besides every other 4xx).
PERMANENT_CODES: frozenset[int] = frozenset({
    0, 3, 10,  # authentication / capability / permission
    100,  # invalid parameter
    190,  # access token expired or invalid
    368,  # temporarily blocked for policy violations (needs a human)
    130497,  # business restricted from messaging this country
    131008, 131009,  # required parameter missing / parameter value invalid
    131021,  # recipient cannot be sender
    131026,  # message undeliverable (not a WhatsApp user, old client, ToS not accepted)
    131031,  # account locked
    131042,  # payment issue
    131047,  # re-engagement: more than 24 h since the user last replied
    131048,  # spam rate limit: restricted for quality, not for a moment
    131049,  # Meta chose not to deliver (per-user marketing limit)
    131051,  # unsupported message type
})


def is_retryable(code: int, *, http_status: int, is_transient: bool | None = None) -> bool:
    """Whether a Graph error ``code`` is worth sending again: Meta's code first, then the
    ``is_transient`` hint, then the HTTP status (408, 429 and 5xx retry)."""
    if code in RATE_LIMIT_SCOPES or code in TRANSIENT_CODES:
        return True
    if code in PERMANENT_CODES or 200 <= code <= 299 or 132000 <= code <= 132999:
        return False  # 2xx codes: API permission; 132xxx: template errors
    if is_transient is not None:
        return is_transient
    return retryable_status(http_status)


#: What stands for a secret in Meta's texts.
REDACTED = "***"


def error_from_response(
    http_status: int, body: bytes, *, retry_after: str | None = None, now: datetime | None = None,
    secrets: Sequence[str] = (),
) -> DeliveryError:
    """The :class:`DeliveryError` for a non-2xx answer (``body`` as received), each of ``secrets``
    (the access token) replaced by ``***`` wherever Meta's texts quote it."""
    wait = parse_retry_after(retry_after, now=now)
    error = _graph_error(body)
    code = _int(error.get("code")) if error is not None else None
    if error is None or code is None:
        return DeliveryError(
            f"http_{http_status}",
            f"HTTP {http_status} without a Graph error body",
            retryable=retryable_status(http_status),
            http_status=http_status,
            retry_after_seconds=wait,
        )
    transient = error.get("is_transient")
    return DeliveryError(
        str(code),
        _redacted(str(error.get("message") or f"Graph error {code}"), secrets),
        retryable=is_retryable(
            code, http_status=http_status, is_transient=transient if isinstance(transient, bool) else None
        ),
        http_status=http_status,
        retry_after_seconds=wait,
        details={key: _redacted(value, secrets) for key, value in _details(error, code).items()},
    )


def _redacted(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _graph_error(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _details(error: dict[str, Any], code: int) -> dict[str, str]:
    error_data = error.get("error_data")
    found = {
        "fbtrace_id": error.get("fbtrace_id"),
        "error_subcode": error.get("error_subcode"),
        "type": error.get("type"),
        "details": error_data.get("details") if isinstance(error_data, dict) else None,
        "scope": RATE_LIMIT_SCOPES.get(code),
    }
    return {key: str(value) for key, value in found.items() if value is not None and value != ""}
