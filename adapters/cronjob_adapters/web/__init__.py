"""The HTTP API (FastAPI): a driving adapter that calls the application services only."""
