"""A fake WhatsApp Cloud API (Meta Graph ``sendMessage``) on a real loopback HTTP server.

It serves from a background thread (``ThreadingHTTPServer``, HTTP/1.1 keep-alive, a thread per
connection), so sync tests, async tests and other processes can all send to it. Every request is
recorded with its arrival time, every send body is validated against the ``Message`` schema of
Meta's OpenAPI spec (``schema_errors``), and the next answers can be scripted (``fail_next``,
``delay_next``, ``drop_next``). Otherwise it answers like Meta: 200 with a fresh ``wamid``.

Standalone, for multi-process tests (the URL is the first line on stdout; one JSON line per
request is appended to the record file; SIGTERM or SIGINT stops it)::

    python -m tests.support.fake_whatsapp --port 0 --token T --record requests.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import signal
import socket
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DEFAULT_TOKEN = "fake-whatsapp-token"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"

# ---------------------------------------------------------------------------------------------
# Meta's OpenAPI spec as a JSON Schema validator

SPEC_ENV = "CRONJOB_WHATSAPP_OPENAPI"
SPEC_FILE = "business-messaging-api_v23.0.yaml"
_REPO = Path(__file__).resolve().parents[2]
_SPEC_URI = "urn:meta:whatsapp-openapi"
_SCHEMAS = "#/components/schemas/"
_registry: Registry | None = None
_registry_lock = threading.Lock()
_local = threading.local()
_verdicts: dict[str, list[str]] = {}  # canonical JSON body -> its schema errors
_BAD_INDEX_PATTERN = "^[2-6, 11-14]$"  # a button's index in the spec: see checkable_schemas


def spec_path() -> Path:
    """Meta's OpenAPI YAML: ``$CRONJOB_WHATSAPP_OPENAPI``, else ``vendor/whatsapp-openapi/`` in
    this repository or in the ``shared`` checkout beside it."""
    env = os.environ.get(SPEC_ENV)
    candidates = [Path(env)] if env else []
    candidates += [
        _REPO / "vendor" / "whatsapp-openapi" / SPEC_FILE,
        _REPO.parent / "shared" / "vendor" / "whatsapp-openapi" / SPEC_FILE,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"Meta's OpenAPI spec {SPEC_FILE} not found; set {SPEC_ENV} to its path")


def checkable_schemas(schemas: dict[str, Any]) -> dict[str, Any]:
    """The spec's component schemas rewritten so that a JSON Schema validator means what OpenAPI does.

    - ``discriminator`` is OpenAPI, not JSON Schema: a validator ignores it, so ``Message``'s
      ``oneOf`` only ever says "not valid under any of the given schemas", and the base schemas
      ``TemplateComponent``/``ParameterObject`` (whose ``parameters`` have no item schema) accept
      anything. Each discriminator becomes an explicit dispatch (``if type == k then mapping[k]``);
      for a base schema it lives in a ``<Name>__dispatch`` alias that every reference uses except
      the mapped subschemas' own ``allOf``.
    - ``additionalProperties: false`` inside an ``allOf`` branch forbids what the sibling branches
      declare, so read literally it rejects every ``TextMessage`` (and nine other message types).
      OpenAPI 3.1 is JSON Schema 2020-12, where the intended rule is ``unevaluatedProperties:
      false`` on the whole ``allOf``.
    - A button's ``index`` has the pattern ``^[2-6, 11-14]$``: a character class (one of ``2``..``6``,
      ``,``, space, ``1``, ``-``, ``4``) that rejects the spec's own examples (``index: '0'``, in
      "Send Message Template Interactive") while its description says "Position index of the
      button (0-9)". It is read as that description says: ``^[0-9]$``.
    """
    schemas = copy.deepcopy(schemas)
    for name in ("TemplateComponent", "ButtonComponent"):
        for node in [schemas.get(name, {}), *schemas.get(name, {}).get("allOf", [])]:
            index = node.get("properties", {}).get("index") if isinstance(node, dict) else None
            if isinstance(index, dict) and index.get("pattern") == _BAD_INDEX_PATTERN:
                index["pattern"] = "^[0-9]$"
    aliases: dict[str, set[str]] = {}  # base $ref -> names of its mapped subschemas
    for name, schema in list(schemas.items()):
        mapping = (schema.get("discriminator") or {}).get("mapping") if isinstance(schema, dict) else None
        if not mapping:
            continue
        prop = schema["discriminator"]["propertyName"]
        dispatch = [{"required": [prop], "properties": {prop: {"enum": list(mapping)}}}] + [
            {"if": {"required": [prop], "properties": {prop: {"const": key}}}, "then": {"$ref": ref}}
            for key, ref in mapping.items()
        ]
        if "oneOf" in schema or "anyOf" in schema:
            schema.pop("oneOf", None)
            schema.pop("anyOf", None)
            schema["allOf"] = schema.get("allOf", []) + dispatch
        else:
            schemas[f"{name}__dispatch"] = {"allOf": [{"$ref": _SCHEMAS + name}, *dispatch]}
            aliases[_SCHEMAS + name] = {ref.removeprefix(_SCHEMAS) for ref in mapping.values()}

    def rewrite(node: Any, owner: str) -> None:
        if isinstance(node, dict):
            for branch in node.get("allOf", []):
                if isinstance(branch, dict) and branch.get("additionalProperties") is False:
                    del branch["additionalProperties"]
                    node["unevaluatedProperties"] = False
            ref = node.get("$ref")
            if ref in aliases and owner not in aliases[ref]:
                node["$ref"] = f"{ref}__dispatch"
            for value in node.values():
                rewrite(value, owner)
        elif isinstance(node, list):
            for value in node:
                rewrite(value, owner)

    for name, schema in schemas.items():
        if not name.endswith("__dispatch"):
            rewrite(schema, name)
    return schemas


def _spec_registry() -> Registry:
    global _registry
    with _registry_lock:
        if _registry is None:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            with spec_path().open("rb") as stream:
                spec = yaml.load(stream, Loader=loader)  # noqa: S506 - a safe loader
            document = {"components": {"schemas": checkable_schemas(spec["components"]["schemas"])}}
            _registry = Registry().with_resource(_SPEC_URI, DRAFT202012.create_resource(document))
        return _registry


def validate(schema: str, instance: Any) -> list[str]:
    """Where ``instance`` breaks the spec's component schema ``schema``, as sorted
    ``"$.json.path: message"`` lines; ``[]`` when it conforms."""
    validators: dict[str, Draft202012Validator] = _local.__dict__.setdefault("validators", {})
    validator = validators.get(schema)
    if validator is None:  # one per thread: validators cache reference resolution as they go
        ref = {"$ref": f"{_SPEC_URI}{_SCHEMAS}{schema}"}
        validator = validators[schema] = Draft202012Validator(ref, registry=_spec_registry())
    return sorted(f"{_json_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance))


def validate_send_body(body: Any) -> list[str]:
    """Where a ``POST /{Version}/{Phone-Number-ID}/messages`` body breaks Meta's ``Message`` schema.

    Verdicts are memoised by the body's canonical JSON (a load test sends the same body many
    times; one validation costs about 0.7 ms)."""
    key = json.dumps(body, sort_keys=True, ensure_ascii=False)
    errors = _verdicts.get(key)
    if errors is None:
        errors = validate("Message", body)
        if len(_verdicts) >= 10_000:
            _verdicts.clear()
        _verdicts[key] = errors
    return list(errors)


def _json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def graph_error(
    code: int,
    message: str,
    *,
    error_type: str = "OAuthException",
    subcode: int | None = None,
    details: str | None = None,
    is_transient: bool | None = None,
) -> dict[str, Any]:
    """A Graph API error body shaped as Meta sends it (with a fresh ``fbtrace_id``)."""
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if is_transient is not None:
        error["is_transient"] = is_transient
    error["fbtrace_id"] = f"A{uuid.uuid4().hex[:22]}"
    return {"error": error}


# ---------------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, None when the body was empty or not JSON
    received_at: datetime  # UTC, when the request had been read
    status: int
    wamid: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``received_at`` in ISO 8601)."""
        return {
            "method": self.method, "path": self.path, "headers": self.headers, "body": self.body,
            "received_at": self.received_at.isoformat(), "status": self.status, "wamid": self.wamid,
        }


@dataclass(slots=True)
class _Scripted:
    status: int
    body: Any
    headers: dict[str, str]
    times: int


@dataclass(slots=True)
class _Answer:
    status: int
    payload: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    wamid: str | None = None


_SEND_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)/messages$")


class FakeWhatsApp:
    """A local stand-in for ``graph.facebook.com`` that tests start, script and inspect.

    It checks the bearer token (401, Graph code 190, when wrong) and the phone number id (400,
    code 100), and validates each body against Meta's schema: a body that breaks it is recorded
    in ``schema_errors`` and, unless ``reject_invalid`` is off, answered 400 with code 100.
    Thread-safe; ``latency_seconds`` delays every answer (for load tests).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
        port: int = 0,
        record_path: str | Path | None = None,
        check_schema: bool = True,
        reject_invalid: bool = True,
        latency_seconds: float = 0.0,
    ) -> None:
        self.token = token
        self.phone_number_id = phone_number_id
        self._port = port
        self._record_path = Path(record_path) if record_path else None
        self._check_schema = check_schema
        self._reject_invalid = reject_invalid
        self._latency = latency_seconds
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._schema_errors: list[str] = []
        self._scripted: deque[_Scripted] = deque()
        self._delays: deque[float] = deque()
        self._drops = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._record_file: IO[str] | None = None

    # -- lifecycle

    def start(self) -> FakeWhatsApp:
        """Listen on 127.0.0.1 (an ephemeral port unless one was given) and serve in a thread."""
        if self._server is not None:
            raise RuntimeError("already started")
        if self._check_schema:
            _spec_registry()  # load the spec now: a missing spec fails here, not mid-test
        if self._record_path is not None:
            self._record_file = self._record_path.open("a", encoding="utf-8")
        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
            name=f"fake-whatsapp:{self._server.server_address[1]}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: close the listener and every open connection, wake delayed answers."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        with self._lock:
            if self._record_file is not None:
                self._record_file.close()
                self._record_file = None

    def __enter__(self) -> FakeWhatsApp:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (the sender's ``api_url``)."""
        if self._server is None:
            raise RuntimeError("not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def schema_errors(self) -> list[str]:
        """Every way a received body broke Meta's schema (``"<path>: <json path>: <message>"``)."""
        with self._lock:
            return list(self._schema_errors)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived (TimeoutError after ``timeout`` seconds)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._requests) >= count, timeout=timeout):
                raise TimeoutError(f"{len(self._requests)} of {count} requests after {timeout}s")
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests, schema errors and anything scripted."""
        with self._lock:
            self._requests.clear()
            self._schema_errors.clear()
            self._scripted.clear()
            self._delays.clear()
            self._drops = 0

    # -- scripting

    def fail_next(
        self, status: int, error_json: Any = None, *, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` well-formed sends with ``status`` and ``error_json`` (a dict is
        sent as JSON, a str or bytes as is, None as an empty body), plus ``headers``."""
        with self._lock:
            self._scripted.append(_Scripted(status, error_json, dict(headers or {}), times))

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """Hold the answer to each of the next ``times`` requests for ``seconds`` (after recording it)."""
        with self._lock:
            self._delays.extend([seconds] * times)

    def drop_next(self, *, times: int = 1) -> None:
        """Read the next ``times`` requests, then hang up without answering."""
        with self._lock:
            self._drops += times

    # -- serving (called on the connection's thread)

    def _serve(self, handler: _Handler) -> None:
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            handler.close_connection = True  # not supported: the body is left unread, so hang up after
            raw = b""
        else:
            length = int(handler.headers.get("Content-Length") or 0)
            raw = handler.rfile.read(length) if length > 0 else b""
        received_at = datetime.now(UTC)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        body = _json_or_none(raw)
        path = urlsplit(handler.path).path
        answer, errors = self._answer(handler.command, path, headers, raw, body)
        record = RecordedRequest(handler.command, path, headers, body, received_at, answer.status, answer.wamid)
        with self._arrived:
            delay = self._latency + (self._delays.popleft() if self._delays else 0.0)
            drop = self._drops > 0
            if drop:
                self._drops -= 1
            self._requests.append(record)
            self._schema_errors.extend(f"{path}: {error}" for error in errors)
            if self._record_file is not None:
                self._record_file.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
                self._record_file.flush()
            self._arrived.notify_all()
        if delay > 0 and self._stopping.wait(delay):
            drop = True
        if drop:
            handler.close_connection = True
            return
        handler.reply(answer)

    def _answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes, body: Any
    ) -> tuple[_Answer, list[str]]:
        match = _SEND_PATH.match(path)
        if match is None:
            return _graph(400, 2500, f"Unknown path components: {path}"), []
        if method != "POST":
            return _graph(400, 100, f"Unsupported {method.lower()} request."), []
        authorization = headers.get("authorization", "")
        if not authorization:
            return _graph(401, 104, "An access token is required to request this resource."), []
        if authorization != f"Bearer {self.token}":
            return _graph(401, 190, "Invalid OAuth access token - Cannot parse access token"), []
        if match.group(2) != self.phone_number_id:
            return _graph(400, 100, f"Unsupported post request. Object with ID '{match.group(2)}' does "
                                    "not exist, cannot be loaded due to missing permissions, or does "
                                    "not support this operation.", subcode=33), []
        errors: list[str] = []
        if self._check_schema:
            errors = validate_send_body(body) if body is not None else [f"$: body is not JSON ({len(raw)} bytes)"]
        if errors and self._reject_invalid:
            return _graph(400, 100, "(#100) Invalid parameter", details=errors[0]), errors
        with self._lock:
            scripted = self._scripted[0] if self._scripted else None
            if scripted is not None:
                scripted.times -= 1
                if scripted.times <= 0:
                    self._scripted.popleft()
        if scripted is not None:
            payload, content_headers = _encode(scripted.body)
            return _Answer(scripted.status, payload, {**content_headers, **scripted.headers}), errors
        if not isinstance(body, dict):
            return _graph(400, 100, "(#100) Invalid parameter"), errors
        return _accepted(body), errors


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _encode(body: Any) -> tuple[bytes, dict[str, str]]:
    if body is None:
        return b"", {}
    if isinstance(body, bytes):
        return body, {"Content-Type": "text/plain; charset=utf-8"}
    if isinstance(body, str):
        return body.encode(), {"Content-Type": "text/plain; charset=utf-8"}
    return json.dumps(body).encode(), {"Content-Type": "application/json; charset=UTF-8"}


def _graph(status: int, code: int, message: str, **kwargs: Any) -> _Answer:
    payload, headers = _encode(graph_error(code, message, **kwargs))
    return _Answer(status, payload, headers)


def _accepted(body: dict[str, Any]) -> _Answer:
    to = str(body.get("to", ""))
    wamid = f"wamid.{uuid.uuid4().hex}"
    message: dict[str, str] = {"id": wamid}
    if body.get("type") == "template":
        message["message_status"] = "accepted"
    payload, headers = _encode({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
        "messages": [message],
    })
    return _Answer(200, payload, headers, wamid)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Meta's front ends allow
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # the client went away (a timeout on its side, or stop())
            self.close_connection = True

    def _dispatch(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _dispatch

    def reply(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.payload)))
        self.end_headers()
        self.wfile.write(answer.payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # several scheduler processes may connect at once

    def __init__(self, address: tuple[str, int], fake: FakeWhatsApp) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up every open connection (idle keep-alive ones included)."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    """Run the fake as a process: print its URL, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.fake_whatsapp", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bearer token to accept")
    parser.add_argument("--phone-number-id", default=DEFAULT_PHONE_NUMBER_ID)
    parser.add_argument("--record", type=Path, help="append one JSON line per request to this file")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--no-validate", action="store_true", help="skip Meta's schema check")
    parser.add_argument("--accept-invalid", action="store_true",
                        help="answer 200 to bodies that break the schema (still recorded)")
    args = parser.parse_args(argv)
    fake = FakeWhatsApp(
        token=args.token, phone_number_id=args.phone_number_id, port=args.port, record_path=args.record,
        check_schema=not args.no_validate, reject_invalid=not args.accept_invalid, latency_seconds=args.latency,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    fake.start()
    print(fake.url, flush=True)
    try:
        done.wait()
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
