"""Session-wide fixtures: the MongoDB server the MongoDB tests talk to."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.mongo_server import MongoTestServer


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``CRONJOB_MONGODB_URI`` when set (a real server), else a SecantusDB child for the session."""
    configured = os.environ.get("CRONJOB_MONGODB_URI")
    if configured:
        yield configured
        return
    server = MongoTestServer(tmp_path_factory.mktemp("mongodb") / "data")
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()
