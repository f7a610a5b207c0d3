"""Adapters: the concrete implementations of the core's ports (stores, providers, web, engine)."""
