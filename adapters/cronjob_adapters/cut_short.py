"""A send cancelled (by a shutdown, or at its run's time limit) once its request may have left:
its outcome is unknown."""

from __future__ import annotations

import asyncio

from cronjob.domain.message import DeliveryOutcomeUnknown


def cut_short(what: str) -> DeliveryOutcomeUnknown:
    """The error to raise, instead of the cancellation, from a send that has no idempotency key
    (WhatsApp, SMTP) and was cancelled once its request may have reached the provider.

    A run cancelled by a shutdown gives its lease back and is run again at once, and one stopped
    at its time limit is retried: right for a send that never left, a duplicate for one that
    did. So the provider's fate is recorded as unknown (never re-sent blindly), as for a request
    that got no answer. The cancellation is taken back
    (``Task.uncancel``): the run ends normally, with that outcome.
    """
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    return DeliveryOutcomeUnknown(f"{what} was cut short (by a shutdown, or at the run's time limit) "
                                  "after it was sent; the provider may have the message")
