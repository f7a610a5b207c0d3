"""The ``Cronjob-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<hex>...]``.

The signed text is ``"<t>.<raw body>"`` (the timestamp's digits, a dot, then the body's bytes
exactly as sent). There is one ``v1`` per configured secret, so during a rotation (old and new
secret both configured) a receiver holding either one verifies. A receiver checks that ``t`` is
recent (replays of an old delivery are refused) and compares in constant time.

:func:`verify` is the receiver-side reference (the tests and the README's example use it);
nothing in the service calls it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Cronjob-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
#: A ``t``: ASCII digits only (``str.isdigit`` also takes ``²``, which ``int`` refuses), and few of
#: them (``int`` refuses more than 4,300 digits; a header can carry that many).
_TIMESTAMP = re.compile(r"[0-9]{1,15}")


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds): one ``v1`` per secret,
    in the order given. Raises :class:`ValueError` without a secret (deliveries are never unsigned)."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of strings, not one string")
    usable = [s for s in secrets if s]
    if not usable:
        raise ValueError("at least one non-empty secret is needed to sign")
    if timestamp < 0:
        raise ValueError("the timestamp must not be negative")
    ts = int(timestamp)
    return ",".join([f"t={ts}", *(f"{SCHEME}={signature(body, secret, ts)}" for secret in usable)])


def parse(header: str) -> tuple[int, list[str]] | None:
    """``(t, [v1 signatures])`` from a header value, or None when it is malformed (no ``t``, more
    than one ``t``, a ``t`` that is not 1 to 15 ASCII digits). Unknown schemes are ignored."""
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        return None
    return int(timestamps[0]), signatures


def verify(
    header: str,
    body: bytes,
    secret: str,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (a ``Cronjob-Signature`` value) signs ``body`` with ``secret`` at a
    time within ``tolerance_seconds`` of ``now`` (unix seconds; default the machine's clock).

    Constant-time comparison; False for a malformed header, a stale (or far future) timestamp,
    or no matching ``v1``.
    """
    parsed = parse(header)
    if parsed is None or not secret:
        return False
    timestamp, signatures = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = signature(body, secret, timestamp).encode("ascii")
    matched = False
    for candidate in signatures:  # every candidate is compared: no early exit to time
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return matched
