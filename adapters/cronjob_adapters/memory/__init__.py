"""In-memory adapters, shipped for tests, demos and single-process use (nothing survives a restart)."""
