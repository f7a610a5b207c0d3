"""How many status webhook deliveries one replica has in flight per destination.

A destination is a callback URL's origin: scheme, host and port. A receiver that answers slowly,
or not at all (each delivery then holds its slot for its whole timeout), must not take every
webhook slot of the replica and hold back the deliveries to every other receiver. So at most
``limit`` deliveries to one destination are in flight at once; the others are held back before
they start (:meth:`~cronjob.ports.tasks.TaskHandler.hold_back`: given back to the store, due again
a little later, no attempt spent), which frees their slot for the deliveries to other receivers.

Held back, a delivery waits in its destination's line, ordered by when it was created: while
earlier ones of the line wait, a later one is held back behind them even if a slot is free, and
each is due again after those ahead of it: it waits about as long as the destination takes to
free a slot for it (how long its deliveries took lately, or have been running, times its place
in the line over ``limit``; from ``pause``, a quarter of a second, up to ``max_pause``, 30 s). So
a long line is not claimed and given back over and over (about as many deliveries come due again
as the destination could take), and deliveries to one destination keep their order as far as
the store's due order keeps it. The line is this replica's memory: a
delivery another replica took over (or that was cancelled) leaves it once it has not come back
for a while (``_FORGET_AFTER``). A destination's average run time is kept while it is idle (so a
receiver that was slow a moment ago is not taken for a fast one), for at most 10,000 of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

#: A destination: (scheme, host, port).
Origin = tuple[str, str, int]
#: The order of a line: (created at, delivery id).
LineKey = tuple[datetime, str]

DEFAULT_LIMIT = 4
DEFAULT_PAUSE = 0.25
DEFAULT_MAX_PAUSE = 30.0
#: A place in line is given up this long after its delivery was due again without coming back.
_FORGET_AFTER = 10.0
#: An admission whose run never began (it always begins at once) is given up after this long.
_ADMISSION_LAPSES = 10.0
#: Between two places in line: distinct due times in the store's millisecond, in the line's order.
_SPACING = 0.002
#: Destinations with nothing in flight or in line are kept (for their average run time) up to this many.
_KEPT = 10_000
#: The weight of the latest run in a destination's average run time.
_WEIGHT = 0.2


@dataclass(slots=True)
class _Destination:
    """One destination's runs (delivery id -> when it was admitted, monotonic; None once it runs,
    with its start in ``started``), its line (delivery id -> (order, when it is due again)) and
    the average time its runs took (None until one ended)."""

    slots: dict[str, float | None] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    line: dict[str, tuple[LineKey, float]] = field(default_factory=dict)
    took: float | None = None

    def idle(self) -> bool:
        return not self.slots and not self.line


class DestinationLimit:
    """At most ``limit`` deliveries in flight per destination (see the module's docstring).

    ``admit`` is the hold-back decision, ``enter`` and ``leave`` bracket the run. ``now`` is a
    monotonic clock in seconds.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT, *, pause: float = DEFAULT_PAUSE,
                 max_pause: float = DEFAULT_MAX_PAUSE, now: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("the limit per destination must be at least 1")
        self.limit = limit
        self.pause = pause
        self._max_pause = max_pause
        self._now = now
        self._destinations: dict[Origin, _Destination] = {}

    def admit(self, origin: Origin, delivery_id: str, key: LineKey) -> float | None:
        """None: ``delivery_id`` may run now (its slot is taken until :meth:`leave`); else how many
        seconds to hold it back, in line behind the earlier deliveries to ``origin``."""
        now = self._now()
        destination = self._destinations.setdefault(origin, _Destination())
        self._forget(destination, now)
        ahead = sum(1 for other, (order, _) in destination.line.items() if order < key and other != delivery_id)
        if ahead == 0 and (delivery_id in destination.slots or len(destination.slots) < self.limit):
            destination.line.pop(delivery_id, None)
            destination.slots.setdefault(delivery_id, now)
            return None
        wait = min(self._pace(destination, now) * (1 + ahead // self.limit), self._max_pause) + ahead * _SPACING
        destination.line[delivery_id] = (key, now + wait)
        return wait

    def enter(self, origin: Origin, delivery_id: str) -> bool:
        """The run of ``delivery_id`` begins: True when it holds a slot (admitted, or one was free)."""
        now = self._now()
        destination = self._destinations.setdefault(origin, _Destination())
        if delivery_id not in destination.slots:
            self._forget(destination, now)
            if len(destination.slots) >= self.limit:
                return False
        destination.slots[delivery_id] = None
        destination.started[delivery_id] = now
        destination.line.pop(delivery_id, None)
        return True

    def leave(self, origin: Origin, delivery_id: str) -> None:
        """The run of ``delivery_id`` ended (however): its slot is free."""
        destination = self._destinations.get(origin)
        if destination is None:
            return
        destination.slots.pop(delivery_id, None)
        started = destination.started.pop(delivery_id, None)
        if started is not None:
            took = self._now() - started
            destination.took = took if destination.took is None else (1 - _WEIGHT) * destination.took + _WEIGHT * took
        if len(self._destinations) > _KEPT:
            self._destinations = {o: d for o, d in self._destinations.items() if not d.idle()}

    def in_flight(self, origin: Origin) -> int:
        """How many deliveries to ``origin`` hold a slot."""
        destination = self._destinations.get(origin)
        return len(destination.slots) if destination is not None else 0

    def _pace(self, destination: _Destination, now: float) -> float:
        """About how long a run to ``destination`` takes: its recent average, or, while the runs
        in flight have been going for longer (a receiver that stopped answering), their age;
        ``pause`` at least."""
        oldest = min(destination.started.values(), default=now)
        return max(destination.took or 0.0, now - oldest, self.pause)

    @staticmethod
    def _forget(destination: _Destination, now: float) -> None:
        """Drop the places in line of deliveries that did not come back, and admissions whose run
        never began."""
        for delivery_id, (_, due) in list(destination.line.items()):
            if due + _FORGET_AFTER < now:
                del destination.line[delivery_id]
        for delivery_id, admitted in list(destination.slots.items()):
            if admitted is not None and admitted + _ADMISSION_LAPSES < now:
                del destination.slots[delivery_id]
