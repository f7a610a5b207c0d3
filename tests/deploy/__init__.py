"""Tests of the deployment files (docker/, k8s/); shared helpers: the tools they run, the settings."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK_NAME = "constraints.txt"  # the lock: tests/deploy/test_constraints.py


def installs_with_the_lock(words: list[str]) -> bool:
    """Whether a pip command, split into words, is constrained by the lock (``-c``/``--constraint``)."""
    return any(words[n] in ("-c", "--constraint") and words[n + 1] == LOCK_NAME for n in range(len(words) - 1))


def settings_variables() -> set[str]:
    """``CRONJOB_<FIELD>`` for every field of the service's ``Settings``."""
    from cronjob_bootstrap.settings import Settings

    return {f"CRONJOB_{name.upper()}" for name in Settings.model_fields}


def cli_commands() -> set[str]:
    """The subcommands of the ``cronjob`` CLI (``serve``, ``api``, ``scheduler``)."""
    import argparse

    from cronjob_bootstrap.cli import _parser

    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(subparsers.choices)


def tool(name: str, *, installed_by: str) -> str:
    """The path of ``name``: first the one installed into this environment (the test extra pins it,
    so every machine runs the same version), else one on PATH. Never skips: a missing tool fails
    the test, naming what installs it."""
    for scripts in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = scripts / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"`{name}` was found neither next to {sys.executable} nor on PATH; "
                f"it is installed by {installed_by} (`make test` installs it)", pytrace=False)
