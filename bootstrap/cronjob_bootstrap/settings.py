"""Configuration from the environment (``CRONJOB_*``), validated once at start-up."""

from __future__ import annotations

import os
import re
import socket
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from cronjob.domain.errors import ValidationError
from cronjob.domain.schedule import MAX_RUN_TIMEOUT
from cronjob.domain.zones import DEFAULT_TIMEZONE, iana_zone
from cronjob_adapters.tasks.email_payload import HEADER_FORBIDDEN, normalize_address
from cronjob_adapters.tasks.ssrf import DestinationPolicy, parse_url
from cronjob_adapters.web.in_flight import DEFAULT_MAX_REQUESTS_IN_FLIGHT
from cronjob_adapters.webhooks.publisher import parse_event_filter
from cronjob_bootstrap.routine_modules import MODULE_NAME


#: The longest grace a setting takes (a month): beyond, a typo rather than a choice.
_MONTH = 30 * 86_400


def parse_type_limits(text: str) -> dict[str, int]:
    """``'email=5, http.request=20'`` -> ``{"email": 5, "http.request": 20}``; ValueError if malformed."""
    limits: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, number = item.partition("=")
        if not sep or not name.strip() or not number.strip().isdigit() or int(number) < 1:
            raise ValueError(f"expected <task type>=<positive integer>, got {item!r}")
        limits[name.strip()] = int(number)
    return limits


def _split(text: str) -> list[str]:
    """A comma-separated setting's items, stripped, empty ones dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _header_safe(text: str) -> bool:
    """Whether ``text`` can be sent in an HTTP header as it is: visible ASCII and spaces only."""
    return all(" " <= char <= "~" for char in text)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``CRONJOB_*`` names in ``environ`` that no setting reads (a misspelt
    ``CRONJOB_MONGODB_URL`` would otherwise leave its setting at its default without a word)."""
    names = {f"CRONJOB_{name.upper()}" for name in Settings.model_fields}
    files = {f"{name}_FILE" for name in names}  # read as spelt here, unlike the names (any case)
    return sorted(name for name in environ
                  if name.upper().startswith("CRONJOB_") and name.upper() not in names and name not in files)


def _check_tokens(value: SecretStr | None, unset: str) -> None:
    """A comma-separated list of API tokens holds at least one if it is set to something, and each
    can be sent in a header; ValueError saying which is not (by its place, never its text).
    ``unset`` says what unsetting it does."""
    if value is not None and value.get_secret_value() and not _split(value.get_secret_value()):
        raise ValueError(f"holds no token (only commas and spaces); {unset}")
    for index, token in enumerate(_split(value.get_secret_value()) if value else [], start=1):
        # A client sends it in a header: a line break (tokens one per line in a _FILE) or a
        # non-ASCII character could never match, and every request would be a 401.
        if not _header_safe(token):
            raise ValueError(f"token #{index} holds a line break, control or non-ASCII character "
                             "(separate tokens with commas)")


class SettingFileError(ValueError):
    """A ``*_FILE`` setting that cannot be used; ``name`` is the variable to fix."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class FileEnvSource(PydanticBaseSettingsSource):
    """``CRONJOB_<NAME>_FILE=/path``: the setting's value is the file's content (trailing newline
    dropped), for secrets mounted as files. Setting both the variable and its ``_FILE`` is an
    error, also when the variable is empty (its empty value would win, and the file be ignored)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        env = f"CRONJOB_{field_name.upper()}"
        path = os.environ.get(f"{env}_FILE")
        if not path:
            return None, field_name, False
        given = [value for name, value in os.environ.items() if name.upper() == env]  # names in any case
        if given:
            empty = "" if any(given) else f" ({env} is set, though empty)"
            raise SettingFileError(f"{env}_FILE", f"set {env} or {env}_FILE, not both{empty}")
        try:
            return Path(path).read_text(encoding="utf-8").rstrip("\r\n"), field_name, False
        except OSError as exc:
            raise SettingFileError(f"{env}_FILE", f"cannot read {path}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise SettingFileError(f"{env}_FILE", f"{path} is not UTF-8 text") from None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(info, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """Every setting of the service; each field is the environment variable ``CRONJOB_<NAME>``.

    Secrets are ``SecretStr`` so that they never show in reprs or logs.
    """

    # No setting takes NaN or infinity (a lease of "inf" would crash start-up, not be refused).
    model_config = SettingsConfigDict(env_prefix="CRONJOB_", extra="ignore", frozen=True, allow_inf_nan=False)

    mongodb_uri: SecretStr | None = Field(default=None, description="MongoDB URI; unset: the embedded SQLite store.")
    mongodb_database: str = Field(default="cronjob", min_length=1)
    api_tokens: SecretStr | None = Field(default=None, description="Comma-separated bearer tokens.")
    api_read_tokens: SecretStr | None = Field(
        default=None, description="Comma-separated read-only bearer tokens: GET only, a 403 on any other method.")
    whatsapp_api_url: str = "https://graph.facebook.com"
    whatsapp_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_version: str = Field(default="v23.0", description="Graph API version, e.g. v23.0.")
    whatsapp_language: str = Field(default="pt_BR", min_length=1, description="Default template language.")
    whatsapp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    whatsapp_app_secret: SecretStr | None = Field(
        default=None, description="Meta app secret: checks X-Hub-Signature-256 of the status webhooks.")
    whatsapp_verify_token: SecretStr | None = Field(
        default=None, description="Token of Meta's webhook verification handshake (hub.verify_token).")
    whatsapp_status_wait_seconds: float = Field(
        default=120.0, ge=0, le=86_400,
        description="How long a status webhook whose message is not recorded yet is kept to be applied "
                    "once it is; 0: ignored at once.")
    internal_retention_hours: int = Field(
        default=168, ge=0, le=87_600,
        description="How long the service's own finished jobs (webhook.delivery, whatsapp.status) are kept "
                    "after they ended, in whole hours; 0: kept for ever.")
    smtp_host: str | None = Field(default=None, description="SMTP server of the email task; unset: email disabled.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_use_tls: bool = False
    smtp_from: str | None = Field(default=None, description="Sender address of the email task.")
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    http_allow_hosts: str = Field(
        default="", description="Comma-separated hosts/CIDRs that http.request and webhooks may reach even "
                                "though they are loopback, private or link-local.")
    retry_unknown: bool = Field(default=False, description="Retry sends whose outcome is unknown (may duplicate).")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Comma-separated secrets signing status webhooks (each listed one signs: rotation); "
                                  "unset: deliveries fail with webhook_secret_missing.")
    webhook_urls: str = Field(default="", description="Comma-separated http(s) URLs receiving every schedule's status webhooks.")
    webhook_events: str = Field(default="", description="Comma-separated events sent as webhooks; empty: all.")
    webhook_per_destination: int = Field(
        default=4, ge=1, le=10_000,
        description="Status webhook deliveries one replica has in flight per destination (scheme, host and "
                    "port of the URL); the others wait, so that a slow receiver does not hold back the others.")
    data_dir: Path = Path("var")
    host: str = Field(default="127.0.0.1", description="Listen address; 0.0.0.0 for every interface.")
    port: int = Field(default=8000, ge=1, le=65535)
    keep_alive_seconds: float = Field(
        default=75.0, gt=0, le=3600,
        description="How long an idle kept-alive HTTP connection stays open: longer than a proxy in front "
                    "keeps one (ingress-nginx: 60 s).")
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        description="How long a client may take to send a request's headers, counted from its connection "
                    "or, on a kept-alive one, from its first byte; then a 408 and the connection closed (one "
                    "that sent nothing: closed).")
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="How long a client may take to send a request's whole body once its headers are in; "
                    "then a 408 and the connection closed.")
    max_requests_in_flight: int = Field(
        default=DEFAULT_MAX_REQUESTS_IN_FLIGHT, ge=0, le=1_000_000,
        description="Requests one API process serves at once (the probes and /metrics are not counted); one "
                    "more is answered 503 with Retry-After at once, nothing done. 0: no bound.")
    default_timezone: str = DEFAULT_TIMEZONE
    past_grace_seconds: float = Field(default=300.0, ge=0, le=_MONTH)
    misfire_grace_seconds: float = Field(
        default=3600.0, ge=0, le=_MONTH,
        description="One-offs claimed later than this after their time are missed; 0: never.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_batch_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024,
                                      description="Body limit of POST /v1/schedules:batch (up to 1,000 schedules).")
    lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    engine: Literal["timer", "rocketry"] = Field(
        default="timer", description="What wakes the dispatcher; 'rocketry' needs the rocketry extra.")
    max_in_flight: int = Field(default=100, ge=1, le=100_000)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    type_limits: str = Field(default="", description="Per-task-type run limits per replica: 'email=5,http.request=20'.")
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=3600)
    run_timeout_seconds: float = Field(
        default=3600.0, gt=0, le=MAX_RUN_TIMEOUT.total_seconds(),
        description="How long a run may take unless its schedule says otherwise (run_timeout_seconds); "
                    "past it the run is stopped and fails with run_timeout (retryable).")
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", min_length=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(default="json", description="One JSON object per line, or text.")
    loop_stall_seconds: float = Field(default=30.0, ge=5, le=86_400,
                                      description="A scheduler loop silent for longer fails /livez.")
    routine_modules: str = Field(
        default="", description="Comma-separated modules imported at start-up, whose @routine decorators register "
                                "the deployment's own routines (e.g. 'acme.jobs,acme.reports').")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, FileEnvSource(settings_cls)

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            iana_zone(value)
        except ValidationError as exc:
            raise ValueError(exc.message) from exc
        return value

    @field_validator("mongodb_uri")
    @classmethod
    def _mongodb_uri(cls, value: SecretStr | None) -> SecretStr | None:
        """The URI's syntax, checked now rather than at the first connection (never echoed: it
        may hold a password). A ``mongodb+srv://`` URI is resolved (DNS) only when connecting."""
        if value is None:
            return None
        uri = value.get_secret_value()
        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        if uri.startswith("mongodb://"):
            try:
                parse_uri(uri, warn=True)  # unknown options: a warning, as the driver gives
            except (PyMongoError, ValueError) as exc:
                raise ValueError(f"not a valid MongoDB URI: {exc}") from None
        return value

    @field_validator("whatsapp_api_version")
    @classmethod
    def _graph_version(cls, value: str) -> str:
        if not re.fullmatch(r"v\d+\.\d+", value):  # it is a segment of every send's URL
            raise ValueError("must be a Graph API version, e.g. v23.0")
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _some_directory(cls, value: object) -> object:
        # Path("") is the working directory: say so instead of putting the store there.
        if isinstance(value, str) and not value.strip():
            raise ValueError("must be a directory, e.g. ./var (empty: the working directory is not taken)")
        return value

    @field_validator("host")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        # Empty would make the server listen on every interface: say so instead of doing it.
        if not value.strip() or value != value.strip():
            raise ValueError("must be an address or host name, e.g. 127.0.0.1 (0.0.0.0: every interface)")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _some_token(cls, value: SecretStr | None) -> SecretStr | None:
        _check_tokens(value, "unset it to have one created")
        return value

    @field_validator("api_read_tokens")
    @classmethod
    def _read_tokens(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        _check_tokens(value, "unset it for none")
        full = info.data.get("api_tokens")  # absent when it was refused: named on its own then
        listed = set(_split(full.get_secret_value())) if full else set()
        for index, token in enumerate(_split(value.get_secret_value()) if value else [], start=1):
            # Full or read-only, which? Listed in both, a token meant to be demoted to read-only
            # (added here, not yet taken out there) would silently keep making changes.
            if token in listed:
                raise ValueError(f"token #{index} is in CRONJOB_API_TOKENS too: a token is either full or "
                                 "read-only, remove it from one of them")
        return value

    @field_validator("whatsapp_token")
    @classmethod
    def _sendable_token(cls, value: SecretStr | None) -> SecretStr | None:
        # Sent in every request's Authorization header: a line break (a _FILE of two lines) would
        # fail every send as invalid_request, a non-ASCII character stop start-up with a traceback.
        if value is not None and not _header_safe(value.get_secret_value()):
            raise ValueError("holds a line break, control or non-ASCII character (no request could carry it)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secrets_one_per_item(cls, value: SecretStr | None) -> SecretStr | None:
        for index, secret in enumerate(_split(value.get_secret_value()) if value else [], start=1):
            # Secrets one per line (a _FILE) would sign with all the lines as one key.
            if any(unicodedata.category(char) == "Cc" for char in secret):
                raise ValueError(f"secret #{index} holds a line break or control character "
                                 "(separate secrets with commas)")
        return value

    @field_validator("http_allow_hosts")
    @classmethod
    def _allow_list(cls, value: str) -> str:
        DestinationPolicy(_split(value))  # a bad entry: ValueError naming it
        return value

    @field_validator("smtp_host")
    @classmethod
    def _smtp_host(cls, value: str | None) -> str | None:
        if value and (HEADER_FORBIDDEN.search(value) or any(c.isspace() for c in value)):
            raise ValueError("must be a host name or address, without spaces or control characters")
        return value

    @field_validator("smtp_password")
    @classmethod
    def _smtp_login(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not info.data.get("smtp_username"):
            raise ValueError("needs CRONJOB_SMTP_USERNAME: a password is sent with a user name")
        return value

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is not None:
            normalize_address(value, globally_deliverable=False)
        return value

    @field_validator("whatsapp_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: str, info: ValidationInfo) -> str:
        # A bad allow-list is named on its own: then the destinations are not checked here.
        allow = info.data.get("http_allow_hosts")
        policy = DestinationPolicy(_split(allow)) if allow is not None else None
        for index, url in enumerate(_split(value), start=1):
            try:
                target = parse_url(url)
            except ValueError as exc:  # the message never repeats the URL (it may hold a token)
                raise ValueError(f"URL #{index}: {exc}") from None
            reason = policy.refusal(target) if policy is not None else None
            if reason is not None:  # every delivery to it would end dead (destination_refused)
                raise ValueError(f"URL #{index}: status webhooks to {target.authority} would be refused: {reason}; "
                                 "CRONJOB_HTTP_ALLOW_HOSTS names the private destinations that may be reached")
        return value

    @field_validator("webhook_events")
    @classmethod
    def _webhook_events(cls, value: str) -> str:
        parse_event_filter(value)
        return value

    @field_validator("routine_modules")
    @classmethod
    def _module_names(cls, value: str) -> str:
        for name in _split(value):
            if not MODULE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a module name (dotted, as import takes it: acme.jobs)")
        return value

    @field_validator("type_limits")
    @classmethod
    def _limits(cls, value: str) -> str:
        parse_type_limits(value)
        return value

    @property
    def task_type_limits(self) -> dict[str, int]:
        """``type_limits`` as a mapping."""
        return parse_type_limits(self.type_limits)

    @property
    def routine_module_list(self) -> list[str]:
        """The modules that register the deployment's own routines."""
        return _split(self.routine_modules)

    @property
    def webhook_secrets(self) -> list[str]:
        """The secrets that sign status webhooks (empty: none configured)."""
        return _split(self.webhook_secret.get_secret_value()) if self.webhook_secret else []

    @property
    def webhook_url_list(self) -> list[str]:
        """The global webhook subscribers."""
        return _split(self.webhook_urls)

    @property
    def webhook_event_filter(self) -> set[str] | None:
        """The events sent as webhooks (None: all)."""
        return parse_event_filter(self.webhook_events)

    @property
    def allow_hosts(self) -> list[str]:
        """``http_allow_hosts`` as a list."""
        return _split(self.http_allow_hosts)

    @property
    def store(self) -> Literal["mongodb", "sqlite"]:
        """Which schedule store the settings select."""
        return "mongodb" if self.mongodb_uri else "sqlite"

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>``, where this process serves HTTP (an IPv6 address in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "cronjob.sqlite3"

    @property
    def tokens(self) -> list[str]:
        """The configured API tokens (may be empty: the CLI then creates one)."""
        return _split(self.api_tokens.get_secret_value() if self.api_tokens else "")

    @property
    def read_tokens(self) -> list[str]:
        """The configured read-only API tokens (may be empty)."""
        return _split(self.api_read_tokens.get_secret_value() if self.api_read_tokens else "")

    @property
    def whatsapp_missing(self) -> list[str]:
        """Names of the WhatsApp settings that are not set."""
        missing = []
        if not self.whatsapp_token:
            missing.append("CRONJOB_WHATSAPP_TOKEN")
        if not self.whatsapp_phone_number_id:
            missing.append("CRONJOB_WHATSAPP_PHONE_NUMBER_ID")
        return missing
