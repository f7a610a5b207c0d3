"""The MongoDB schedule store, on PyMongo's async API."""
