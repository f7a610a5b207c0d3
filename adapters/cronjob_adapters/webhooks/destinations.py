"""How many status webhook deliveries one replica has in flight per slow destination.

A destination is a callback URL's origin: scheme, host and port. A receiver that answers slowly,
or not at all (each delivery then holds its slot for its whole timeout), must not take every
webhook slot of the replica and hold back the deliveries to every other receiver. So while a
destination is slow (a delivery to it has been running for ``slow_after`` seconds, or its runs
took that long lately), or not yet heard from (no run to it has ended: it may hang from the
first), at most ``limit`` deliveries to it are in flight at once; the others are
held back before they start (:meth:`~cronjob.ports.tasks.TaskHandler.hold_back`: given back to
the store, due again a little later, no attempt spent), which frees their slot for the
deliveries to other receivers.

A destination that answers promptly has no limit of its own: a backlog to one receiver that
keeps up (every event to the one ``CRONJOB_WEBHOOK_URLS`` entry) goes out at the replica's whole
webhook rate. Holding its deliveries back would only have them claimed and given back over and
over, each a write to the store, while the slots stay free.

Held back, a delivery waits about as long as the destination takes to free a slot: how long its
runs took lately, or how long the oldest one in flight has been running; from ``pause`` (a
quarter of a second) up to ``max_pause`` (30 s), spread by a quarter either way so that a
backlog comes back spread out, not at once. (Not longer for a longer backlog: a receiver that
keeps up but was taken for a slow one, its runs slowed by a busy replica, would have its
backlog pushed half a minute away.) Deliveries to one destination are not kept in order
(receivers order status webhooks by their ``at``). A destination's average run time is kept
while it is idle (a receiver that was slow a moment ago is not taken for a fast one), for at
most 10,000 destinations.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: A destination: (scheme, host, port).
Origin = tuple[str, str, int]

DEFAULT_LIMIT = 4
DEFAULT_SLOW_AFTER = 1.0
DEFAULT_PAUSE = 0.25
DEFAULT_MAX_PAUSE = 30.0
#: An admission whose run never began (it always begins at once) is given up after this long.
_ADMISSION_LAPSES = 10.0
#: Destinations with nothing in flight are kept (for their average run time) up to this many.
_KEPT = 10_000
#: The weight of the latest run in a destination's average run time.
_WEIGHT = 0.2
#: How far a wait is spread either way, as a share of it.
_SPREAD = 0.25


@dataclass(slots=True)
class _Destination:
    """One destination's slots: those admitted whose run has not begun and the runs in progress
    (delivery id -> when, monotonic), and the average time its runs took (None until one ended)."""

    admitted: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    took: float | None = None

    def holds(self, delivery_id: str) -> bool:
        return delivery_id in self.admitted or delivery_id in self.started

    def in_flight(self) -> int:
        return len(self.admitted) + len(self.started)


class DestinationLimit:
    """At most ``limit`` deliveries in flight per slow destination (see the module's docstring).

    ``admit`` is the hold-back decision, ``enter`` and ``leave`` bracket the run. ``now`` is a
    monotonic clock in seconds; ``jitter`` a number in [0, 1) that spreads the waits.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT, *, slow_after: float = DEFAULT_SLOW_AFTER,
                 pause: float = DEFAULT_PAUSE, max_pause: float = DEFAULT_MAX_PAUSE,
                 now: Callable[[], float] = time.monotonic, jitter: Callable[[], float] = random.random) -> None:
        if limit < 1:
            raise ValueError("the limit per destination must be at least 1")
        self.limit = limit
        self.pause = pause
        self._slow_after = slow_after
        self._max_pause = max_pause
        self._now = now
        self._jitter = jitter
        self._destinations: dict[Origin, _Destination] = {}

    def admit(self, origin: Origin, delivery_id: str) -> float | None:
        """None: ``delivery_id`` may run now (its slot is taken until :meth:`leave`); else how many
        seconds to hold it back, ``origin`` being slow and as many in flight as it may have."""
        now = self._now()
        destination = self._destinations.setdefault(origin, _Destination())
        self._forget(destination, now)
        if destination.holds(delivery_id) or self._room(destination, now):
            if delivery_id not in destination.started:
                destination.admitted.setdefault(delivery_id, now)
            return None
        wait = min(max(self._pace(destination, now), self.pause), self._max_pause)
        return wait * (1 - _SPREAD + 2 * _SPREAD * self._jitter())

    def enter(self, origin: Origin, delivery_id: str) -> bool:
        """The run of ``delivery_id`` begins: True when it holds a slot (admitted, or there is room)."""
        now = self._now()
        destination = self._destinations.setdefault(origin, _Destination())
        if not destination.holds(delivery_id):
            self._forget(destination, now)
            if not self._room(destination, now):
                return False
        destination.admitted.pop(delivery_id, None)
        destination.started[delivery_id] = now
        return True

    def leave(self, origin: Origin, delivery_id: str) -> None:
        """The run of ``delivery_id`` ended (however): its slot is free."""
        destination = self._destinations.get(origin)
        if destination is None:
            return
        destination.admitted.pop(delivery_id, None)
        started = destination.started.pop(delivery_id, None)
        if started is not None:
            took = self._now() - started
            destination.took = took if destination.took is None else (1 - _WEIGHT) * destination.took + _WEIGHT * took
        if len(self._destinations) > _KEPT:
            self._destinations = {o: d for o, d in self._destinations.items() if d.in_flight()}

    def in_flight(self, origin: Origin) -> int:
        """How many deliveries to ``origin`` hold a slot."""
        destination = self._destinations.get(origin)
        return destination.in_flight() if destination is not None else 0

    def _room(self, destination: _Destination, now: float) -> bool:
        """Whether one more delivery may run: below the limit, or the destination is known not to
        be slow (one never heard from yet may well hang: the limit holds until a run ends)."""
        if destination.in_flight() < self.limit:
            return True
        return destination.took is not None and self._pace(destination, now) < self._slow_after

    @staticmethod
    def _pace(destination: _Destination, now: float) -> float:
        """About how long a run to ``destination`` takes: its recent average, or, while a run in
        flight has been going for longer (a receiver that stopped answering), that run's age."""
        oldest = min(destination.started.values(), default=now)
        return max(destination.took or 0.0, now - oldest)

    @staticmethod
    def _forget(destination: _Destination, now: float) -> None:
        """Drop the admissions whose run never began."""
        for delivery_id, admitted in list(destination.admitted.items()):
            if admitted + _ADMISSION_LAPSES < now:
                del destination.admitted[delivery_id]
