"""Who asked for a change of a schedule: the audit trail that a schedule's events carry (which
client, by the fingerprint of its credential, and which of its requests)."""

from __future__ import annotations

from dataclasses import dataclass

#: The event ``data`` key that names who asked for the change (``token:3f2a9c1b7e4d``).
BY = "by"
#: The event ``data`` key that names the request that asked for it (its ``X-Request-ID``).
REQUEST_ID = "request_id"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change, for the events it causes: ``by`` names the client (never its
    secret: the API writes ``token:<fingerprint>``), ``request_id`` the request (None: not known).
    Events the engine causes (a run, its outcome) have none."""

    by: str
    request_id: str | None = None

    def event_data(self) -> dict[str, str]:
        """The ``data`` entries of an event this actor caused: ``by``, and ``request_id`` when known."""
        if self.request_id is None:
            return {BY: self.by}
        return {BY: self.by, REQUEST_ID: self.request_id}


def audit_data(actor: Actor | None) -> dict[str, str]:
    """The ``data`` entries of an event ``actor`` caused (see :meth:`Actor.event_data`); none for None."""
    return {} if actor is None else actor.event_data()
