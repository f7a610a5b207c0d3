"""WhatsApp Cloud API adapter: the MessageSender that posts to Meta's Graph API."""
