"""Full garbage collections of a scheduler process, moved to the moments it has nothing to do.

CPython starts a full (generation 2) collection on its own once enough objects have survived
into the oldest generation, wherever the program happens to be. A full pass walks every
tracked object: with 100,000 schedules in the in-memory store that is several hundred
milliseconds during which no due job starts. The :class:`QuietCollector` switches those
automatic passes off and runs them when the engine is about to sleep anyway (nothing due for
a while), or, under load with no such pause, at least every ``max_interval`` seconds so that
cyclic garbage stays bounded. The young generations are collected by CPython as usual.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: A gen-2 threshold CPython never reaches: no automatic full collection.
_NEVER = 2**31 - 1


def freeze_start_up_heap() -> None:
    """Move what the process holds once it has started (modules, classes, the app, its schemas:
    never garbage) out of the collector's reach, so that full collections, whoever starts them,
    walk only what was made since. :func:`gc.unfreeze` gives it back."""
    gc.collect()
    gc.freeze()


class QuietCollector:
    """Runs full garbage collections when the scheduler loop is quiet.

    ``install`` freezes what the process holds at start-up (modules, classes: they are never
    garbage) and stops automatic full collections. Before it sleeps, the engine asks
    ``should_collect(seconds)``: yes when at least ``min_quiet`` seconds with nothing due lie
    ahead (and twice the last full pass, so that it fits) and a collection is owed (CPython's
    own trigger: ten generation-1 passes since the last full one), or, busy or not, when the
    last full one is ``max_interval`` seconds old and any generation-1 pass happened since; the
    engine then lets the runs it just started begin and calls :meth:`collect`. ``uninstall``
    puts the thresholds and the frozen objects back.
    """

    def __init__(
        self,
        *,
        min_quiet: float = 0.2,
        max_interval: float = 300.0,
        owed_after: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._min_quiet = min_quiet
        self._max_interval = max_interval
        self._owed_after = owed_after
        self._monotonic = monotonic
        self._young_passes = 0  # generation-1 collections since the last full one
        self._last_full = monotonic()
        self._installed = False
        self.full_collections = 0  # how many this collector ran (for tests and logs)
        self.last_pause = 0.0  # seconds the last full collection it ran took

    #: The thresholds before the first of the collectors installed in this process (a process
    #: normally has one; tests may run several), restored when the last one is uninstalled.
    _original_threshold: tuple[int, int, int] | None = None
    _active = 0

    def install(self) -> None:
        """Freeze the start-up heap and take the full collections over (idempotent)."""
        if self._installed:
            return
        cls = QuietCollector  # process-wide, subclasses included
        if cls._active == 0:
            freeze_start_up_heap()
            cls._original_threshold = gc.get_threshold()
            young, middle, _ = cls._original_threshold
            gc.set_threshold(young, middle, _NEVER)
        cls._active += 1
        self._installed = True
        gc.callbacks.append(self._count)
        self._last_full = self._monotonic()
        self._young_passes = 0

    def uninstall(self) -> None:
        """Give the full collections back to CPython once no collector is installed (idempotent)."""
        if not self._installed:
            return
        self._installed = False
        if self._count in gc.callbacks:
            gc.callbacks.remove(self._count)
        cls = QuietCollector  # process-wide, subclasses included
        cls._active -= 1
        if cls._active == 0 and cls._original_threshold is not None:
            gc.set_threshold(*cls._original_threshold)
            cls._original_threshold = None
            gc.unfreeze()

    @property
    def owed(self) -> bool:
        """Whether CPython would have considered a full collection by now."""
        return self._young_passes >= self._owed_after

    def should_collect(self, idle_seconds: float) -> bool:
        """Whether to collect now, the engine being about to sleep ``idle_seconds`` with nothing
        due meanwhile (0 when it only waits for a moment or for a free slot)."""
        if not self._installed or not self._young_passes:
            return False
        # A pause must fit in the idle time: at least min_quiet, and twice the last full pass.
        if idle_seconds >= max(self._min_quiet, 2 * self.last_pause) and self.owed:
            return True
        return self._monotonic() - self._last_full >= self._max_interval

    def collect(self) -> None:
        """Run a full collection now."""
        started = time.perf_counter()
        found = gc.collect()
        self.last_pause = time.perf_counter() - started
        self.full_collections += 1
        self._last_full = self._monotonic()
        self._young_passes = 0
        log.debug("full garbage collection: %d unreachable, %.1f ms", found, self.last_pause * 1000)

    def _count(self, phase: str, info: dict[str, int]) -> None:
        if phase != "stop":
            return
        if info["generation"] == 1:
            self._young_passes += 1
        elif info["generation"] == 2:
            self._young_passes = 0
