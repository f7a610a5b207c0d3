"""Random ids for the stores' claims."""

from __future__ import annotations

import os


def attempt_ids(count: int) -> list[str]:
    """``count`` fresh random 128-bit attempt ids, as 32 hex digits (one system call for all)."""
    raw = os.urandom(16 * count).hex()
    return [raw[i : i + 32] for i in range(0, 32 * count, 32)]
