"""Status webhooks: signed deliveries of schedule events to subscriber URLs.

- :mod:`.signing` — the ``Cronjob-Signature`` header (HMAC-SHA256), made and verified.
- :mod:`.delivery` — the internal ``webhook.delivery`` task type: one event to one URL, signed
  when sent, through the SSRF-guarded HTTP sender of :mod:`cronjob_adapters.tasks.http_request`.
- :mod:`.publisher` — :class:`~.publisher.WebhookPublisher`, the ``EventPublisher``: turns each
  (event, subscriber) into a one-off ``webhook.delivery`` schedule, so deliveries are stored,
  claimed, leased, fenced and retried by the engine like any other job.
"""
