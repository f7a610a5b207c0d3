"""Task handlers: what running a schedule of a given type means."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

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
