"""Pydantic validation errors as the domain's (at scheduling time) or as permanent delivery
errors (at run time), for every task type."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from cronjob.domain.errors import ValidationError
from cronjob.domain.message import DeliveryError


def domain_error(exc: pydantic.ValidationError) -> ValidationError:
    """The first error of a pydantic validation as the domain's error, with a dotted field path.

    Built with ``include_input=False``: a refused value (an address, a token in a header) is
    never copied into the message.
    """
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    path = ".".join(str(part) for part in first["loc"])
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
