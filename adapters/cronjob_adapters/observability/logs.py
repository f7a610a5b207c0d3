"""Logging set-up: one JSON object per line (or plain text), labelled with the run and the request."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from cronjob.services import log_context

#: The id of the HTTP request being served (set by the web adapter's middleware).
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_CONTEXT = {"schedule_id": log_context.schedule_id, "attempt_id": log_context.attempt_id,
            "request_id": request_id}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "schedule_id"?, "attempt_id"?, "request_id"?, "exc"?}``.

    Only the formatted message and these labels are written: the arguments of a log call are not
    dumped, so nothing leaks beyond what the message itself says (and messages never carry
    message bodies or credentials).
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in _CONTEXT.items():
            value = var.get()
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextContext(logging.Filter):
    """Adds `` [schedule_id=… attempt_id=… request_id=…]`` (those set) to plain-text lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        labels = [f"{k}={v.get()}" for k, v in _CONTEXT.items() if v.get() is not None]
        record.context = f" [{' '.join(labels)}]" if labels else ""
        return True


def configure_logging(level: str, fmt: Literal["json", "text"]) -> None:
    """Route every logger to stderr in ``fmt``, at ``level``; quiet the chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_TextContext())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s%(context)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; keep it at WARNING so logs stay about our work.
    for noisy in ("httpx", "httpcore", "pymongo", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
