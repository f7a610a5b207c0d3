"""The API token for ``make run``: created once under the data directory when none is configured."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

TOKEN_FILE = "api-token"


def ensure_local_token(data_dir: Path) -> tuple[str, Path, bool]:
    """Return ``(token, path, created)``: the token stored in ``data_dir/api-token``, made
    (random, 256 bits, file mode 0600) if the file does not exist yet.

    Processes that start together on a fresh data directory (``api`` and ``scheduler``) must
    end up with the one token in the file: each writes its candidate to a file of its own and
    links it into place, which only the first link does; the others read the winner's. The file
    never holds part of a token, so a reader never takes a truncated one.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / TOKEN_FILE
    token = _read(path)
    if token:
        return token, path, False
    token = secrets.token_urlsafe(32)
    candidate = data_dir / f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(candidate, path)
        except FileExistsError:
            won = _read(path)
            if won:  # another process was first: its token is everyone's
                return won, path, False
            os.replace(candidate, path)  # an empty file left by hand: replaced
        except OSError:  # no hard links on this filesystem (some network shares)
            return _create_exclusively(path, token)
    finally:
        candidate.unlink(missing_ok=True)
    return token, path, True


def _create_exclusively(path: Path, token: str) -> tuple[str, Path, bool]:
    """Where files cannot be linked: create the file only if it does not exist yet; when another
    process did, wait a moment for its token to be written, and take it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(200):
            if won := _read(path):
                return won, path, False
            time.sleep(0.01)
        raise RuntimeError(f"{path} stays empty: remove it, or set CRONJOB_API_TOKENS") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token, path, True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
