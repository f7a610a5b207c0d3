"""A MongoDB wire-protocol server for the tests: SecantusDB, run in a child process.

SecantusDB is GPL-2.0-only, so it is a test extra: only this module imports it, and only in the
child process (``python -m tests.support.mongo_server <storage_dir> [--port N]``). The child
starts the server, prints its port on one line of stdout and serves until SIGTERM or SIGINT.
:class:`MongoTestServer` drives that child from the tests: start, stop (or kill), restart on the
same port and data directory.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class MongoTestServer:
    """One SecantusDB child process over ``storage_dir``; the log goes to ``<storage_dir>.log``.

    A second server on the same directory would exit at once (WiredTiger's lock), so a restart
    always stops the running one first.
    """

    def __init__(self, storage_dir: Path, *, ttl_sweep_seconds: float = 1.0) -> None:
        self.storage_dir = Path(storage_dir)
        self.log_path = self.storage_dir.with_name(self.storage_dir.name + ".log")
        self.ttl_sweep_seconds = ttl_sweep_seconds
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """A URI the driver can use. ``directConnection`` keeps the driver on this one node,
        whatever replica set (``secantus``) and member names it advertises."""
        if self.port is None:
            raise RuntimeError("the server was never started")
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, port: int | None = None) -> str:
        """Start the child (on ``port``, else a free one) and return the URI once it listens."""
        if self.running:
            raise RuntimeError("the server is already running")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "tests.support.mongo_server", str(self.storage_dir),
                   "--port", str(port or 0), "--ttl-sweep-seconds", str(self.ttl_sweep_seconds)]
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=log)
        self._process = process
        try:
            self.port = _read_port(process, START_TIMEOUT_S)
        except Exception as exc:
            self._end(process, graceful=False)
            self._process = None
            raise RuntimeError(
                f"SecantusDB did not start; see {self.log_path}:\n{self._log_tail()}") from exc
        return self.uri

    def stop(self) -> None:
        """SIGTERM the child by its PID and wait for a clean shutdown (data checkpointed)."""
        if self._process is not None:
            self._end(self._process, graceful=True)
            self._process = None

    def kill(self) -> None:
        """SIGKILL the child by its PID (a crash: only journaled writes survive)."""
        if self._process is not None:
            self._end(self._process, graceful=False)
            self._process = None

    def restart(self, *, same_port: bool = True) -> str:
        """Stop and start again over the same data directory, by default on the same port."""
        port = self.port if same_port else None
        self.stop()
        return self.start(port)

    def _end(self, process: subprocess.Popen[bytes], *, graceful: bool) -> None:
        if process.poll() is None:
            if graceful:
                process.terminate()
            else:
                process.kill()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if process.stdout is not None:
            process.stdout.close()

    def _log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _read_port(process: subprocess.Popen[bytes], timeout: float) -> int:
    """The port the child prints once it listens; raise if it exits or stays silent."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no port announced")
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if readable:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"the server exited with {process.wait()}")
            return int(line)


# -- the child process ---------------------------------------------------------------------


def serve(storage_dir: str, port: int, ttl_sweep_seconds: float) -> None:
    """Run SecantusDB until SIGTERM/SIGINT, announcing the port on stdout."""
    from secantus.server import SecantusDBServer  # the GPL server: imported in the child only

    server = SecantusDBServer(host="127.0.0.1", port=port, storage_path=storage_dir,
                              ttl_sweep_seconds=ttl_sweep_seconds, durable=True)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(server.address[1], flush=True)
    while not stopping.wait(0.5):
        pass
    # ``stop()`` only closes the listening socket, which does not wake the thread blocked in
    # ``accept()``: it then waits 2 s for it. Shutting the socket down first wakes it at once.
    listener: socket.socket | None = getattr(server, "_socket", None)
    if listener is not None:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
    server.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.mongo_server <storage_dir> [--port N]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("storage_dir")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttl-sweep-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("SECANTUS_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(args.storage_dir, args.port, args.ttl_sweep_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
