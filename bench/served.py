"""A ``cronjob`` process for the benchmarks: started on a loopback port with a data directory of its
own, waited for, and stopped with SIGTERM (SIGKILL after 30 s), by its PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

TOKEN = "bench-token"


@contextlib.contextmanager
def served(command: str, port: int, data_dir: str, ready_path: str, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """``cronjob <command>`` on ``port`` with its store in ``data_dir`` and ``settings``
    (``CRONJOB_*`` variables), once ``ready_path`` answers 2xx; its log is ``<data_dir>/<command>.log``."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRONJOB_")},
           "CRONJOB_DATA_DIR": data_dir, "CRONJOB_PORT": str(port), "CRONJOB_API_TOKENS": TOKEN,
           "CRONJOB_LOG_LEVEL": "WARNING", **settings}
    log_path = Path(data_dir, f"{command}.log")
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "cronjob_bootstrap.cli", command], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"cronjob {command} did not start:\n{log_path.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield server
    finally:
        stop(server, 30)


def stop(server: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM to ``server`` (by its PID), SIGKILL if it has not exited ``grace`` seconds later."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
