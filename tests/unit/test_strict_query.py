"""Which query parameter types take several values (``?type=a&type=b``) and which take one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Optional, Union

import pytest
from fastapi import Query

from cronjob_adapters.web.strict_query import takes_several


@pytest.mark.parametrize("annotation", [
    list[str], list[str] | None, Optional[list[int]], Annotated[list[str] | None, Query()],
    list[Annotated[str, Query(min_length=2)]] | None, tuple[str, ...], set[str], frozenset[int],
    Sequence[str], Union[None, list[str]],
])
def test_lists_take_several_values(annotation: object) -> None:
    assert takes_several(annotation)


@pytest.mark.parametrize("annotation", [
    str, str | None, int, Optional[int], Annotated[int, Query(ge=1)], Literal["a", "b"], bytes, bool, None,
])
def test_single_values_take_one(annotation: object) -> None:
    assert not takes_several(annotation)
