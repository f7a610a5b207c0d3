"""The ``http.request`` task's payload: its schema and its check when a schedule is created.

Two parts: :class:`HttpRequestPayload` (the payload's schema, version
:attr:`HttpRequestPayload.VERSION`) and :func:`prepare_http_request_payload` (checks a payload
when a schedule is created). No I/O: the URL is parsed here, but where it may go is checked when
the request is made, by :mod:`cronjob_adapters.tasks.http_request`, which also sets the two
headers a payload may not set (:data:`IDEMPOTENCY_HEADER`, :data:`SCHEDULE_HEADER`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from cronjob.domain.json_values import MAX_NESTING, first_problem, unencodable
from cronjob_adapters.tasks.ssrf import MAX_URL_LENGTH, HttpUrl, Target, parse_url
from cronjob_adapters.tasks.validation import validate_payload, value_error_at

IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEDULE_HEADER = "Cronjob-Schedule-Id"

MAX_HEADERS = 50
MAX_HEADER_NAME_CHARS = 256
MAX_HEADER_VALUE_CHARS = 8192
MAX_HEADER_BYTES = 32 * 1024
MAX_BODY_BYTES = 256 * 1024
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_TIMEOUT_SECONDS = 120.0
MAX_REDIRECTS = 5
MAX_EXPECTED_STATUS = 20

#: Headers a payload may not set: hop-by-hop (RFC 9110 7.6.1), the ones that frame the message
#: (a wrong Content-Length is request smuggling), Host (the URL decides it), and ours.
FORBIDDEN_HEADERS: frozenset[str] = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
    "proxy-authenticate", "proxy-authorization", "content-length", "host",
})
RESERVED_HEADERS: frozenset[str] = frozenset({IDEMPOTENCY_HEADER.lower(), SCHEDULE_HEADER.lower()})

_TOKEN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
_HEADER_NAME = re.compile(_TOKEN)
#: Visible ASCII, with spaces and tabs inside only: no CR/LF, no NUL, and nothing at either end
#: (HTTP trims it; the client refuses to send it).
_HEADER_VALUE = re.compile(r"^(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?$")


# -- the payload -----------------------------------------------------------------------------


ExpectedStatus = (
    Annotated[int, Field(strict=True, ge=100, le=599)]
    | Annotated[str, StringConstraints(pattern=r"^[1-5][xX][xX]$")]
)


class HttpRequestPayload(BaseModel):
    """The payload of an http.request schedule (version 1): one HTTP request, and which answers
    count as success."""

    VERSION: ClassVar[int] = 1

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = Field(
        default="GET",
        description="HTTP method, in capitals: GET, POST, PUT, PATCH, DELETE or HEAD.",
    )
    url: HttpUrl = Field(
        pattern=r"^[hH][tT][tT][pP][sS]?://",
        description=(
            f"Absolute http:// or https:// URL, at most {MAX_URL_LENGTH} characters, without "
            "credentials (send an Authorization header). Loopback, private, link-local, CGNAT, "
            "multicast, reserved and cloud metadata destinations are refused when the request is "
            "made unless the service's allow-list names them."
        ),
        json_schema_extra={"format": "uri"},
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description=(
            f"Request headers, name to value (at most {MAX_HEADERS}; values visible ASCII, spaces and "
            f"tabs only inside, at most "
            f"{MAX_HEADER_VALUE_CHARS} characters, {MAX_HEADER_BYTES} bytes in all). Not allowed: "
            "Host, Content-Length, hop-by-hop headers (Connection, Keep-Alive, Proxy-Connection, "
            "Transfer-Encoding, TE, Trailer, Upgrade, Proxy-Authenticate, Proxy-Authorization), and "
            f"{IDEMPOTENCY_HEADER}/{SCHEDULE_HEADER}, which the scheduler sets. Values are never "
            "logged; on a redirect to another origin only Accept, Accept-Language, Content-Type, "
            "Content-Language and User-Agent are kept."
        ),
        json_schema_extra={
            "propertyNames": {"pattern": _TOKEN, "maxLength": MAX_HEADER_NAME_CHARS},
            "additionalProperties": {
                "type": "string", "maxLength": MAX_HEADER_VALUE_CHARS, "pattern": _HEADER_VALUE.pattern,
            },
        },
    )
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None,
        description=(
            "Request body: a string is sent as it is (UTF-8; Content-Type text/plain; charset=utf-8 "
            "unless a Content-Type header is given), an object or array is sent as JSON "
            "(Content-Type application/json unless given). At most "
            f"{MAX_BODY_BYTES // 1024} KiB once encoded, nested at most {MAX_NESTING} levels. Not allowed with "
            "GET or HEAD. Integers in it within signed 64 bits (a larger one is refused: send it as a string)."
        ),
    )
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        strict=True,
        allow_inf_nan=False,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description=(
            "Seconds each request (each redirect hop) may take from DNS resolution to the response "
            f"headers; more than 0, at most {MAX_TIMEOUT_SECONDS:g}. A timeout is retried."
        ),
    )
    expected_status: list[ExpectedStatus] = Field(
        default_factory=lambda: ["2xx"],
        min_length=1,
        max_length=MAX_EXPECTED_STATUS,
        description=(
            "Statuses that mean success: integers (100-599) and classes such as \"2xx\". Default "
            "[\"2xx\"]. Otherwise 408, 429 and 5xx are retried (after Retry-After when given) and "
            "any other status fails the run."
        ),
    )
    follow_redirects: bool = Field(
        default=False,
        strict=True,
        description=(
            f"Follow 301/302/303/307/308 redirects, at most {MAX_REDIRECTS}; each hop is checked "
            "like the first URL, https to http is refused, a 303 (and a 301/302 after a POST) "
            "continues as a GET without body. When false a redirect is an answer like any other, "
            "judged by expected_status."
        ),
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        total = 0
        for name, text in value.items():
            lower = name.lower()
            if not _HEADER_NAME.fullmatch(name) or len(name) > MAX_HEADER_NAME_CHARS:
                raise ValueError(f"header name {name[:64]!r} is not a valid HTTP token")
            if lower in FORBIDDEN_HEADERS:
                raise ValueError(f"header {name!r} may not be set (hop-by-hop, framing or Host)")
            if lower in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the scheduler")
            if lower in seen:
                raise ValueError(f"header {name!r} is given twice (names are case-insensitive)")
            seen.add(lower)
            # The value's own text is never quoted: it may be a token.
            if len(text) > MAX_HEADER_VALUE_CHARS:
                raise ValueError(f"header {name!r} is longer than {MAX_HEADER_VALUE_CHARS} characters")
            if not _HEADER_VALUE.fullmatch(text):
                raise ValueError(f"header {name!r} has a character that is not visible ASCII, space or tab, "
                                 "or begins or ends with a space or tab")
            total += len(name) + len(text) + 4
        if total > MAX_HEADER_BYTES:
            raise ValueError(f"the headers take more than {MAX_HEADER_BYTES} bytes")
        return value

    @field_validator("body")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        """A body has no infinite or NaN number (``1e400``, ``NaN``), no key or string with a
        lone surrogate (an unpaired ``\\ud800``) and nests at most ``MAX_NESTING`` levels:
        refused here, naming where in the body (``body.ids.1``), rather than when it is encoded or stored."""
        found = first_problem(value, MAX_NESTING, unencodable)
        if found is not None:
            raise value_error_at(*found)
        return value

    @model_validator(mode="after")
    def _body(self) -> HttpRequestPayload:
        if self.body is not None and self.method in ("GET", "HEAD"):
            raise ValueError(f"a {self.method} request cannot have a body")
        content, _ = self.encoded_body()
        if content is not None and len(content) > MAX_BODY_BYTES:
            raise ValueError(f"the body is larger than {MAX_BODY_BYTES // 1024} KiB once encoded")
        return self

    def target(self) -> Target:
        """The parsed URL."""
        return parse_url(self.url)

    def encoded_body(self) -> tuple[bytes | None, str | None]:
        """The body's bytes and the Content-Type they go with by default (None, None without body)."""
        if self.body is None:
            return None, None
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), "text/plain; charset=utf-8"
        return (
            json.dumps(self.body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8"),
            "application/json",
        )

    def accepts(self, status: int) -> bool:
        """Whether ``status`` is one of ``expected_status``."""
        for expected in self.expected_status:
            if isinstance(expected, int):
                if status == expected:
                    return True
            elif status // 100 == int(expected[0]):
                return True
        return False


def prepare_http_request_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Check an ``http.request`` payload when the schedule is created; the payload to store
    (``model_dump(mode="json")``, defaults filled in). Raises the domain's
    :class:`ValidationError` naming the field at fault. The destination itself is checked when
    the request is made (DNS answers change, and the allow-list is the handler's)."""
    model = validate_payload(HttpRequestPayload, payload, "http.request")
    return model.model_dump(mode="json")
