"""Optional request fields that may be left out but not sent as ``null``.

Pydantic reads ``"task": null`` as it reads a field left out, so a client's explicit null would be
dropped in silence: a 200 that did not do what was asked. Where null has no meaning of its own,
:class:`NotNull` refuses it instead (a 422 naming the field), and the field's schema in the
OpenAPI document says so: its type without the ``null`` that ``X | None`` adds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

_NULL = {"type": "null"}


@dataclass(frozen=True, slots=True)
class NotNull:
    """``Annotated[X | None, Field(default=None, ...), NotNull("leave it out to ...")]``: left out,
    the field is None (its default); sent as ``null``, it is refused with the message
    ``must not be null (<hint>)``; its documented schema is ``X``'s."""

    #: What the client means to do instead (the field left out, or another value).
    hint: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._refuse_null, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        documented = handler(schema)
        members = documented.get("anyOf")
        if isinstance(members, list) and len(members) == 2 and _NULL in members:
            kept = next(member for member in members if member != _NULL)
            outer = {key: value for key, value in documented.items() if key != "anyOf"}
            documented = {**kept, **outer}  # the field's own description wins over its type's
        return documented

    def _refuse_null(self, value: Any) -> Any:
        if value is None:
            raise ValueError(f"must not be null ({self.hint})")
        return value
