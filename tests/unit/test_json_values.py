"""check_storable: which payload values every store keeps exactly, and where the first one that
it does not is."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.json_values import INT64_MAX, INT64_MIN, MAX_NESTING, check_storable, nesting_beyond

storable_keys = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=5)
storable = st.recursive(
    st.none() | st.booleans() | st.integers(INT64_MIN, INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(storable_keys, inner, max_size=4),
    max_leaves=20,
)
not_storable = (st.integers(min_value=INT64_MAX + 1) | st.integers(max_value=INT64_MIN - 1)
                | st.sampled_from([float("nan"), float("inf"), float("-inf"), "\ud800", "a\udfffb"]))
# Keys made of letters only, so that a dotted path names one place.
keys = st.text(alphabet="abcxyz", min_size=1, max_size=3)


@given(storable)
def test_json_values_within_64_bits_are_storable(value: Any) -> None:
    check_storable(value, "task")


@given(st.lists(st.one_of(keys, st.integers(0, 3)), max_size=6), not_storable, storable)
def test_a_value_no_store_keeps_is_refused_with_its_path(steps: list[str | int], bad: Any, filler: Any) -> None:
    # Build a container around `bad` along `steps`: a key is a dict level, an index a list level
    # (with `filler` before it, so that the index is where it says).
    value: Any = bad
    for step in reversed(steps):
        value = {step: value, "_": filler} if isinstance(step, str) else [filler] * step + [value, filler]
    with pytest.raises(ValidationError) as refused:
        check_storable(value, "task.body")
    assert refused.value.field == ".".join(["task", "body", *map(str, steps)])


@pytest.mark.parametrize(("value", "field"), [({"a": {"\x00k": 1}}, "task.a.'\\x00k'"),
                                              ([{"k\x00": None}], "task.0.'k\\x00'"),
                                              ({"a": {1: "x"}}, "task.a.1"),
                                              ({"a": {"k\ud800": "x"}}, "task.a.'k\\ud800'")])
def test_keys_are_strings_without_nul_or_a_lone_surrogate(value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_storable(value, "task")
    assert refused.value.field == field
    check_storable({"k": "a NUL \x00 in a value is kept"})


def test_a_deeply_nested_value_is_checked_without_recursion() -> None:
    value: Any = 2**64
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ValidationError) as refused:
        check_storable(value)
    assert "nested more than 64 levels" in refused.value.message
    assert refused.value.field == ".".join(["0"] * (MAX_NESTING + 1))  # the first level too deep
    assert nesting_beyond(value, 100_000) is None and nesting_beyond(value, 99_999) == ".".join(["0"] * 99_999)


def test_a_payload_nests_at_most_max_nesting_levels_below_itself() -> None:
    """MongoDB keeps documents of at most 100 levels; the payload sits inside the schedule's."""
    def nested(levels: int) -> Any:
        value: Any = {"k": 1}
        for _ in range(levels - 1):
            value = {"k": value}
        return value

    check_storable({"body": nested(MAX_NESTING)}, "task")
    with pytest.raises(ValidationError) as refused:
        check_storable({"body": nested(MAX_NESTING + 1)}, "task")
    assert refused.value.field == "task.body" + ".k" * MAX_NESTING
