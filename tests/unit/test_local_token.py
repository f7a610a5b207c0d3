"""The local API token: one per data directory, whichever processes start together."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from cronjob_bootstrap.tokens import ensure_local_token


def _start(data_dir: str, ready: multiprocessing.synchronize.Barrier, out: multiprocessing.queues.Queue) -> None:
    ready.wait()  # every process makes its token at the same moment
    token, _, created = ensure_local_token(Path(data_dir))
    out.put((token, created))


def test_processes_starting_together_share_the_one_token_in_the_file(tmp_path: Path) -> None:
    # forkserver, not fork: forking this multi-threaded pytest process may deadlock a child (and
    # Python 3.12+ warns of it); the fork server is a single-threaded process of its own.
    context = multiprocessing.get_context("forkserver")
    for round_ in range(5):
        data_dir = tmp_path / f"var{round_}"
        ready, out = context.Barrier(8), context.Queue()
        processes = [context.Process(target=_start, args=(str(data_dir), ready, out)) for _ in range(8)]
        for process in processes:
            process.start()
        results = [out.get(timeout=30) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        in_file = (data_dir / "api-token").read_text(encoding="utf-8").strip()
        assert {token for token, _ in results} == {in_file}, round_
        assert sum(created for _, created in results) == 1
        assert sorted(p.name for p in data_dir.iterdir()) == ["api-token"]  # no candidate left behind
        assert stat.S_IMODE((data_dir / "api-token").stat().st_mode) == 0o600


def test_an_existing_token_is_kept_and_an_empty_file_replaced(tmp_path: Path) -> None:
    (tmp_path / "api-token").write_text("kept-token\n", encoding="utf-8")
    assert ensure_local_token(tmp_path) == ("kept-token", tmp_path / "api-token", False)
    (tmp_path / "api-token").write_text("", encoding="utf-8")
    token, path, created = ensure_local_token(tmp_path)
    assert created and len(token) >= 40 and path.read_text(encoding="utf-8").strip() == token


def test_without_hard_links_the_file_is_created_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # what some network shares answer

    monkeypatch.setattr(os, "link", no_links)
    token, path, created = ensure_local_token(tmp_path)
    assert created and path.read_text(encoding="utf-8").strip() == token
    assert ensure_local_token(tmp_path) == (token, path, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api-token"]
