"""The dependency-injector container: wires the concrete adapters (only ``bootstrap`` names them).

Configuration selects the adapters (``store``: memory | sqlite | mongodb; ``sender``: whatsapp |
unconfigured | recording; ``engine``: timer | rocketry); tests override single providers with ``container.<name>.override``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from dependency_injector import containers, providers
from pydantic import SecretStr

from cronjob.ports.clock import Clock, SystemClock
from cronjob.ports.engine import SchedulerEngine
from cronjob.services.aligned_clock import AlignedClock
from cronjob.services.clock_check import ClockCheck
from cronjob.services.delivery_status import STATUS_RECHECK, DeliveryStatusService
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.health import HealthService
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.retention import RETENTION, RetentionHandler, RetentionKeeper
from cronjob.services.scheduling import SchedulingService
from cronjob.services.status_recheck import StatusRecheckHandler
from cronjob.services.throttle import RateLimitThrottle
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.engine.collector import QuietCollector
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender, UnconfiguredMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.mongodb.change_stream import watch_new_work
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_adapters.observability.prometheus import PrometheusMetrics
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_adapters.tasks.builtin_routines import register_builtin_routines
from cronjob_adapters.tasks.http_request import HttpRequestHandler
from cronjob_adapters.tasks.python import routines as process_routines
from cronjob_adapters.tasks.registry import TaskRegistry
from cronjob_adapters.web.app import ApiServices, create_app
from cronjob_adapters.web.auth import bearer_tokens
from cronjob_adapters.web.counts_cache import Counts, CountsCache
from cronjob_adapters.web.limits import BodyWaits
from cronjob_adapters.web.probes import MetricsRenderer, create_probe_app
from cronjob_adapters.webhooks.delivery import TASK_TYPE as WEBHOOK_DELIVERY
from cronjob_adapters.webhooks.delivery import WebhookDeliveryHandler
from cronjob_adapters.webhooks.destinations import DestinationLimit
from cronjob_adapters.webhooks.publisher import WebhookPublisher
from cronjob_adapters.whatsapp.sender import WhatsAppCloudSender
from cronjob_bootstrap.settings import Settings
from cronjob_bootstrap.tasks import TASK_TYPES, build_registry, follow_up_scheduler
from cronjob_bootstrap.triggers import default_trigger_parser


def _metrics_renderer(metrics: PrometheusMetrics, counts: CountsCache) -> MetricsRenderer:
    """A scrape renders the process's metrics even while the store is down or does not answer
    (when they matter most); only the schedule counts are missing then, and ``cronjob_store_up``
    says why."""
    async def render() -> tuple[bytes, str]:
        found: Counts | None
        try:
            found, _ = await counts.get()  # at most its timeout (2 s, as the probes wait)
        except Exception as exc:  # down, starting or silent: not a reason to fail the scrape
            logging.getLogger("cronjob").warning("metrics: the schedule counts could not be read (%s)",
                                                 type(exc).__name__)
            found = None
        return metrics.render(found), metrics.content_type

    return render


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _stall_after(loop_stall_seconds: float, poll_interval_seconds: float) -> timedelta:
    return timedelta(seconds=loop_stall_seconds + poll_interval_seconds)


def _same(clock: Clock) -> Clock:
    return clock


def _lease_slack(lease_seconds: float) -> timedelta:
    """How far two clocks may be apart before a lease being renewed looks lapsed: the lease less
    its renewal period (a third of it)."""
    return timedelta(seconds=lease_seconds) * 2 / 3


class EngineUnavailable(Exception):
    """The engine ``CRONJOB_ENGINE`` names cannot be loaded here, and why (one line)."""


def engine_class(kind: str) -> type[SchedulerEngine]:
    """The engine adapter ``kind`` names (``timer`` | ``rocketry``). Rocketry is imported only when
    selected: it needs the ``rocketry`` extra; without it (or with a build that does not import
    beside Pydantic 2, such as upstream ``rocketry``) this raises :class:`EngineUnavailable`."""
    if kind != "rocketry":
        return AsyncioTimerEngine
    try:
        from cronjob_adapters.engine.rocketry_engine import RocketryEngine
    except Exception as exc:  # not installed, or a Rocketry that fails as it is imported
        said = str(exc).strip().splitlines()
        raise EngineUnavailable(
            "rocketry needs the rocketry extra (pip install 'cronjob[rocketry]', which pins rocketry-fix): "
            f"cannot import rocketry: {type(exc).__name__}: {said[0] if said else ''}") from None
    return RocketryEngine


def _engine(kind: str, *args: Any, **kwargs: Any) -> SchedulerEngine:
    """The engine ``kind`` names, built (see :func:`engine_class`)."""
    return engine_class(kind)(*args, **kwargs)


def _secret(value: SecretStr | None) -> str | None:
    """A secret setting's text; None when unset or empty."""
    return (value.get_secret_value() or None) if value is not None else None


#: The service's own jobs, which its retention deletes once they ended (CRONJOB_INTERNAL_RETENTION_HOURS).
RETAINED_TASK_TYPES = (WEBHOOK_DELIVERY, STATUS_RECHECK)
#: The service's own task types: created by the service only, never through the API, and left
#: out of lists unless asked for.
INTERNAL_TASK_TYPES = (*RETAINED_TASK_TYPES, RETENTION)


#: Every task type a scheduler here runs: the names ``CRONJOB_TYPE_LIMITS`` may limit.
RUNNABLE_TASK_TYPES = tuple(sorted({*TASK_TYPES, *INTERNAL_TASK_TYPES}))


def unknown_limited_types(settings: Settings) -> list[str]:
    """The names in ``CRONJOB_TYPE_LIMITS`` that are no task type here (a typo, or ``whatsapp``
    for ``whatsapp.text``): no run would ever be held to their limit."""
    return sorted(set(settings.task_type_limits) - set(RUNNABLE_TASK_TYPES))


def type_limits(settings: Settings) -> dict[str, int]:
    """The per-replica run limits per task type: ``CRONJOB_TYPE_LIMITS``, and for status webhooks,
    unless it names them, half of ``CRONJOB_MAX_IN_FLIGHT`` (at least 1).

    A delivery to a receiver that does not answer holds its slot for its whole timeout, and one
    event of many schedules makes as many deliveries at once: without a limit of their own, a
    slow receiver would take every slot of the replica and hold back the messages due meanwhile.
    """
    return {WEBHOOK_DELIVERY: max(1, settings.max_in_flight // 2), **settings.task_type_limits}


def _handlers(registry: TaskRegistry, webhook_delivery: WebhookDeliveryHandler,
              status_recheck: StatusRecheckHandler, retention: RetentionHandler) -> dict[str, Any]:
    """What the dispatcher runs: the registered task types plus the internal ones
    (``webhook.delivery`` from the webhook publisher, ``whatsapp.status`` from Meta's webhook,
    ``cronjob.retention`` from the scheduler's start)."""
    return {**registry.handlers(), WEBHOOK_DELIVERY: webhook_delivery, STATUS_RECHECK: status_recheck,
            RETENTION: retention}


def _webhook_handler(settings: Settings, **kwargs: Any) -> WebhookDeliveryHandler:
    """The delivery handler, signing with every configured secret; says so at start-up when
    webhooks are subscribed but cannot be signed (each delivery then fails with webhook_secret_missing)."""
    if settings.webhook_url_list and not settings.webhook_secrets:
        logging.getLogger("cronjob").warning(
            "CRONJOB_WEBHOOK_URLS is set but CRONJOB_WEBHOOK_SECRET is not: status webhooks will fail "
            "with webhook_secret_missing")
    return WebhookDeliveryHandler(secrets=settings.webhook_secrets,
                                  destinations=DestinationLimit(settings.webhook_per_destination), **kwargs)


def _grace(value: float) -> timedelta | None:
    """A misfire grace in seconds; 0 means none (late work always runs)."""
    return timedelta(seconds=value) if value > 0 else None


class Container(containers.DeclarativeContainer):
    """Wires ports to adapters. ``config`` is filled from :class:`Settings` by :func:`build_container`."""

    config = providers.Configuration()
    #: The validated settings object (set by :func:`build_container`).
    settings = providers.Dependency(instance_of=Settings)

    host_clock = providers.Singleton(SystemClock)
    #: The host's clock, following the store's while they disagree (set by ``clock_check``).
    aligned_clock = providers.Singleton(AlignedClock, host_clock)
    #: The clock every part reads (tests put one they drive in its place).
    clock = providers.Callable(_same, aligned_clock)
    trigger_parser = providers.Singleton(default_trigger_parser)
    codec = providers.Singleton(ScheduleCodec, trigger_parser)

    repository = providers.Selector(
        config.store,
        memory=providers.Singleton(InMemoryScheduleRepository),
        sqlite=providers.Singleton(SqliteScheduleRepository, config.sqlite_path, codec),
        mongodb=providers.Singleton(
            MongoScheduleRepository.from_uri, config.mongodb_uri, config.mongodb_database, codec),
    )
    #: What tells a scheduler of work other processes create, besides its poll: MongoDB's change
    #: stream (``watch(repository, signal, stop)``); None for the other stores.
    new_work_watcher = providers.Selector(
        config.store,
        memory=providers.Object(None),
        sqlite=providers.Object(None),
        mongodb=providers.Object(watch_new_work),
    )

    sender = providers.Selector(
        config.sender,
        whatsapp=providers.Singleton(
            WhatsAppCloudSender,
            api_url=config.whatsapp_api_url,
            token=config.whatsapp_token,
            phone_number_id=config.whatsapp_phone_number_id,
            api_version=config.whatsapp_api_version,
            timeout_seconds=config.whatsapp_timeout_seconds,
        ),
        unconfigured=providers.Singleton(UnconfiguredMessageSender, config.whatsapp_missing),
        recording=providers.Singleton(RecordingMessageSender),
    )

    signal = providers.Singleton(InProcessWorkSignal, clock)

    whatsapp_handler = providers.Singleton(
        WhatsAppMessageHandler, sender, providers.Singleton(RateLimitThrottle, clock))
    #: How routines schedule follow-up tasks; bound to ``scheduling`` by :func:`build_container`
    #: (the service depends on the registry, so the registry gets it lazily).
    follow_up = providers.Object(None)
    #: The SSRF-guarded HTTP sender of http.request and of the status webhooks (one allow-list,
    #: one TLS context).
    http_sender = providers.Singleton(HttpRequestHandler, allow_hosts=settings.provided.allow_hosts)
    #: The routines the ``python`` task type runs and ``GET /v1/routines`` lists: the process-wide
    #: registry the ``routine`` decorator fills, with the built-ins added.
    routines = providers.Singleton(register_builtin_routines, providers.Object(process_routines))
    task_registry = providers.Singleton(build_registry, settings, whatsapp_handler, http_sender, repository, clock,
                                        routines, follow_up)

    #: Status webhooks: each (event, subscriber) becomes a ``webhook.delivery`` job.
    publisher = providers.Singleton(
        WebhookPublisher, repository, clock, signal,
        global_urls=settings.provided.webhook_url_list, events=settings.provided.webhook_event_filter,
        own_types=INTERNAL_TASK_TYPES)

    scheduling = providers.Singleton(
        SchedulingService,
        repository,
        clock,
        signal,
        parse_trigger=trigger_parser,
        past_grace=providers.Callable(_seconds, config.past_grace_seconds),
        one_off_misfire_grace=providers.Callable(_grace, config.misfire_grace_seconds),
        default_language=config.whatsapp_language,
        preparers=providers.Callable(TaskRegistry.preparers, task_registry),
        publisher=publisher,
    )
    #: An idle scheduler loop ticks once a poll interval (up to 60 s, more than the default stall
    #: limit): it is stuck only once silent for the stall limit past that.
    health = providers.Singleton(
        HealthService, repository, clock,
        stall_after=providers.Callable(_stall_after, config.loop_stall_seconds, config.poll_interval_seconds))
    metrics = providers.Singleton(PrometheusMetrics)
    #: This process's clock against the store's, which ``aligned_clock`` follows while they
    #: disagree: a lease is renewed every third of it, so two clocks more than two thirds of a
    #: lease apart would see one that is being renewed lapse.
    clock_check = providers.Singleton(
        ClockCheck, repository, aligned_clock, metrics,
        slack=providers.Callable(_lease_slack, config.lease_seconds))
    #: The schedule counts behind /v1/stats and /metrics: the last read answered, read again in
    #: the background at most once every 2 s per process, however many dashboards and scrapers ask.
    counts = providers.Singleton(CountsCache, scheduling.provided.counts, 2.0)
    render_metrics = providers.Callable(_metrics_renderer, metrics, counts)

    webhook_handler = providers.Singleton(
        _webhook_handler, settings,
        sender=http_sender,
        clock=clock, metrics=metrics, repository=repository)
    delivery_status = providers.Singleton(
        DeliveryStatusService, repository, clock, publisher=publisher, signal=signal, metrics=metrics,
        wait=providers.Callable(_seconds, config.whatsapp_status_wait_seconds))
    status_recheck = providers.Singleton(StatusRecheckHandler, delivery_status, clock)
    #: The retention of the service's own finished jobs: a recurring schedule of its own, kept as
    #: the setting says by every scheduler at its start, run by the dispatcher like any other.
    retention_keeper = providers.Singleton(
        RetentionKeeper, repository, clock, signal, keep_hours=config.internal_retention_hours,
        task_types=providers.Object(list(RETAINED_TASK_TYPES)))
    retention_handler = providers.Singleton(RetentionHandler, repository, clock)
    handlers = providers.Callable(_handlers, task_registry, webhook_handler, status_recheck, retention_handler)

    dispatcher = providers.Singleton(
        Dispatcher,
        repository,
        handlers,
        clock,
        signal,
        providers.Singleton(
            DispatcherSettings,
            owner=config.instance_id,
            lease_for=providers.Callable(_seconds, config.lease_seconds),
            batch_size=config.batch_size,
            max_in_flight=config.max_in_flight,
            type_limits=config.type_limits,
            type_retry=providers.Callable(TaskRegistry.default_retries, task_registry),
            retry_unknown=config.retry_unknown,
            run_timeout=providers.Callable(_seconds, config.run_timeout_seconds),
        ),
        metrics=metrics,
        publisher=publisher,
    )
    #: Full garbage collections of the scheduler process, moved to its quiet moments (installed
    #: by the runtime when a scheduler starts).
    collector = providers.Singleton(QuietCollector)
    engine = providers.Singleton(
        _engine,
        config.engine,
        dispatcher,
        repository,
        signal,
        clock,
        poll_interval=config.poll_interval_seconds,
        drain_timeout=config.shutdown_grace_seconds,
        collector=collector,
    )

    #: The API's requests waiting for their bodies: cut (a 503 each) when the process stops.
    body_waits = providers.Singleton(BodyWaits)
    api_services = providers.Singleton(
        ApiServices,
        scheduling=scheduling,
        health=health,
        tokens=config.tokens,
        read_tokens=config.read_tokens,
        default_timezone=config.default_timezone,
        max_body_bytes=config.max_body_bytes,
        max_batch_body_bytes=config.max_batch_body_bytes,
        body_timeout_seconds=config.body_timeout_seconds,
        body_waits=body_waits,
        max_requests_in_flight=config.max_requests_in_flight,
        render_metrics=render_metrics,
        whatsapp_app_secret=config.whatsapp_app_secret,
        whatsapp_verify_token=config.whatsapp_verify_token,
        delivery_status=delivery_status,
        task_types=task_registry,
        routines=routines,
        webhook_deliveries=publisher.provided.deliveries,
        internal_task_types=INTERNAL_TASK_TYPES,
        counts=counts,
        callback_refusal=http_sender.provided.refusal,
        metrics=metrics,
    )
    app = providers.Singleton(create_app, api_services)
    auth = providers.Singleton(bearer_tokens, config.tokens, config.read_tokens)
    probe_app = providers.Singleton(create_probe_app, health, render_metrics, auth)


def build_container(settings: Settings, *, tokens: list[str] | None = None) -> Container:
    """A container configured from ``settings`` (``tokens`` overrides the configured API tokens)."""
    container = Container()
    container.config.from_dict({
        "store": settings.store,
        "sqlite_path": str(settings.sqlite_path),
        "mongodb_uri": settings.mongodb_uri.get_secret_value() if settings.mongodb_uri else None,
        "mongodb_database": settings.mongodb_database,
        "sender": "unconfigured" if settings.whatsapp_missing else "whatsapp",
        "whatsapp_api_url": settings.whatsapp_api_url,
        "whatsapp_token": settings.whatsapp_token.get_secret_value() if settings.whatsapp_token else "",
        "whatsapp_phone_number_id": settings.whatsapp_phone_number_id or "",
        "whatsapp_api_version": settings.whatsapp_api_version,
        "whatsapp_timeout_seconds": settings.whatsapp_timeout_seconds,
        "whatsapp_missing": settings.whatsapp_missing,
        "whatsapp_language": settings.whatsapp_language,
        "whatsapp_app_secret": _secret(settings.whatsapp_app_secret),
        "whatsapp_verify_token": _secret(settings.whatsapp_verify_token),
        "past_grace_seconds": settings.past_grace_seconds,
        "misfire_grace_seconds": settings.misfire_grace_seconds,
        "type_limits": type_limits(settings),
        "instance_id": settings.instance_id,
        "lease_seconds": settings.lease_seconds,
        "batch_size": settings.batch_size,
        "max_in_flight": settings.max_in_flight,
        "poll_interval_seconds": settings.poll_interval_seconds,
        "engine": settings.engine,
        "shutdown_grace_seconds": settings.shutdown_grace_seconds,
        "tokens": tokens if tokens is not None else settings.tokens,
        "read_tokens": settings.read_tokens,
        "default_timezone": settings.default_timezone,
        "max_body_bytes": settings.max_body_bytes,
        "max_batch_body_bytes": settings.max_batch_body_bytes,
        "body_timeout_seconds": settings.body_timeout_seconds,
        "max_requests_in_flight": settings.max_requests_in_flight,
        "loop_stall_seconds": settings.loop_stall_seconds,
        "retry_unknown": settings.retry_unknown,
        "run_timeout_seconds": settings.run_timeout_seconds,
        "whatsapp_status_wait_seconds": settings.whatsapp_status_wait_seconds,
        "internal_retention_hours": settings.internal_retention_hours,
    })
    container.settings.override(settings)
    container.follow_up.override(providers.Callable(
        follow_up_scheduler, container.scheduling.provider, container.clock, settings.default_timezone))
    return container
