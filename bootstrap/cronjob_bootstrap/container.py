"""The dependency-injector container: the only place that names concrete adapters.

Configuration selects the adapters (``store``: memory | sqlite | mongodb; ``sender``: whatsapp |
unconfigured | recording); tests override single providers with ``container.<name>.override``.
"""

from __future__ import annotations

from datetime import timedelta

from dependency_injector import containers, providers

from cronjob.ports.clock import SystemClock
from cronjob.services.dispatcher import Dispatcher, DispatcherSettings
from cronjob.services.health import HealthService
from cronjob.services.messaging import WhatsAppMessageHandler
from cronjob.services.scheduling import WHATSAPP_TEMPLATE, WHATSAPP_TEXT, SchedulingService
from cronjob_adapters.codec import ScheduleCodec
from cronjob_adapters.engine.timer import AsyncioTimerEngine
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from cronjob_adapters.memory.sender import RecordingMessageSender, UnconfiguredMessageSender
from cronjob_adapters.memory.signal import InProcessWorkSignal
from cronjob_adapters.mongodb.repository import MongoScheduleRepository
from cronjob_adapters.sqlite.repository import SqliteScheduleRepository
from cronjob_adapters.web.app import ApiServices, create_app
from cronjob_adapters.whatsapp.sender import WhatsAppCloudSender
from cronjob_bootstrap.settings import Settings
from cronjob_bootstrap.triggers import default_trigger_parser


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _grace(value: float) -> timedelta | None:
    """A misfire grace in seconds; 0 means none (late work always runs)."""
    return timedelta(seconds=value) if value > 0 else None


class Container(containers.DeclarativeContainer):
    """Wires ports to adapters. ``config`` is filled from :class:`Settings` by :func:`build_container`."""

    config = providers.Configuration()

    clock = providers.Singleton(SystemClock)
    trigger_parser = providers.Singleton(default_trigger_parser)
    codec = providers.Singleton(ScheduleCodec, trigger_parser)

    repository = providers.Selector(
        config.store,
        memory=providers.Singleton(InMemoryScheduleRepository),
        sqlite=providers.Singleton(SqliteScheduleRepository, config.sqlite_path, codec),
        mongodb=providers.Singleton(
            MongoScheduleRepository.from_uri, config.mongodb_uri, config.mongodb_database, codec),
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

    scheduling = providers.Singleton(
        SchedulingService,
        repository,
        clock,
        signal,
        parse_trigger=trigger_parser,
        past_grace=providers.Callable(_seconds, config.past_grace_seconds),
        one_off_misfire_grace=providers.Callable(_grace, config.misfire_grace_seconds),
        default_language=config.whatsapp_language,
    )
    health = providers.Singleton(HealthService, repository)

    whatsapp_handler = providers.Singleton(WhatsAppMessageHandler, sender)
    handlers = providers.Dict({WHATSAPP_TEMPLATE: whatsapp_handler, WHATSAPP_TEXT: whatsapp_handler})

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
        ),
    )
    engine = providers.Singleton(
        AsyncioTimerEngine,
        dispatcher,
        repository,
        signal,
        clock,
        poll_interval=config.poll_interval_seconds,
        drain_timeout=config.shutdown_grace_seconds,
    )

    api_services = providers.Singleton(
        ApiServices,
        scheduling=scheduling,
        health=health,
        tokens=config.tokens,
        default_timezone=config.default_timezone,
        max_body_bytes=config.max_body_bytes,
    )
    app = providers.Singleton(create_app, api_services)


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
        "past_grace_seconds": settings.past_grace_seconds,
        "misfire_grace_seconds": settings.misfire_grace_seconds,
        "type_limits": settings.task_type_limits,
        "instance_id": settings.instance_id,
        "lease_seconds": settings.lease_seconds,
        "batch_size": settings.batch_size,
        "max_in_flight": settings.max_in_flight,
        "poll_interval_seconds": settings.poll_interval_seconds,
        "shutdown_grace_seconds": settings.shutdown_grace_seconds,
        "tokens": tokens if tokens is not None else settings.tokens,
        "default_timezone": settings.default_timezone,
        "max_body_bytes": settings.max_body_bytes,
    })
    return container
