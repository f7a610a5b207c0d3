"""Health: is the service alive, and does its store answer."""

from __future__ import annotations

from dataclasses import dataclass

from cronjob.ports.repository import ScheduleRepository, StoreUnavailable


@dataclass(frozen=True, slots=True)
class HealthReport:
    """``alive`` is always True when the process can answer; ``store_ok`` tells whether the store did."""

    alive: bool
    store_ok: bool
    store_error: str | None = None


class HealthService:
    """Checks the store with its ``ping``."""

    def __init__(self, repository: ScheduleRepository) -> None:
        self._repository = repository

    async def check(self) -> HealthReport:
        """Ping the store; never raises."""
        try:
            await self._repository.ping()
        except StoreUnavailable as exc:
            return HealthReport(alive=True, store_ok=False, store_error=str(exc) or type(exc).__name__)
        return HealthReport(alive=True, store_ok=True)
