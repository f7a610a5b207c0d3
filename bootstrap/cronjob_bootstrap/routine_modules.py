"""The deployment's own routines: the modules named by ``CRONJOB_ROUTINE_MODULES``, imported at
start-up so that their ``@routine`` decorators fill the process-wide registry that the
``python`` task type and ``GET /v1/routines`` serve."""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

#: A dotted module name, as ``import`` takes it.
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)


class RoutineModuleError(Exception):
    """A module of ``CRONJOB_ROUTINE_MODULES`` that could not be imported, and why (one line)."""


def import_routine_modules(names: Iterable[str], working_directory: Path | None = None) -> None:
    """Import each module of ``names``, in order. They are looked for as ``python -m`` would:
    in the installed packages, on ``PYTHONPATH`` and in the working directory (added after the
    others, so that it shadows no installed package). Raises :class:`RoutineModuleError` for the
    first one that cannot be imported: not found, or failing as it runs (a routine registered
    twice, a name that is refused, any error of its own), naming where it failed."""
    names = list(names)
    if not names:
        return
    here = str(working_directory or Path.cwd())
    if os.path.abspath(here) not in map(os.path.abspath, sys.path):  # '' (python -m) is the working directory
        sys.path.append(here)
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
                raise RoutineModuleError(f"cannot import {name}: no such module (looked in the installed "
                                         f"packages, PYTHONPATH and {here})") from None
            raise RoutineModuleError(f"cannot import {name}: {_where(exc)}") from None
        except Exception as exc:  # the module's own error: said in one line, with where it happened
            raise RoutineModuleError(f"cannot import {name}: {_where(exc)}") from None


def _where(exc: BaseException) -> str:
    """``<type>: <message> (at <file>:<line>)``, the innermost frame of the error."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(exc).split())  # one line
    return f"{type(exc).__name__}: {text}{at}"
