"""Pydantic validation errors as the domain's (at scheduling time) or as permanent delivery
errors (at run time), for every task type."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from pydantic_core import PydanticCustomError

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError

#: The type of :func:`value_error_at`'s errors.
VALUE_AT = "value_at"


def value_error_at(path: str, message: str) -> PydanticCustomError:
    """A validator's error about the value at ``path`` (dotted, ``ids.1``) inside the field it
    validates (a free-form JSON body, a routine's ``args``): its field is then named down to
    that place (``task.body.ids.1``, see :func:`error_field`), as a model's own fields are."""
    return PydanticCustomError(VALUE_AT, "{message}", {"path": path, "message": message})


def error_field(field: str, error: Any) -> str:
    """The dotted ``field`` a pydantic ``error`` (one of ``errors()``, with its context) names,
    followed by the place inside it that a :func:`value_error_at` error names."""
    path = (error.get("ctx") or {}).get("path") if error.get("type") == VALUE_AT else None
    return f"{field}.{path}" if field and path else field or path or ""


def domain_error(exc: pydantic.ValidationError) -> ValidationError:
    """The first error of a pydantic validation as the domain's error, with a dotted field path.

    Built with ``include_input=False``: a refused value (an address, a token in a header) is
    never copied into the message.
    """
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    path = error_field(".".join(str(part) for part in first["loc"]), first)
    message = first["msg"].removeprefix("Value error, ")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error(s))"
    return ValidationError(message, field=path)


_Model = TypeVar("_Model", bound=pydantic.BaseModel)


def validate_payload(model: type[_Model], payload: Any, task_type: str) -> _Model:
    """``payload`` as ``model`` at scheduling time; the domain's :class:`ValidationError` naming
    the field at fault (``""`` when the payload is not an object at all)."""
    if not isinstance(payload, dict):
        raise ValidationError(f"the {task_type} payload must be an object", field="")
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise domain_error(exc) from None


def invalid_payload(exc: pydantic.ValidationError | ValidationError) -> DeliveryError:
    """A stored payload that no longer validates at run time: permanent ``invalid_payload``
    (normally caught when the schedule was created; a schema may have changed since)."""
    error = domain_error(exc) if isinstance(exc, pydantic.ValidationError) else exc
    return DeliveryError("invalid_payload", f"{error.field}: {error.message}", retryable=False)


def validate_stored(model: type[_Model], payload: Any) -> _Model:
    """A stored ``payload`` as ``model`` at run time; :func:`invalid_payload` (permanent) when it
    no longer validates."""
    try:
        return model.model_validate(payload)
    except pydantic.ValidationError as exc:
        raise invalid_payload(exc) from None
