"""The task types a request may name (``type``): those the service schedules and its own jobs."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from cronjob.domain.errors import ValidationError


def check_task_types(asked: Iterable[str] | None, known: Collection[str]) -> None:
    """:class:`ValidationError` naming ``type`` for the first of ``asked`` (in sorted order)
    that is not one of ``known``, listing those that are; nothing for None."""
    if unknown := sorted(set(asked or ()) - set(known)):
        raise ValidationError(f"unknown task type {unknown[0]!r}; known: {', '.join(sorted(known))}", field="type")
