"""WhatsApp's status webhooks, received: Meta's verification handshake (GET) and its signed
notifications (POST), whose message statuses are recorded on the schedules that sent them.

Meta cannot send our bearer token: these routes are authenticated by the verify token (GET) and
by ``X-Hub-Signature-256``, an HMAC-SHA256 of the raw body keyed with the app secret (POST),
checked before the body is parsed. Meta retries a notification that does not get a 2xx, so a
notification is acknowledged as soon as its statuses are stored (a store outage is a 503: retried).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    WithJsonSchema,
)
from pydantic import ValidationError as PydanticValidationError

from cronjob.services.delivery_status import DeliveryStatusService, StatusUpdate

from cronjob_adapters.web.problems import problem, problem_response, problem_responses, validation_problem

log = logging.getLogger(__name__)

PATH = "/v1/whatsapp/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
#: The name of the notification's schema in the OpenAPI document.
NOTIFICATION_SCHEMA = "MetaNotification"
_LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
_DIGITS = re.compile(r"[0-9]{1,12}")


# -- Meta's notification, as far as we read it (extra fields are Meta's to add) -----------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MetaErrorData(_Lenient):
    details: str | None = None


class MetaError(_Lenient):
    code: StrictInt | StrictStr  # as documented: not a bool or a float read as a number
    title: str | None = None
    message: str | None = None
    error_data: MetaErrorData | None = None

    def text(self) -> str:
        parts = [self.message or self.title or "", self.error_data.details if self.error_data else None]
        return " — ".join(dict.fromkeys(p for p in parts if p)) or "failed"


def _unix_seconds(value: Any) -> Any:
    """Unix seconds as a whole number or as its digits in text (not a bool, a float or '1e9')."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("must be Unix seconds, as a whole number or as text of its digits")


class MetaStatus(_Lenient):
    id: str = Field(min_length=1, max_length=512, description="The message's wamid.")
    status: str = Field(min_length=1, max_length=64)
    # Documented as both forms it is taken in (Meta sends text; the schema of a plain int would
    # say every real notification is invalid), and taken in those forms only.
    timestamp: Annotated[int, BeforeValidator(_unix_seconds), Field(ge=0, le=_LATEST_TIMESTAMP), WithJsonSchema({
        "anyOf": [{"type": "integer", "minimum": 0, "maximum": _LATEST_TIMESTAMP},
                  {"type": "string", "pattern": "^[0-9]{1,12}$"}],
        "description": "Unix seconds, as a number or (as Meta sends it) as text."})]
    recipient_id: str | None = None
    errors: list[MetaError] = Field(default_factory=list)


class MessagesValue(_Lenient):
    messaging_product: str | None = None
    statuses: list[MetaStatus] = Field(default_factory=list)


class MessagesChange(_Lenient):
    field: Literal["messages"]
    value: MessagesValue


class OtherChange(_Lenient):
    """A change of another field (template updates, account events...): not read."""

    # "Not messages" in the schema too: the document's ``oneOf`` of the two kinds of change must
    # match a ``messages`` change once, not twice (which would make every notification invalid).
    field: Annotated[str, Field(json_schema_extra={"not": {"const": "messages"}})]
    value: Any = None


def _change_kind(raw: Any) -> str:
    field = raw.get("field") if isinstance(raw, dict) else getattr(raw, "field", None)
    return "messages" if field == "messages" else "other"


Change = Annotated[
    Annotated[MessagesChange, Tag("messages")] | Annotated[OtherChange, Tag("other")],
    Discriminator(_change_kind),
]


class Entry(_Lenient):
    id: str | None = None
    changes: list[Change] = Field(default_factory=list)


class Notification(_Lenient):
    object: str
    entry: list[Entry] = Field(default_factory=list)

    def status_updates(self) -> list[StatusUpdate]:
        """Every ``statuses[]`` item across entries and changes, as the service takes them."""
        updates = []
        for entry in self.entry:
            for change in entry.changes:
                if not isinstance(change, MessagesChange):
                    continue
                for status in change.value.statuses:
                    error = status.errors[0] if status.errors else None
                    updates.append(StatusUpdate(
                        message_id=status.id,
                        status=status.status,
                        at=datetime.fromtimestamp(status.timestamp, UTC),
                        error_code=str(error.code) if error else None,
                        error_message=error.text() if error else None,
                    ))
        return updates


class Receipt(BaseModel):
    """What a notification did: its statuses, those recorded, and those parked until their
    message is recorded."""

    received: int = Field(description="Message statuses in the notification.")
    applied: int = Field(description="Of them, those recorded on their schedule now.")
    parked: int = Field(description="Of them, those whose message is not recorded yet: kept, and applied once it is.")


# -- the routes ------------------------------------------------------------------------------------


def _signed(body: bytes, header: str | None, secret: bytes) -> bool:
    """Whether ``header`` is ``sha256=<hex HMAC-SHA256(secret, body)>`` (compared in constant time)."""
    if not header:
        return False
    scheme, _, given = header.strip().partition("=")
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return scheme.lower() == "sha256" and hmac.compare_digest(given.strip().lower().encode(), expected.encode())


def whatsapp_webhook_router(
    *, app_secret: str, verify_token: str, delivery_status: DeliveryStatusService
) -> APIRouter:
    """The webhook routes; ``app_secret`` is the Meta app's secret, ``verify_token`` the token
    typed into the app's webhook settings."""
    if not app_secret or not verify_token:
        raise ValueError("the WhatsApp webhook needs both the app secret and the verify token")
    secret, token = app_secret.encode(), verify_token.encode()
    router = APIRouter(tags=["whatsapp"])

    @router.get(PATH, response_class=PlainTextResponse,
                responses={200: {"content": {"text/plain": {}}, "description": "The challenge, echoed."},
                           403: problem_response(403, "`hub.mode` is not `subscribe`, `hub.verify_token` "
                                                      "does not match, or `hub.challenge` is missing."),
                           **problem_responses(422)})
    async def verify_subscription(
        mode: Annotated[str | None, Query(alias="hub.mode", max_length=64,
                                          description="`subscribe`, as Meta sends it.")] = None,
        given_token: Annotated[str | None, Query(
            alias="hub.verify_token", max_length=1024,
            description="The verify token typed into the Meta app (`CRONJOB_WHATSAPP_VERIFY_TOKEN`).")] = None,
        challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=1024,
                                               description="Meta's challenge, echoed when the token matches.")] = None,
    ) -> Response:
        """Meta's verification handshake: echoes `hub.challenge` when `hub.verify_token` matches."""
        matches = hmac.compare_digest((given_token or "").encode(), token)
        if mode != "subscribe" or not matches or challenge is None:
            log.warning("WhatsApp webhook verification refused")
            return problem(403, "Forbidden", "hub.mode must be subscribe and hub.verify_token must match")
        return PlainTextResponse(challenge, headers={"X-Content-Type-Options": "nosniff"})

    @router.post(PATH, responses={200: {"model": Receipt, "description": "Received."},
                                  401: problem_response(401, f"A missing or wrong `{SIGNATURE_HEADER}`.", headers={}),
                                  **problem_responses(400, 413, 422, 503)},
                 # The body is read raw (the signature is checked over its bytes before it is
                 # parsed), so FastAPI cannot describe it: document_notification adds its schema.
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": f"#/components/schemas/{NOTIFICATION_SCHEMA}"}}}}})
    async def receive_notification(request: Request) -> Response:
        """Meta's notifications, signed with the app secret (`X-Hub-Signature-256`). Message
        statuses (sent, delivered, read, failed) are recorded on the schedule that sent the message;
        one whose message is not recorded yet (its run is still writing its outcome) is parked and
        applied once it is (`parked` counts them; see `CRONJOB_WHATSAPP_STATUS_WAIT_SECONDS`)."""
        body = await request.body()
        if not _signed(body, request.headers.get(SIGNATURE_HEADER), secret):
            log.warning("WhatsApp webhook notification with a missing or wrong signature refused")
            return problem(401, "Unauthorized", f"missing or invalid {SIGNATURE_HEADER}")
        try:
            raw = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return problem(400, "Bad request", f"the body is not JSON: {exc}")
        except (ValueError, RecursionError):  # a number of more than 4,300 digits; nesting too deep
            return problem(400, "Bad request", "the body could not be read: a number of more than 4,300 "
                                               "digits, or nested too deeply")
        try:
            notification = Notification.model_validate(raw)
        except PydanticValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            return validation_problem([{**error, "loc": ("body", *error["loc"])} for error in errors], raw)
        updates = notification.status_updates()
        report = await delivery_status.apply(updates)
        return JSONResponse({"received": len(updates), "applied": report.applied, "parked": report.parked})

    return router


def document_notification(document: dict[str, Any]) -> None:
    """Add the schema of Meta's notification (the webhook's POST body) to an OpenAPI ``document``."""
    notification = Notification.model_json_schema(ref_template="#/components/schemas/{model}")
    notification["title"] = NOTIFICATION_SCHEMA  # a generated client names its class after the title
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in [*notification.pop("$defs", {}).items(), (NOTIFICATION_SCHEMA, notification)]:
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"the OpenAPI document already has another schema called {name}")
