"""Pydantic validation errors as the domain's, for the task types' scheduling-time checks."""

from __future__ import annotations

import pydantic

from cronjob.domain.errors import ValidationError


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
