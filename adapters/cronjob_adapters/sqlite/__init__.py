"""SQLite adapters: the embedded, durable store shared by several processes on one host."""
