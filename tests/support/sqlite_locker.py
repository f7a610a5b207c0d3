"""Another process holding an SQLite file's write lock (a backup tool, a ``sqlite3`` shell left in
a transaction), for the tests of what the service does meanwhile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Another process: take the write lock (BEGIN EXCLUSIVE), say "locked", hold it until stdin closes.
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


class Locker:
    """A process holding the write lock of the SQLite file ``path`` until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(10) == 0
