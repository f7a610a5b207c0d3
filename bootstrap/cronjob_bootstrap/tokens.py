"""The API token for ``make run``: created once under the data directory when none is configured."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "api-token"


def ensure_local_token(data_dir: Path) -> tuple[str, Path, bool]:
    """Return ``(token, path, created)``: the token stored in ``data_dir/api-token``, made
    (random, 256 bits, file mode 0600) if the file does not exist yet."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, path, False
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, path, True
