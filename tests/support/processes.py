"""Starting ``cronjob`` processes for end-to-end tests, and ending exactly those, by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CRONJOB = [sys.executable, "-m", "cronjob_bootstrap.cli"]
#: The installed ``cronjob`` script, as ``make run`` starts it (unlike ``python -m``, it does not
#: put the working directory on ``sys.path``).
CRONJOB_SCRIPT = [str(Path(sys.executable).with_name("cronjob"))]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CronjobProcess:
    """``cronjob <command>`` in a child process with ``env`` added to a clean CRONJOB_* environment;
    ``program`` starts it (default: ``python -m``), in ``cwd`` (default: this one)."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path, *, program: list[str] | None = None,
                 cwd: Path | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CRONJOB_")}
        self.command = command
        self.env = {**base, **env}
        self.log_path = log_path
        self.program = program or CRONJOB
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> CronjobProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([*self.program, self.command], env=self.env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        """Wait until ``url`` answers (any status), failing early if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"cronjob {self.command} exited {self.process.returncode}:\n{self.output()}")
            try:
                httpx.get(url, timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout} s:\n{self.output()}")

    def wait_ready(self, base: str, timeout: float = 30.0) -> None:
        """Wait until ``base``'s ``/readyz`` answers 200 (the store set up: the API answers more than
        503), failing early if the process died; a loaded machine may take a while over it."""
        self.wait_http(f"{base}/livez", timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"cronjob {self.command} exited {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=5.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{base}/readyz did not answer 200 within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def send(self, sig: int) -> None:
        """Send ``sig`` to the child, without waiting for it."""
        assert self.process is not None
        self.process.send_signal(sig)

    def running(self) -> bool:
        """Whether the child has not exited yet."""
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` to the child and wait for it; returns its exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise AssertionError(f"cronjob {self.command} did not stop on {sig}:\n{self.output()}") from None
