"""Context for log records: which schedule and attempt the current task works on.

Each run is its own asyncio task, and tasks copy the context they start in, so setting these in
a run labels every log line of that run (the JSON log formatter reads them) and no other.
"""

from __future__ import annotations

from contextvars import ContextVar

schedule_id: ContextVar[str | None] = ContextVar("schedule_id", default=None)
attempt_id: ContextVar[str | None] = ContextVar("attempt_id", default=None)
