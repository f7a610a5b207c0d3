"""Scheduler engines: adapters of the driving port that wake the dispatcher."""
