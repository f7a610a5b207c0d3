"""What the core measures; an adapter exports it (Prometheus)."""

from __future__ import annotations

from abc import ABC, abstractmethod

#: The limit of :meth:`Metrics.request_refused`: as many requests in progress as a process serves at once.
IN_FLIGHT_LIMIT = "max_requests_in_flight"


class Metrics(ABC):
    """Receives measurements from the dispatcher, the webhook notifier, the provider's statuses and
    the API's requests.

    Contract: every method returns at once, never raises and never blocks on I/O; labels are
    low-cardinality (task types, outcomes, provider codes — never ids or recipients).
    """

    @abstractmethod
    def dispatched(self, task_type: str, lateness_seconds: float) -> None:
        """A run started ``lateness_seconds`` after its due time (only a run that starts: not one
        found too late to run, ``missed``, nor one its handler held back)."""

    @abstractmethod
    def run_took(self, task_type: str, seconds: float) -> None:
        """A run's task ended ``seconds`` after it started, whatever its outcome (stopped at its
        time limit included; not one a shutdown cut short)."""

    @abstractmethod
    def attempt_finished(self, task_type: str, outcome: str, code: str | None) -> None:
        """A run ended with ``outcome`` (succeeded, retrying, failed, unknown, missed, ...) and the
        provider's error ``code`` when there was one."""

    @abstractmethod
    def lease_taken_over(self, task_type: str) -> None:
        """A replica claimed work whose previous owner's lease had lapsed."""

    @abstractmethod
    def in_flight(self, count: int) -> None:
        """This replica now has ``count`` runs in progress."""

    @abstractmethod
    def webhook_delivered(self, outcome: str) -> None:
        """A status webhook delivery ended with ``outcome`` ``delivered`` or ``skipped`` (its event
        was never stored: the write that would have recorded it failed). Deliveries that fail
        are reported like every run, through :meth:`attempt_finished` (``webhook.delivery``)."""

    @abstractmethod
    def provider_status(self, outcome: str) -> None:
        """A status the messaging provider reported (WhatsApp's webhook) was ``recorded``,
        ``ignored`` (a duplicate, or not a known status), ``parked`` (its message is not recorded
        yet), ``superseded`` (parked while its schedule ran again, which then recorded a later
        send), ``unmatched`` (still unknown when its wait was over) or ``dropped`` (unknown, and
        statuses are not kept to wait)."""

    def clock_offset(self, seconds: float) -> None:
        """This process's host clock is ``seconds`` ahead of the store's (negative: behind), as last
        measured (see :mod:`cronjob.services.clock_check`). Not abstract: it measures nothing
        unless an exporter shows it."""
        return None

    @abstractmethod
    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """The API answered a request to ``route`` (a path template, ``/v1/schedules/{schedule_id}``,
        never a path with an id in it; ``unmatched`` when no route matched) with ``status``, in
        ``seconds``."""

    def request_refused(self, limit: str) -> None:
        """The API refused a request, before anything was done, because this process was at
        ``limit`` (:data:`IN_FLIGHT_LIMIT`: as many requests in progress as it serves at once).
        Not abstract: it measures nothing unless an exporter shows it."""
        return None


class NullMetrics(Metrics):
    """Measures nothing (the default where no exporter is configured)."""

    def dispatched(self, task_type: str, lateness_seconds: float) -> None:
        return None

    def run_took(self, task_type: str, seconds: float) -> None:
        return None

    def attempt_finished(self, task_type: str, outcome: str, code: str | None) -> None:
        return None

    def lease_taken_over(self, task_type: str) -> None:
        return None

    def in_flight(self, count: int) -> None:
        return None

    def webhook_delivered(self, outcome: str) -> None:
        return None

    def provider_status(self, outcome: str) -> None:
        return None

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        return None
