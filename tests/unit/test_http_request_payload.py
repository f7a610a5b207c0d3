"""The http.request payload (HttpRequestPayload, schema version 1), its published JSON Schema, and
the pure helpers it shares with the handler (URL parsing, Retry-After). No I/O."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from jsonschema import Draft202012Validator

from cronjob.domain.errors import ValidationError
from cronjob_adapters.retry_after import parse_retry_after
from cronjob_adapters.tasks.http_payload import (
    FORBIDDEN_HEADERS,
    HttpRequestPayload,
    prepare_http_request_payload,
)
from cronjob_adapters.tasks.ssrf import DestinationPolicy, address_problem, parse_url

SECRET = "sk-live-0123456789-do-not-echo"
URL = "https://api.example.com/v1/sync"


def errors(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """``(dotted location, message)`` of each error; fails the test when the payload validates."""
    with pytest.raises(pydantic.ValidationError) as caught:
        HttpRequestPayload.model_validate(payload)
    return [(".".join(str(p) for p in e["loc"]), e["msg"])
            for e in caught.value.errors(include_input=False, include_url=False)]


def fields(payload: dict[str, Any]) -> set[str]:
    return {location.split(".")[0] for location, _ in errors(payload)}


# -- defaults and the version ------------------------------------------------------------------


def test_only_the_url_is_required_and_the_defaults_are_the_documented_ones() -> None:
    payload = HttpRequestPayload.model_validate({"url": URL})

    assert HttpRequestPayload.VERSION == 1
    assert payload.method == "GET"
    assert payload.headers == {} and payload.body is None
    assert payload.timeout_seconds == 10
    assert payload.expected_status == ["2xx"]
    assert payload.follow_redirects is False
    assert "url" in fields({})


def test_unknown_fields_are_refused() -> None:
    assert errors({"url": URL, "retries": 3}) == [("retries", "Extra inputs are not permitted")]


# -- method ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
def test_the_six_methods_are_accepted(method: str) -> None:
    assert HttpRequestPayload.model_validate({"method": method, "url": URL}).method == method


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "OPTIONS", "get", "", "POST ", 1])
def test_any_other_method_is_refused(method: Any) -> None:
    assert fields({"method": method, "url": URL}) == {"method"}


# -- url ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://example.com", "https://example.com:8443/a/b?c=d&e=f", "HTTPS://Example.COM/", "http://10.0.0.1/",
    "http://[2001:db8::1]:8080/", "https://bücher.example/straße", "http://2130706433/", "http://0177.0.0.1/",
])
def test_http_and_https_urls_are_accepted(url: str) -> None:
    # Addresses are valid URLs here: whether they may be reached is decided when the request is made.
    assert HttpRequestPayload.model_validate({"url": url}).url == url


@pytest.mark.parametrize("url", [
    "ftp://example.com/file", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "javascript:alert(1)",
    "//example.com/", "example.com/path", "http://", "http:///path", "http://user:pw@example.com/",
    "http://example.com:99999/", "http://example.com:0/", "http://exa mple.com/", "http://example.com/\r\nX: y",
    "http://[::1/", "http://[not-an-address]/", "http://999.1.1.1/", "http://0x1g.1/", "http://-bad-.example/",
    "http://example.com\\@evil.test/", "",
])
def test_urls_that_are_not_plain_http_or_https_are_refused(url: str) -> None:
    assert fields({"url": url}) == {"url"}


def test_a_url_longer_than_2048_characters_is_refused() -> None:
    head = "https://example.com/?q="
    longest = head + "a" * (2048 - len(head))

    assert HttpRequestPayload.model_validate({"url": longest}).url == longest
    assert fields({"url": head + "a" * (2049 - len(head))}) == {"url"}


def test_a_refused_url_is_not_repeated_in_the_message() -> None:
    [(location, message)] = errors({"url": f"ftp://example.com/?token={SECRET}"})

    assert location == "url" and SECRET not in message


# -- headers -----------------------------------------------------------------------------------


def test_headers_are_kept_as_given() -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "X-Request-Source": "cronjob", "Accept": "*/*"}

    assert HttpRequestPayload.model_validate({"url": URL, "headers": headers}).headers == headers


@pytest.mark.parametrize("name", ["Host", "host", "HOST"])
def test_the_host_header_is_refused(name: str) -> None:
    [(location, message)] = errors({"url": URL, "headers": {name: "internal.example"}})

    assert location == "headers" and name in message


@pytest.mark.parametrize("name", sorted(FORBIDDEN_HEADERS - {"host"}) + ["Transfer-Encoding", "Connection"])
def test_hop_by_hop_and_framing_headers_are_refused(name: str) -> None:
    assert fields({"url": URL, "headers": {name: "x"}}) == {"headers"}


@pytest.mark.parametrize("name", ["Idempotency-Key", "cronjob-schedule-id"])
def test_the_headers_the_scheduler_sets_are_refused(name: str) -> None:
    assert fields({"url": URL, "headers": {name: "mine"}}) == {"headers"}


@pytest.mark.parametrize("headers", [
    {"X Bad": "1"}, {"X-Bad:": "1"}, {"": "1"}, {"X-Ünicode": "1"}, {"x" * 257: "1"},
    {"X-Trace": "a", "x-trace": "b"},
    {f"X-H{i}": "v" for i in range(51)},
    {f"X-H{i}": "v" * 8000 for i in range(5)},
    {"X-Long": "v" * 8193},
])
def test_malformed_or_too_many_headers_are_refused(headers: dict[str, str]) -> None:
    assert fields({"url": URL, "headers": headers}) == {"headers"}


@pytest.mark.parametrize("value", [f"{SECRET}\r\nX-Injected: 1", f"{SECRET}\n", f"{SECRET}\x00", f"{SECRET}é"])
def test_a_header_value_that_could_split_the_header_is_refused_without_echoing_it(value: str) -> None:
    [(location, message)] = errors({"url": URL, "headers": {"X-Api-Key": value}})

    assert location == "headers" and "X-Api-Key" in message and SECRET not in message


# -- body --------------------------------------------------------------------------------------


def test_a_json_body_is_sent_as_compact_utf8_json() -> None:
    payload = HttpRequestPayload.model_validate({"method": "POST", "url": URL, "body": {"nome": "Ação", "n": [1, 2]}})

    assert payload.encoded_body() == ('{"nome":"Ação","n":[1,2]}'.encode(), "application/json")
    assert HttpRequestPayload.model_validate({"method": "PUT", "url": URL, "body": [1]}).encoded_body() == (
        b"[1]", "application/json")


def test_a_text_body_is_sent_as_it_is() -> None:
    payload = HttpRequestPayload.model_validate({"method": "POST", "url": URL, "body": "a=1&b=ç"})

    assert payload.encoded_body() == ("a=1&b=ç".encode(), "text/plain; charset=utf-8")
    assert HttpRequestPayload.model_validate({"url": URL}).encoded_body() == (None, None)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_cannot_have_a_body(method: str) -> None:
    [(location, message)] = errors({"method": method, "url": URL, "body": {"a": 1}})

    assert location == "" and method in message


@pytest.mark.parametrize("body", [1, 1.5, True])
def test_a_body_is_text_an_object_an_array_or_null(body: Any) -> None:
    assert fields({"method": "POST", "url": URL, "body": body}) == {"body"}


def test_a_body_over_256_kib_is_refused() -> None:
    largest = "x" * 256 * 1024
    assert HttpRequestPayload.model_validate({"method": "POST", "url": URL, "body": largest}).body == largest
    for body in ("x" * (256 * 1024 + 1), {"x": "é" * 140_000}):  # the object: 280 KB once encoded
        [(location, message)] = errors({"method": "POST", "url": URL, "body": body})
        assert location == "" and "the body is larger than 256 KiB once encoded" in message


# -- timeout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.1, 1, 10, 120])
def test_a_timeout_up_to_120_seconds_is_accepted(seconds: float) -> None:
    assert HttpRequestPayload.model_validate({"url": URL, "timeout_seconds": seconds}).timeout_seconds == seconds


@pytest.mark.parametrize("seconds", [120.01, 121, 3600, 0, -1, "forever"])
def test_a_timeout_over_120_seconds_or_not_positive_is_refused(seconds: Any) -> None:
    assert fields({"url": URL, "timeout_seconds": seconds}) == {"timeout_seconds"}


# -- expected_status ---------------------------------------------------------------------------


def test_expected_status_takes_exact_codes_and_classes() -> None:
    payload = HttpRequestPayload.model_validate({"url": URL, "expected_status": [200, "3XX", 404]})

    assert [payload.accepts(s) for s in (200, 201, 301, 399, 404, 410, 500)] == [
        True, False, True, True, True, False, False]
    default = HttpRequestPayload.model_validate({"url": URL})
    assert [default.accepts(s) for s in (199, 200, 204, 299, 300)] == [False, True, True, True, False]


@pytest.mark.parametrize("expected", [
    [], ["200"], ["6xx"], ["2x"], ["xx"], ["2xxx"], [99], [600], [True], [2.0], "2xx", [200] * 21,
])
def test_malformed_expected_status_is_refused(expected: Any) -> None:
    assert fields({"url": URL, "expected_status": expected}) == {"expected_status"}


def test_follow_redirects_is_a_boolean() -> None:
    assert HttpRequestPayload.model_validate({"url": URL, "follow_redirects": True}).follow_redirects is True
    assert fields({"url": URL, "follow_redirects": "sometimes"}) == {"follow_redirects"}


# -- the published JSON Schema -----------------------------------------------------------------


SCHEMA = HttpRequestPayload.model_json_schema()


def test_the_json_schema_is_valid_and_describes_every_field() -> None:
    Draft202012Validator.check_schema(SCHEMA)

    assert SCHEMA["additionalProperties"] is False
    assert SCHEMA["required"] == ["url"]
    assert set(SCHEMA["properties"]) == set(HttpRequestPayload.model_fields)
    for name, prop in SCHEMA["properties"].items():
        assert len(prop.get("description", "")) > 20, name
    assert SCHEMA["description"]
    assert SCHEMA["properties"]["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    assert SCHEMA["properties"]["timeout_seconds"]["maximum"] == 120
    assert SCHEMA["properties"]["url"]["maxLength"] == 2048


@pytest.mark.parametrize(("payload", "valid"), [
    ({"url": URL}, True),
    ({"method": "POST", "url": URL, "headers": {"Authorization": "Bearer x"}, "body": {"a": [1]},
      "timeout_seconds": 30, "expected_status": [200, "2xx"], "follow_redirects": True}, True),
    ({"method": "TRACE", "url": URL}, False),
    ({"url": "ftp://example.com/"}, False),
    ({"url": URL, "timeout_seconds": 500}, False),
    ({"url": URL, "expected_status": ["6xx"]}, False),
    ({"url": URL, "expected_status": ["200"]}, False),
    ({"url": URL, "headers": {"X Bad": "1"}}, False),
    ({"url": URL, "headers": {"X-Bad": "a\r\nb"}}, False),
    ({"url": URL, "extra": 1}, False),
])
def test_the_schema_and_the_model_agree(payload: dict[str, Any], valid: bool) -> None:
    schema_ok = Draft202012Validator(SCHEMA).is_valid(payload)
    try:
        HttpRequestPayload.model_validate(payload)
        model_ok = True
    except pydantic.ValidationError:
        model_ok = False

    assert schema_ok is valid and model_ok is valid


# -- prepare_http_request_payload --------------------------------------------------------------


def test_prepare_returns_the_payload_to_store_with_defaults() -> None:
    assert prepare_http_request_payload({"url": URL, "method": "DELETE"}) == {
        "method": "DELETE", "url": URL, "headers": {}, "body": None, "timeout_seconds": 10.0,
        "expected_status": ["2xx"], "follow_redirects": False,
    }


def test_prepare_raises_the_domain_error_naming_the_field_without_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        prepare_http_request_payload({"url": URL, "headers": {"Host": SECRET}})

    assert caught.value.field == "headers" and SECRET not in caught.value.message
    with pytest.raises(ValidationError):
        prepare_http_request_payload([])  # type: ignore[arg-type]


# -- shared helpers: URL parsing, address classes, Retry-After ---------------------------------


@pytest.mark.parametrize(("url", "host", "port", "target"), [
    ("http://2130706433/", "127.0.0.1", 80, "/"),
    ("http://0177.0.0.1:8080/x", "127.0.0.1", 8080, "/x"),
    ("http://0x7f.0.0.1/", "127.0.0.1", 80, "/"),
    ("http://127.1/", "127.0.0.1", 80, "/"),
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1", 80, "/"),
    ("https://[0:0:0:0:0:0:0:1]/", "::1", 443, "/"),
    ("https://API.Example.com./a?b=1#frag", "api.example.com", 443, "/a?b=1"),
    ("http://bücher.example", "xn--bcher-kva.example", 80, "/"),
])
def test_every_address_form_is_read_as_the_address_it_means(url: str, host: str, port: int, target: str) -> None:
    parsed = parse_url(url)

    assert (parsed.host, parsed.port, parsed.target) == (host, port, target)
    try:
        assert parsed.address == ipaddress.ip_address(host)
    except ValueError:
        assert parsed.address is None


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True), ("8.8.8.8", True),
    ("127.0.0.1", False), ("::1", False), ("10.1.1.1", False), ("172.31.0.1", False), ("192.168.0.1", False),
    ("169.254.169.254", False), ("fd00:ec2::254", False), ("fe80::1", False), ("100.64.0.1", False),
    ("0.0.0.0", False), ("::", False), ("224.0.0.251", False), ("ff02::1", False), ("255.255.255.255", False),
    ("::ffff:10.0.0.1", False), ("64:ff9b::7f00:1", False), ("64:ff9b::808:808", True), ("2002:c0a8:1::", False),
    ("198.18.0.1", False), ("192.0.2.1", False), ("2001:db8::1", False),
])
def test_addresses_are_public_or_refused(address: str, public: bool) -> None:
    assert (address_problem(ipaddress.ip_address(address)) is None) is public


@pytest.mark.parametrize("entry", ["not a host", "10.0.0.0/33", "http://example.com", "*.example.com"])
def test_a_bad_allow_list_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ValueError):
        DestinationPolicy([entry])


NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), (" 5 ", 5.0), ("0", 0.0), ("-3", 0.0), ("Tue, 15 Jan 2030 12:01:30 GMT", 90.0),
    ("Tue, 15 Jan 2030 11:00:00 GMT", 0.0), ("soon", None), ("", None), (None, None), ("nan", None),
    ("99999999999", 7 * 24 * 3600.0),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds
