"""The Cronjob-Signature header: sign/verify properties, rotation, staleness, and the README's example."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronjob_adapters.webhooks.signing import parse, sign, verify

T = 1_900_000_000
bodies = st.binary(max_size=2048)
secrets = st.text(min_size=1, max_size=64).filter(lambda s: "," not in s)
timestamps = st.integers(min_value=0, max_value=2**40)


@given(body=bodies, secret=secrets, ts=timestamps)
def test_a_signature_verifies_with_its_secret(body: bytes, secret: str, ts: int) -> None:
    header = sign(body, [secret], ts)
    assert verify(header, body, secret, now=ts)
    assert verify(header, body, secret, now=ts + 300) and verify(header, body, secret, now=ts - 300)


@given(body=bodies, secret=secrets, ts=timestamps, data=st.data())
def test_a_tampered_body_fails(body: bytes, secret: str, ts: int, data: st.DataObject) -> None:
    other = data.draw(bodies.filter(lambda b: b != body))
    assert not verify(sign(body, [secret], ts), other, secret, now=ts)


@given(body=bodies, secret=secrets, ts=timestamps, shift=st.integers(min_value=1, max_value=250))
def test_a_tampered_timestamp_fails(body: bytes, secret: str, ts: int, shift: int) -> None:
    header = sign(body, [secret], ts)
    forged = header.replace(f"t={ts},", f"t={ts + shift},", 1)
    assert not verify(forged, body, secret, now=ts)


@given(body=bodies, secret=secrets, other=secrets, ts=timestamps)
def test_another_secret_fails(body: bytes, secret: str, other: str, ts: int) -> None:
    if other.rstrip("\x00") != secret.rstrip("\x00"):  # HMAC pads keys with zero bytes
        assert not verify(sign(body, [secret], ts), body, other, now=ts)


@given(body=bodies, old=secrets, new=secrets, ts=timestamps)
def test_during_rotation_either_secret_verifies(body: bytes, old: str, new: str, ts: int) -> None:
    header = sign(body, [new, old], ts)
    assert verify(header, body, old, now=ts) and verify(header, body, new, now=ts)
    assert len(parse(header)[1]) == 2  # type: ignore[index]


def test_the_header_format() -> None:
    header = sign(b'{"a":1}', ["s3cret"], T)
    expected = hmac.new(b"s3cret", f"{T}.".encode() + b'{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"
    assert re.fullmatch(r"t=\d+(,v1=[0-9a-f]{64})+", sign(b"", ["a", "b"], T))


@pytest.mark.parametrize("delta", [301, 3600, -301])
def test_stale_or_future_timestamps_are_refused(delta: int) -> None:
    header = sign(b"x", ["k"], T)
    assert not verify(header, b"x", "k", now=T + delta)
    assert verify(header, b"x", "k", now=T + delta, tolerance_seconds=abs(delta))


@pytest.mark.parametrize("header", [
    "", "v1=abc", "t=,v1=abc", "t=abc,v1=00", "t=1,t=1,v1=00", f"t={T}", f"t={T},v0=00", "garbage",
    f"t=-{T},v1=00", f"t={T},v1=",
    "t=\u00b2,v1=00", "t=\u0661\u0662,v1=00", f"t={'9' * 5000},v1=00",  # not ASCII digits; too many for int
])
def test_malformed_headers_are_refused(header: str) -> None:
    assert not verify(header, b"x", "k", now=T)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        sign(b"x", [], T)
    with pytest.raises(ValueError):
        sign(b"x", [""], T)
    with pytest.raises(TypeError):
        sign(b"x", "one-string", T)  # type: ignore[arg-type]
    assert not verify(sign(b"x", ["k"], T), b"x", "", now=T)


def test_unknown_schemes_are_ignored() -> None:
    header = sign(b"x", ["k"], T)
    assert verify(f"{header},v9=whatever", b"x", "k", now=T)


# -- the README's example, executed as written -------------------------------------------------

MARKER = "<!-- webhook-verify-example -->"


def readme_example() -> str:
    """The Python block between the two markers in README.md."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start, end = text.index(MARKER), text.rindex(MARKER)
    assert start < end, "README.md needs the example between two markers"
    block = re.search(r"```python\n(.*?)```", text[start:end], re.S)
    assert block is not None, "no ```python block between the markers"
    return block.group(1)


def test_the_readme_example_has_ten_lines_and_verifies_real_signatures() -> None:
    code = readme_example()
    assert len(code.strip("\n").splitlines()) == 10
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    check = namespace["verify_signature"]
    body = '{"id":"e1","type":"succeeded","data":{"wamid":"wamid.1"}}'.encode()
    now = int(time.time())
    header = sign(body, ["new-secret", "old-secret"], now)
    assert check(header, body, "old-secret") and check(header, body, "new-secret")
    assert not check(header, body + b" ", "old-secret")
    assert not check(header, body, "other-secret")
    assert not check(sign(body, ["old-secret"], now - 3600), body, "old-secret")  # stale
    assert not check("t=abc,v1=00", body, "old-secret") and not check("", body, "old-secret")
    for forged in ("t=\u00b2,v1=00", f"t={'9' * 5000},v1=00"):  # a receiver's answer, not an exception
        assert check(forged, body, "old-secret") is False
