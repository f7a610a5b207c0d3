"""TemplateRenderer: WhatsApp-style ``{{1}}`` positional and ``{{name}}`` named placeholders."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cronjob.domain.errors import ValidationError

# A placeholder is ``{{`` optional spaces, a number or an identifier, optional spaces, ``}}``.
_PLACEHOLDER = re.compile(r"\{\{\s*([0-9]+|[A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True, slots=True)
class TemplateRenderer:
    """Renders a message body, refusing any mismatch between placeholders and parameters.

    Positional placeholders are numbered from 1 and must be contiguous (``{{1}}``..``{{n}}``),
    as in Meta's templates; they take ``params`` (a sequence). Named placeholders take
    ``named`` (a mapping). A missing or surplus parameter raises :class:`ValidationError`,
    so that a schedule is refused when it is created, not when it is due. A value is inserted
    as it is: text that looks like a placeholder inside a value is never expanded again.
    """

    def placeholders(self, body: str) -> list[str]:
        """The placeholder names in ``body``, in order of first appearance, without repeats."""
        seen: dict[str, None] = {}
        for match in _PLACEHOLDER.finditer(body):
            seen.setdefault(match.group(1), None)
        return list(seen)

    def validate(
        self, body: str, params: Sequence[str] = (), named: Mapping[str, str] | None = None
    ) -> None:
        """Raise :class:`ValidationError` unless ``params``/``named`` fit ``body`` exactly."""
        named = named or {}
        names = self.placeholders(body)
        numbers = sorted(int(n) for n in names if n.isdigit())
        idents = {n for n in names if not n.isdigit()}
        if numbers and numbers != list(range(1, numbers[-1] + 1)):
            raise ValidationError(
                f"positional placeholders must be numbered 1..n without gaps, got {numbers}",
                field="body",
            )
        expected = numbers[-1] if numbers else 0
        if len(params) < expected:
            raise ValidationError(
                f"body has {expected} positional placeholder(s) but {len(params)} param(s) were given",
                field="params",
            )
        if len(params) > expected:
            raise ValidationError(
                f"{len(params) - expected} surplus param(s): body has {expected} positional placeholder(s)",
                field="params",
            )
        missing = sorted(idents - named.keys())
        if missing:
            raise ValidationError(f"missing named param(s): {', '.join(missing)}", field="params")
        surplus = sorted(named.keys() - idents)
        if surplus:
            raise ValidationError(f"surplus named param(s): {', '.join(surplus)}", field="params")
        for index, value in enumerate(params):
            if not isinstance(value, str):
                raise ValidationError("every param must be a string", field=f"params.{index}")

    def render(
        self, body: str, params: Sequence[str] = (), named: Mapping[str, str] | None = None
    ) -> str:
        """Validate, then substitute every placeholder in one pass."""
        named = named or {}
        self.validate(body, params, named)

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            return params[int(key) - 1] if key.isdigit() else named[key]

        return _PLACEHOLDER.sub(substitute, body)
