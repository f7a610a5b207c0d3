"""Request texts that must say something: not only whitespace.

``min_length=1`` lets ``"   "`` or ``"\\n"`` through, which is empty to whoever reads it: a WhatsApp
text Meta refuses when it is due, a ``userId`` that ``:cancel`` cannot select. :class:`NotBlank`
refuses such a text (a 422 naming the field), and the field's schema in the OpenAPI document
says so: the pattern ``\\S``, a character that is not whitespace somewhere in it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

#: Somewhere a character that is not whitespace (unanchored, as JSON Schema reads a pattern).
PATTERN = r"\S"
_SAYS_SOMETHING = re.compile(PATTERN)


def is_blank(text: str) -> bool:
    """Whether ``text`` is empty or only whitespace, as :data:`PATTERN` reads it."""
    return _SAYS_SOMETHING.search(text) is None


@dataclass(frozen=True, slots=True)
class NotBlank:
    """``Annotated[str, ..., NotBlank()]``: a text that is empty or only whitespace is refused
    with ``must not be blank (only whitespace)``; its documented schema gains ``pattern: \\S``
    (for a text that has no pattern of its own)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._refuse_blank, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        documented = handler(schema)
        documented.setdefault("pattern", PATTERN)
        return documented

    @staticmethod
    def _refuse_blank(value: str) -> str:
        if is_blank(value):
            raise ValueError("must not be blank (only whitespace)")
        return value
