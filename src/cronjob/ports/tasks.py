"""Task handlers: what running a schedule of a given type means."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta

from cronjob.domain.schedule import Schedule


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """A successful run: the provider's id for what it did (a ``wamid``) and extra result fields."""

    provider_message_id: str | None = None
    result: dict[str, str] = field(default_factory=dict)


class TaskHandler(ABC):
    """Runs one occurrence of a schedule of ``task_type``.

    Contract: ``run`` returns a :class:`TaskOutcome` on success; raises
    :class:`cronjob.domain.message.DeliveryError` for a failure (``retryable`` as the peer's
    rules say) and :class:`cronjob.domain.message.DeliveryOutcomeUnknown` when it cannot tell
    whether the side effect happened. It does not write the schedule: the dispatcher does,
    fenced by the attempt id. It receives ``schedule.delivery_key`` as the idempotency key.
    """

    task_type: str

    @abstractmethod
    async def run(self, schedule: Schedule) -> TaskOutcome:
        """Run the schedule's current occurrence."""

    def hold_back(self, schedule: Schedule) -> timedelta | None:
        """How long ``schedule``'s run must wait before it starts, when this handler knows
        already that its peer would refuse it now (a provider's rate limit that concerns it);
        None (the default): run it. Called before the run is marked started, so a run held back
        records no ``started`` event (it is given back, due again then, no attempt spent): cheap,
        and never raises. A handler that learns it only in ``run`` raises DeliveryDeferred."""
        return None

    def run_timeout(self, schedule: Schedule) -> timedelta | None:
        """How long a run of ``schedule`` may take by this handler's own measure (a routine's
        declared limit), for a schedule without a limit of its own; None (the default): the
        replica's. Called once per run, before ``run``: cheap, and never raises."""
        return None
