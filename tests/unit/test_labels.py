"""Labels: the grammar of keys and values (properties against a reference written with plain
string tests, not the module's regular expressions), selectors, and the in-memory label index
cross-checked against a scan of every schedule."""

from __future__ import annotations

import asyncio
import string
import unicodedata
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.labels import (
    MAX_LABELS,
    check_labels,
    label_key_problem,
    label_pairs,
    label_value_problem,
    matches,
    parse_selector,
)
from cronjob.domain.schedule import ScheduleStatus
from cronjob_adapters.memory.repository import InMemoryScheduleRepository
from tests.support.builders import T0, one_off

_FIRST = string.ascii_letters + string.digits
_REST = _FIRST + "._-/"


def is_key(text: str) -> bool:
    """The documented grammar of a key: 1-63 characters, an ASCII letter or digit first, then
    ASCII letters, digits, '.', '_', '-' or '/'."""
    return 1 <= len(text) <= 63 and text[0] in _FIRST and all(c in _REST for c in text[1:])


def is_value(text: str) -> bool:
    """The documented grammar of a value: at most 256 characters, no control character."""
    return len(text) <= 256 and not any(unicodedata.category(c) == "Cc" for c in text)


#: Near the grammar: its own characters, and those a key or value must not hold.
near_keys = st.text(st.sampled_from([*_REST, "=", " ", ":", "é", "\n", "\x00", "A", "9", "ß", "٣"]), max_size=70)
near_values = st.text(st.one_of(st.characters(codec="utf-8"), st.sampled_from(["\x7f", "\x85", "\x9f", "\t", "\u2028"])),
                      max_size=260)
keys = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}", fullmatch=True)
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40)


@given(near_keys)
def test_a_key_is_accepted_exactly_when_it_follows_the_grammar(text: str) -> None:
    assert (label_key_problem(text) is None) is is_key(text)


@given(st.one_of(near_values, st.text(max_size=300)))
def test_a_value_is_accepted_exactly_when_it_follows_the_grammar(text: str) -> None:
    assert (label_value_problem(text) is None) is is_value(text)


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"a": "b"}])
def test_a_value_that_is_no_string_is_refused_naming_its_label(value: object) -> None:
    with pytest.raises(ValidationError) as refused:
        check_labels({"order": value})
    assert refused.value.field == "labels.order" and "string" in refused.value.message


def test_at_most_sixteen_labels() -> None:
    sixteen = {f"k{i}": "" for i in range(MAX_LABELS)}
    assert check_labels(sixteen) == sixteen
    with pytest.raises(ValidationError) as refused:
        check_labels({**sixteen, "one-more": ""})
    assert refused.value.field == "labels" and "16" in refused.value.message


@given(st.dictionaries(keys, values, max_size=MAX_LABELS))
def test_a_selector_of_a_schedules_labels_is_those_labels(labels: dict[str, str]) -> None:
    assert parse_selector(label_pairs(labels)) == labels
    assert matches(labels, parse_selector(label_pairs(labels)))


def test_a_selector_splits_at_the_first_equals_sign_and_refuses_what_no_label_could_be() -> None:
    assert parse_selector(["kind=a=b", "empty="]) == {"kind": "a=b", "empty": ""}
    for texts in (["order"], ["=123"], ["or der=1"], ["order=\n"], ["a=1", "a=2"], ["a=1", "a=1"],
                  [f"k{i}=v" for i in range(MAX_LABELS + 1)]):
        with pytest.raises(ValidationError) as refused:
            parse_selector(texts)
        assert refused.value.field == "label"


def test_matching_needs_every_label_with_exactly_its_value() -> None:
    labels = {"order": "123", "kind": ""}
    assert matches(labels, {}) and matches(labels, {"kind": ""}) and matches(labels, {"order": "123", "kind": ""})
    assert not matches(labels, {"order": "12"}) and not matches(labels, {"team": ""})
    assert not matches({}, {"kind": ""})


#: A small world of labels, so that selectors often match.
small_labels = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "1", "2"]), max_size=3)
users = st.sampled_from([None, "u1", "u2"])
operations = st.lists(st.tuples(st.sampled_from(["add", "relabel", "purge"]), st.integers(0, 30), small_labels, users),
                      min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(operations, st.lists(st.tuples(small_labels, users), min_size=1, max_size=5))
def test_the_memory_label_and_user_indexes_answer_as_a_scan_of_every_schedule(
        steps: list[tuple[str, int, dict[str, str], str | None]],
        selectors: list[tuple[dict[str, str], str | None]]) -> None:
    async def run() -> None:
        repo = InMemoryScheduleRepository()
        made: list[str] = []
        for index, (operation, pick, labels, user) in enumerate(steps):
            if operation == "add" or not made:
                schedule = one_off(T0 + timedelta(hours=1), now=T0 + timedelta(seconds=index), labels=labels,
                                   user_id=user)
                await repo.add(schedule)
                made.append(schedule.id)
                continue
            stored = await repo.get(made[pick % len(made)])
            if stored is None or stored.status is not ScheduleStatus.SCHEDULED:
                continue
            if operation == "relabel":
                stored.relabel(labels=labels, now=T0 + timedelta(seconds=index))
            else:
                stored.cancel(now=T0)
            assert await repo.save(stored, expected_status=ScheduleStatus.SCHEDULED)
            if operation == "purge":
                await repo.delete_finished(before=T0 + timedelta(days=1), statuses=[ScheduleStatus.CANCELLED],
                                           limit=100)
        everything = await repo.list(limit=1000)
        for selector, user in selectors:
            scanned = [s.id for s in everything
                       if matches(s.labels, selector) and (user is None or s.user_id == user)]
            assert [s.id for s in await repo.list(labels=selector, user_id=user, limit=1000)] == scanned

    asyncio.run(run())
