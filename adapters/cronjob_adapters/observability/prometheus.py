"""The Metrics port exported in Prometheus' text format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from collections.abc import Mapping

from cronjob.domain.schedule import ScheduleStatus
from cronjob.ports.metrics import IN_FLIGHT_LIMIT, Metrics

from cronjob_adapters.webhooks.delivery import TASK_TYPE as WEBHOOK_DELIVERY

#: A run's lateness and its time (seconds): 5 ms to an hour, the default misfire grace (how late
#: a one-off may still start) and the default run time limit.
_RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: An API answer: a millisecond (a probe) to seconds (a batch of 1,000, a bulk change).
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PrometheusMetrics(Metrics):
    """Counters, gauges and histograms in a registry of their own (one per process).

    ``cronjob_schedules`` (by status and task type) is read from the store when scraped, so any
    replica reports the cluster-wide figure.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lateness = Histogram(
            "cronjob_dispatch_lateness_seconds", "How long after its due time a run started.",
            ["task_type"], buckets=_RUN_BUCKETS, registry=self.registry)
        self._run_seconds = Histogram(
            "cronjob_run_duration_seconds", "How long a run's task took, whatever its outcome.",
            ["task_type"], buckets=_RUN_BUCKETS, registry=self.registry)
        self._attempts = Counter(
            "cronjob_attempts", "Finished runs by outcome and provider error code.",
            ["task_type", "outcome", "code"], registry=self.registry)
        self._takeovers = Counter(
            "cronjob_lease_takeovers", "Claims of work whose previous owner's lease had lapsed.",
            ["task_type"], registry=self.registry)
        self._in_flight = Gauge("cronjob_in_flight", "Runs in progress in this replica.",
                                registry=self.registry)
        self._clock_offset = Gauge("cronjob_clock_offset_seconds", "How far this host's clock is ahead of "
                                   "the store's (negative: behind), as last measured; 0 where the store "
                                   "shares this host's clock.", registry=self.registry)
        self._webhooks = Counter("cronjob_webhook_deliveries", "Status webhook deliveries by outcome.",
                                 ["outcome"], registry=self.registry)
        self._statuses = Counter("cronjob_whatsapp_statuses", "WhatsApp status updates by what became of them.",
                                 ["outcome"], registry=self.registry)
        self._requests = Counter("cronjob_http_requests", "API requests by method, route and status.",
                                 ["method", "route", "status"], registry=self.registry)
        self._request_seconds = Histogram(
            "cronjob_http_request_duration_seconds", "How long the API took to answer, by method and route.",
            ["method", "route"], buckets=_REQUEST_BUCKETS, registry=self.registry)
        self._refused = Counter("cronjob_http_requests_refused", "API requests refused before anything was "
                                "done, by the limit this process was at.", ["limit"], registry=self.registry)
        self._refused.labels(IN_FLIGHT_LIMIT)  # shown as 0 before the first, so that rates start there
        self._schedules = Gauge("cronjob_schedules", "Schedules in the whole store by status and task type "
                                "(every replica reports the same figure).",
                                ["status", "task_type"], registry=self.registry)
        self._store_up = Gauge("cronjob_store_up", "1 when this scrape could read the schedule counts "
                               "from the store, else 0.", registry=self.registry)

    def dispatched(self, task_type: str, lateness_seconds: float) -> None:
        self._lateness.labels(task_type).observe(lateness_seconds)

    def run_took(self, task_type: str, seconds: float) -> None:
        self._run_seconds.labels(task_type).observe(seconds)

    def attempt_finished(self, task_type: str, outcome: str, code: str | None) -> None:
        self._attempts.labels(task_type, outcome, code or "").inc()
        if task_type == WEBHOOK_DELIVERY and outcome in ("retrying", "failed"):
            # The dispatcher's decision, retry policy and Retry-After included: the delivery
            # handler itself counts what only it knows (delivered, skipped).
            self._webhooks.labels(outcome).inc()

    def lease_taken_over(self, task_type: str) -> None:
        self._takeovers.labels(task_type).inc()

    def in_flight(self, count: int) -> None:
        self._in_flight.set(count)

    def clock_offset(self, seconds: float) -> None:
        self._clock_offset.set(seconds)

    def webhook_delivered(self, outcome: str) -> None:
        """A status webhook delivery ended with ``outcome`` (delivered, retrying, failed, skipped)."""
        self._webhooks.labels(outcome).inc()

    def provider_status(self, outcome: str) -> None:
        self._statuses.labels(outcome).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.labels(method, route, str(status)).inc()
        self._request_seconds.labels(method, route).observe(seconds)

    def request_refused(self, limit: str) -> None:
        self._refused.labels(limit).inc()

    def render(self, counts: Mapping[tuple[ScheduleStatus, str], int] | None) -> bytes:
        """The exposition text, with the schedule gauges set to ``counts`` (per status and task
        type). ``None``: the store could not be read; the process's own metrics are still
        rendered, ``cronjob_store_up`` is 0 and no schedule counts are given (rather than stale ones)."""
        self._schedules.clear()
        self._store_up.set(0 if counts is None else 1)
        for (status, task_type), count in (counts or {}).items():
            self._schedules.labels(status.value, task_type).set(count)
        return generate_latest(self.registry)
