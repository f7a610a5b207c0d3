"""Running a plain ``def`` routine in a thread of its own, so that its blocking calls (a
synchronous database client, ``requests``, ``time.sleep``) hold up neither the event loop nor
the other runs, the lease renewals and the API that share it."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable

_log = logging.getLogger(__name__)

#: Per routine name, the threads still running a call whose run was given up (a time limit, a
#: shutdown): nothing can stop a thread, so they are counted, and a routine that keeps hanging
#: runs no more (see :func:`abandoned_threads`) rather than pile up threads until the process fails.
_abandoned: dict[str, int] = {}
_lock = threading.Lock()


def abandoned_threads(name: str) -> int:
    """How many threads still run a call of routine ``name`` whose run was given up."""
    with _lock:
        return _abandoned.get(name, 0)


class _Call:
    """Whether a call's thread has ended, and whether its run gave up waiting for it first."""

    __slots__ = ("ended", "abandoned")

    def __init__(self) -> None:
        self.ended = False
        self.abandoned = False


def is_async(function: Callable[..., object]) -> bool:
    """Whether ``function`` is an ``async def`` (also behind ``functools.partial``, or as the
    ``__call__`` of an object)."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(getattr(function, "__call__", None))


async def run_in_thread(name: str, function: Callable[..., object], *args: object) -> object:
    """``function(*args)`` in a daemon thread named ``routine <name>``, with this task's context
    variables (the log context), awaited without blocking the event loop; what it raises is
    raised here (``SystemExit`` and the like as a ``RuntimeError``: they end the run, not the
    service).

    Not ``asyncio.to_thread``: the default executor's few threads would queue runs behind one
    another, and they are joined when the process exits, so a routine that never returns would
    keep a stopped replica from exiting. Cancelled (a time limit, a shutdown), the awaiting
    ends; the thread cannot be stopped and runs on until the function returns, its outcome then
    dropped, and it is counted meanwhile in :func:`abandoned_threads` (with a warning)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[object] = loop.create_future()
    context = contextvars.copy_context()
    call = _Call()

    def settle(result: object, error: BaseException | None) -> None:
        if done.done():  # cancelled meanwhile: nobody waits for it any more
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def work() -> None:
        result: object = None
        error: BaseException | None = None
        try:
            result = context.run(function, *args)
        except Exception as exc:  # handed to the awaiting task, as an awaited routine's would be
            error = exc
        except BaseException as exc:  # sys.exit() in a routine ends its run, not the service
            error = RuntimeError(f"{type(exc).__name__}: {exc}")
        with _lock:
            call.ended = True
            if call.abandoned:
                _abandoned[name] -= 1
                if not _abandoned[name]:
                    del _abandoned[name]
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop has closed (the process is stopping): nobody to tell
            pass

    threading.Thread(target=work, name=f"routine {name}", daemon=True).start()
    try:
        return await done
    except asyncio.CancelledError:
        with _lock:
            if not call.ended:
                call.abandoned = True
                _abandoned[name] = still_running = _abandoned.get(name, 0) + 1
        if call.abandoned:
            _log.warning("routine %r: its run was given up while its thread runs on (a thread cannot be stopped); "
                         "%d such thread(s) of it now", name, still_running)
        raise
