"""Cron expressions: the interface the domain needs, evaluated by a maintained parser in an adapter.

It lives in the domain (re-exported by :mod:`cronjob.ports.cron`) because cron triggers hold one;
the domain stays standard-library only."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime


class CronEvaluator(ABC):
    """Evaluates standard five-field cron expressions (minute hour day-of-month month day-of-week).

    Contract:

    - ``validate`` raises :class:`cronjob.domain.errors.ValidationError` (field ``schedule``)
      for an expression it cannot evaluate, naming the field at fault and what it takes, and
      for one that never fires (a day-of-month none of its months has, ``0 0 31 2 *``, with
      no day-of-week named: cron matches a named one instead), saying so; it returns None
      otherwise.
    - ``next_after(expression, after)`` takes ``after`` as an aware datetime in the schedule's
      zone and returns the first matching wall-clock time strictly later than ``after``, aware,
      in that zone. Across DST it behaves like Debian cron: for a fixed-time expression
      (neither the minute nor the hour field starts with ``*``) a time inside a spring-forward
      gap fires once, just after the gap, and a time inside a fall-back fold fires once, on its
      first pass; a wildcard expression follows elapsed time (skipped wall times do not fire,
      repeated ones fire on both passes).
    """

    @abstractmethod
    def validate(self, expression: str) -> None:
        """Raise ValidationError unless ``expression`` is a valid cron expression."""

    @abstractmethod
    def next_after(self, expression: str, after: datetime) -> datetime:
        """First match strictly after ``after`` (aware, in the schedule's zone)."""
