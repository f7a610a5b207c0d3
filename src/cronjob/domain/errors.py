"""Errors raised by the domain. Adapters translate them to their own world (HTTP 422, logs, ...)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every error the domain raises on purpose."""


class ValidationError(DomainError):
    """Input that the domain refuses, with the field it concerns (dotted path, or "" for the whole)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidTransition(DomainError):
    """A schedule was asked to move to a status its state machine does not allow from where it is."""

    def __init__(self, current: str, target: str, reason: str | None = None) -> None:
        super().__init__(reason or f"cannot move a schedule from {current!r} to {target!r}")
        self.current = current
        self.target = target


class UnreadableRule(InvalidTransition):
    """A schedule's stored rule is not one this version reads (see
    :class:`~cronjob.domain.trigger.UnreadableTrigger`), and what was asked needs its times."""

    def __init__(self, expression: str) -> None:
        super().__init__("", "", f"its rule {expression!r} is not one this version of the service reads (a later "
                                 "version's, during a rolling update or after a roll-back?): a replica of the "
                                 "version that wrote it runs it; to change it here, give it a rule this version reads")
        self.expression = expression
