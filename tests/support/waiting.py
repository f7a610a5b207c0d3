"""Waiting in tests for something to happen, with one generous bound for "promptly".

``until`` polls a predicate on the event loop (async tests); ``wait_until`` polls one from a
plain thread (tests that drive other processes over HTTP or files).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Generous bound for "promptly" / "within about one poll interval": far above any scheduling
#: noise on a loaded two-core CI machine, far below the poll intervals the tests call long.
PROMPTLY = 5.0


async def until(predicate: Callable[[], bool], timeout: float = PROMPTLY, interval: float = 0.005) -> None:
    """Return once ``predicate()`` holds; TimeoutError when it still does not after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(interval)


def wait_until(predicate: Callable[[], bool], timeout: float = PROMPTLY, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` (blocking) until it holds or ``timeout`` seconds passed; whether it held.

    The caller asserts the result, with a message that says what it was waiting for."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
